/**
 * Worker side of the reader fuzz test: runs one target's cases (started through
 * src/util/worker_boot.mjs, so that the test thread can time out and terminate a hung reader).
 * Posts `{type: 'case'}` before each case (the parent's last-seen case names a hang or a crash)
 * and one `{type: 'done'}` report at the end.
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Rng } from './fuzz_mutate.ts';
import { cocoTargets, seedGtText, type FuzzTarget } from './fuzz_targets_coco.ts';
import { pngTarget, safetensorsTarget, yamlTarget } from './fuzz_targets_files.ts';

/** What the test thread passes to the worker. */
export interface FuzzInit {
  entry: string;
  target: string;
  seed: number;
  /** The case indices run are `first .. first + cases - 1`. */
  first: number;
  cases: number;
  dir: string;
}

/** One case whose outcome broke the contract. */
export interface FuzzFailure {
  index: number;
  what: string[];
  problem: string;
}

/** The worker's final message. */
export interface FuzzReport {
  type: 'done';
  results: number;
  errors: number;
  failures: FuzzFailure[];
  /** The slowest case, in milliseconds. */
  slowest: { index: number; ms: number; what: string[] };
  /** How many errors of each kind (the message without the file, numbers and quoted values). */
  kinds: Record<string, number>;
}

/** Messages that say a limit is missing, even when they name the file. */
const UNGUARDED = /Maximum call stack size exceeded|Invalid (typed )?array length|Array buffer allocation failed|Cannot create a Buffer larger/;

async function target(name: string, dir: string): Promise<FuzzTarget> {
  if (name === 'label-png') return pngTarget();
  if (name === 'safetensors') return safetensorsTarget();
  if (name === 'yaml-config') return yamlTarget(dir);
  const gtFile = path.join(dir, 'seed-gt.json');
  writeFileSync(gtFile, seedGtText());
  const t = (await cocoTargets(gtFile)).find((x) => x.name === name);
  if (!t) throw new Error(`unknown fuzz target '${name}'`);
  return t;
}

/** The contract: a thrown `Error` whose message names the file and is not an unguarded limit. */
function problemOf(err: unknown, file: string): string | null {
  if (!(err instanceof Error)) return `threw a non-Error: ${String(err)}`;
  const head = `${err.name}: ${err.message.slice(0, 300)}`;
  if (!err.message.includes(file)) return `error does not name the file: ${head}`;
  if (UNGUARDED.test(err.message)) return `unguarded limit: ${head}`;
  return null;
}

const init = workerData as FuzzInit;
const t = await target(init.target, init.dir);
const report: FuzzReport = { type: 'done', results: 0, errors: 0, failures: [], slowest: { index: -1, ms: -1, what: [] }, kinds: {} };
// The unmutated seeds must read: otherwise every case would fail for the seed's sake.
for (const [k, seed] of t.seeds.entries()) {
  const file = path.join(init.dir, `${t.name}-seed-${k}.${t.ext}`);
  writeFileSync(file, seed);
  try {
    await t.read(file);
  } catch (err) {
    report.failures.push({ index: -1, what: [`seed ${k}`], problem: `the valid seed file fails: ${(err as Error).message}` });
  }
  rmSync(file, { force: true });
}
for (let index = init.first; index < init.first + init.cases; index++) {
  const { data, what } = t.make(Rng.forCase(init.seed, index));
  const file = path.join(init.dir, `${t.name}-${index}.${t.ext}`);
  writeFileSync(file, data);
  parentPort!.postMessage({ type: 'case', index, what });
  const t0 = performance.now();
  try {
    await t.read(file);
    report.results++;
  } catch (err) {
    report.errors++;
    const problem = problemOf(err, file);
    const kind = String(err instanceof Error ? err.message : err).replaceAll(file, 'FILE').replace(/"[^"]*"|'[^']*'|\[[^\]]*\]|-?\d[\d.e+]*/g, '_').slice(0, 70);
    report.kinds[kind] = (report.kinds[kind] ?? 0) + 1;
    if (problem && report.failures.length < 20) report.failures.push({ index, what, problem });
  }
  const ms = performance.now() - t0;
  if (ms > report.slowest.ms) report.slowest = { index, ms, what };
  rmSync(file, { force: true });
}
parentPort!.postMessage(report);
