/**
 * Fuzz test of the file readers (issue 16): COCO GT and results JSON, RLE counts strings, polygons,
 * label PNGs, safetensors and YAML configs. Each target reads 1,000 seeded mutations of a small
 * valid file; every case must end in a result or in an `Error` naming the file, never in a crash,
 * a hang, a process-level exception, a non-Error throw or an unguarded limit ("Maximum call stack
 * size exceeded", "Invalid array length"). Each target runs in a worker thread, so a hang is cut
 * off and reported with its case.
 *
 * Reproduce a failure: `FUZZ_SEED=<seed> FUZZ_CASE=<index> FUZZ_TARGET=<name> node --import tsx --test test/fuzz_readers.test.ts`
 * (FUZZ_CASES changes the count).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { COCO } from '../src/coco/index.ts';
import type { FuzzInit, FuzzReport } from './helpers/fuzz_worker.ts';

const SEED = Number(process.env.FUZZ_SEED ?? 16);
const ONLY_CASE = process.env.FUZZ_CASE === undefined ? undefined : Number(process.env.FUZZ_CASE);
const CASES = ONLY_CASE === undefined ? Number(process.env.FUZZ_CASES ?? 1000) : 1;
const TARGETS = ['coco-gt-json', 'coco-results-json', 'rle-strings', 'polygons', 'label-png', 'safetensors', 'yaml-config'];
/** A whole target's cases; far above their usual few seconds, so only a hang trips it. */
const TARGET_TIMEOUT_MS = 50_000;

const dir = mkdtempSync(path.join(os.tmpdir(), 'c2f-fuzz-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

interface CaseMessage {
  type: 'case';
  index: number;
  what: string[];
}

/** Runs one target's cases in a worker; rejects on a hang, a crash or a process-level exception. */
function runTarget(target: string): Promise<FuzzReport> {
  const init: FuzzInit = {
    entry: new URL('./helpers/fuzz_worker.ts', import.meta.url).href,
    target,
    seed: SEED,
    first: ONLY_CASE ?? 0,
    cases: CASES,
    dir: mkdtempSync(path.join(dir, `${target}-`)),
  };
  // --no-warnings: the YAML library warns (process.emitWarning) about every complex key it flattens.
  const worker = new Worker(new URL('../src/util/worker_boot.mjs', import.meta.url), { workerData: init, execArgv: [...process.execArgv, '--no-warnings'] });
  let last: CaseMessage | null = null;
  const where = (): string => (last ? `seed ${SEED} case ${last.index} (mutations: ${last.what.join(', ')})` : `seed ${SEED}, before the first case`);
  return new Promise<FuzzReport>((resolve, reject) => {
    const timer = setTimeout(() => {
      void worker.terminate();
      reject(new Error(`${target}: hang: ${where()} still running after ${TARGET_TIMEOUT_MS / 1000} s`));
    }, TARGET_TIMEOUT_MS);
    worker.on('message', (m: CaseMessage | FuzzReport) => {
      if (m.type === 'case') last = m;
      else {
        clearTimeout(timer);
        resolve(m);
      }
    });
    worker.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${target}: process-level exception at ${where()}: ${err.stack ?? String(err)}`));
    });
    worker.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${target}: worker exited (code ${code}) at ${where()}`));
    });
  });
}

for (const target of TARGETS) {
  if (process.env.FUZZ_TARGET && process.env.FUZZ_TARGET !== target) continue;
  test(`fuzz ${target}: ${CASES} seeded mutations end in a result or an error naming the file`, async () => {
    const t0 = performance.now();
    const r = await runTarget(target);
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`${target}: ${r.results + r.errors} cases in ${s} s: ${r.results} results, ${r.errors} errors; slowest case ${r.slowest.index} ${r.slowest.ms.toFixed(0)} ms (${r.slowest.what.join(', ')})`);
    const kinds = Object.entries(r.kinds).sort((a, b) => b[1] - a[1]);
    console.log(`  ${kinds.length} kinds of error; most common: ${kinds.slice(0, 3).map(([k, n]) => `${n} x ${k}`).join(' | ')}`);
    if (process.env.FUZZ_VERBOSE) for (const [k, n] of kinds) console.log(`  ${n} x ${k}`);
    const lines = r.failures.map((f) => `  seed ${SEED} case ${f.index} (mutations: ${f.what.join(', ')}): ${f.problem}`);
    assert.equal(r.failures.length, 0, `${target}: ${r.failures.length}${r.failures.length === 20 ? '+' : ''} bad outcomes:\n${lines.join('\n')}`);
    assert.equal(r.results + r.errors, CASES);
  });
}

test('a COCO file nested 5,000,000 levels deep is an error naming the file', async () => {
  const deep = '['.repeat(5e6) + ']'.repeat(5e6);
  const file = path.join(dir, 'deep.json');
  writeFileSync(file, deep);
  await assert.rejects(COCO.fromFile(file), (e: Error) => e.message.includes(file) && /nested too deep/.test(e.message));
  const gtFile = path.join(dir, 'gt-deep-field.json');
  writeFileSync(gtFile, `{"images": [], "categories": [], "annotations": ${deep}}`);
  await assert.rejects(COCO.fromFile(gtFile), (e: Error) => e.message.includes(gtFile) && /nested too deep/.test(e.message));
  const gt = new COCO({ images: [{ id: 1, width: 4, height: 4 }], categories: [{ id: 1, name: 'a' }], annotations: [] });
  assert.throws(() => gt.loadRes(file), (e: Error) => e.message.includes(file) && /nested too deep/.test(e.message));
});
