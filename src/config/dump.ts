/** Writing a merged config back out as YAML (the engine saves it into the work dir). */
import YAML from 'yaml';
import { writeFileAtomic } from '../io/atomic_write.ts';

/** The config as YAML text: block style, no anchors/aliases (each value written out in full). */
export function configToYaml(cfg: unknown): string {
  return YAML.stringify(cfg, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/**
 * Writes `cfg` as YAML to `path` atomically, so a crash never leaves a truncated config next
 * to checkpoints. Loading the file again gives back an equal object.
 */
export async function dumpConfig(cfg: unknown, path: string): Promise<void> {
  await writeFileAtomic(path, configToYaml(cfg));
}
