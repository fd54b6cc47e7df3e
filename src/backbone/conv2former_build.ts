/**
 * The `backbone: {type: Conv2Former, ...}` config block: its schema and its builder.
 *
 *   backbone: {type: Conv2Former, variant: t | {dims, depths, kernel_size}, drop_path_rate,
 *              out_indices, frozen_stages, out_norms (default true), with_cp (default false), checkpoint}
 *
 * A `checkpoint` is read first (its kernel size wins over the config's, with a log line), then
 * loaded non-strictly, logging the missing/unexpected key counts.
 */
import { ConfigError } from '../config/errors.ts';
import { bool, int, list, nul, num, obj, oneOf, optional, refine, str, type Infer } from '../config/schema.ts';
import { readCheckpointFile } from '../nn/checkpoint.ts';
import { createConv2Former, CONV2FORMER_VARIANTS, type Conv2Former, type Conv2FormerConfig, type Conv2FormerVariant } from './conv2former.ts';
import { kernelSizeFromStateDict } from './conv2former_checkpoint.ts';

const positiveInt = int({ min: 1 });
const VARIANT_NAMES = Object.keys(CONV2FORMER_VARIANTS) as Conv2FormerVariant[];

export const conv2formerSchema = obj({
  type: str({ enum: ['Conv2Former'] }),
  variant: oneOf(
    str({ enum: VARIANT_NAMES }),
    obj({ dims: list(positiveInt, { len: 4 }), depths: list(positiveInt, { len: 4 }), kernel_size: optional(positiveInt, 7) }),
  ),
  drop_path_rate: optional(num({ min: 0, max: 1 }), 0),
  out_indices: optional(refine(list(int({ min: 0, max: 3 })), (l) => (l.length === 0 ? 'expected at least one stage' : undefined)), [0, 1, 2, 3]),
  frozen_stages: optional(int({ min: -1, max: 4 }), -1),
  out_norms: optional(bool(), true),
  with_cp: optional(bool(), false),
  checkpoint: optional(oneOf(str(), nul())),
});

export type Conv2FormerBlock = Infer<typeof conv2formerSchema>;

export interface BackboneBuildOptions {
  /** Informational lines (checkpoint loading). */
  log: (line: string) => void;
  /** Read `checkpoint` (default true; false when a full model checkpoint will replace the weights). */
  loadCheckpoint?: boolean;
  /** The config file and key path of the block, for errors. */
  file?: string;
  path: string;
}

/** Builds the Conv2Former of a validated block, loading its checkpoint when there is one. */
export async function buildConv2Former(b: Conv2FormerBlock, opts: BackboneBuildOptions): Promise<Conv2Former> {
  const arch: Conv2FormerConfig = typeof b.variant === 'string'
    ? { ...CONV2FORMER_VARIANTS[b.variant] }
    : { dims: b.variant.dims as Conv2FormerConfig['dims'], depths: b.variant.depths as Conv2FormerConfig['depths'], kernelSize: b.variant.kernel_size };
  const options = { outIndices: b.out_indices, dropPathRate: b.drop_path_rate, frozenStages: b.frozen_stages, outNorms: b.out_norms, withCp: b.with_cp };
  const ckpt = b.checkpoint;
  if (!ckpt || opts.loadCheckpoint === false) return createConv2Former(arch, options);
  const dict = await readCheckpointFile(ckpt);
  const k = kernelSizeFromStateDict(dict, ckpt);
  if (k !== arch.kernelSize) {
    opts.log(`backbone: ${ckpt} has kernel size ${k}, the config says ${arch.kernelSize}; using ${k}`);
    arch.kernelSize = k;
  }
  const backbone = createConv2Former(arch, { ...options, init: 'random' });
  let res;
  try {
    res = backbone.loadStateDict(dict, { strict: false });
  } catch (err) {
    const path = `${opts.path}.checkpoint`;
    throw new ConfigError(`${[opts.file, path].filter(Boolean).join(': ')}: cannot load ${ckpt}: ${(err as Error).message}`, { file: opts.file, path, value: ckpt });
  }
  opts.log(`backbone: loaded ${ckpt} (${res.missing.length} missing keys, ${res.unexpected.length} unexpected keys)`);
  return backbone;
}
