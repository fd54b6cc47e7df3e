/**
 * What the end-to-end demos share: running the other tools as child processes with live output,
 * and making sure the built-in shapes data set is there (regenerated when it is missing, stale or
 * lacks the needed task).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { SHAPES_GENERATOR_VERSION, generateShapes, readShapesStamp } from '../src/datasets/shapes.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');

/** Runs `tools/<tool>` with node + tsx, output shown live; throws when it fails. */
export function runTool(tool: string, args: string[]): void {
  console.log(`\n$ npx tsx tools/${tool} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tools', tool), ...args], { cwd: ROOT, stdio: 'inherit' });
  if (r.error) throw new Error(`cannot run tools/${tool}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`tools/${tool} failed (exit ${r.status ?? r.signal})`);
}

/** Generates `data/shapes` (seed 0, the defaults) unless an up-to-date set with `task` is there. */
export async function ensureShapes(task: 'semantic' | 'instances'): Promise<void> {
  const stamp = readShapesStamp(path.join('data', 'shapes'));
  const why = !stamp ? 'no data/shapes/shapes.json'
    : stamp.generator_version !== SHAPES_GENERATOR_VERSION ? `it was made by generator version ${stamp.generator_version}, this is ${SHAPES_GENERATOR_VERSION}`
    : !stamp.what.includes(task) ? `it has no ${task} set` : null;
  if (why) {
    console.log(`generating the shapes data set in data/shapes (${why}) ...`);
    await generateShapes({ out: 'data/shapes', seed: 0 });
  } else {
    console.log('using the existing data/shapes');
  }
}

/** The options every demo takes (yargs `.options(...)`). */
export const DEMO_OPTIONS = {
  'max-iters': { type: 'number', describe: 'training iterations (default: the config\'s schedule.max_iters)' },
  backend: { type: 'string', describe: 'tfjs backend: auto, tensorflow-gpu, tensorflow, wasm, cpu' },
} as const;

/** `--max-iters` checked (a positive integer or absent). */
export function checkMaxIters(v: number | undefined): number | undefined {
  if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new Error(`--max-iters must be a positive integer, got ${v}`);
  return v;
}
