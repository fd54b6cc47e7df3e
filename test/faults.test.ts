/**
 * Fault injection: the real trainer process (`tools/train.ts`) is SIGKILLed at seeded points across
 * iterations, checkpoint writes and evaluation (through `C2F_FAULT_AT`, src/util/fault_points.ts),
 * then resumed; every resume must end with the uninterrupted run's final weights (byte for byte),
 * `best.json` and log. Also: the work-dir lock, a killed launcher, mismatched checkpoint pairs, a
 * damaged `best.json`, and counted skips of bad images in training and testing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateShapes } from '../src/datasets/shapes.ts';
import { Rng } from '../src/nn/random.ts';
import { tinySegData } from './helpers/tiny_seg.ts';
import { ROOT } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-faults-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const ENV = { C2F_BACKEND: 'wasm', C2F_WASM_THREADS: '1' };
const MAX_ITERS = 6;

const dataReady = generateShapes({ out: path.join(tmp, 'data'), train: 4, val: 2, minSize: 64, maxSize: 80, what: ['semantic'], log: () => {} });

/** A copy of the shapes data in `dir` (for tests that damage files). */
async function dataCopy(dir: string): Promise<string> {
  await dataReady;
  cpSync(path.join(tmp, 'data'), dir, { recursive: true });
  return dir;
}

/** A tiny UperNet config over the shapes data in `data`: checkpoints at 2, 4, 6; evaluations at 3, 6; log rows every 2. */
function writeConfig(name: string, data = path.join(tmp, 'data'), extra: Record<string, unknown> = {}): string {
  const cfg = {
    _base_: path.join(ROOT, 'configs', 'upernet_c2f_shapes.yaml'),
    data: {
      batch_size: 2,
      num_workers: 0,
      ...tinySegData(data),
    },
    schedule: { max_iters: MAX_ITERS, warmup_iters: 1 },
    train: { eval_interval: 3, checkpoint_interval: 2, log_interval: 2 },
    ...extra,
  };
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

/** `node --import tsx tools/<tool> ...args` (the trainer is this very process), resolved when it ends. */
function start(tool: string, args: string[], env: Record<string, string> = {}, launcher = false): { child: ChildProcess; done: Promise<Run> } {
  const cmd = launcher ? [path.join(ROOT, 'node_modules', '.bin', 'tsx')] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...cmd, path.join(ROOT, 'tools', tool), ...args], { cwd: ROOT, env: { ...process.env, ...ENV, ...env } });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out })));
  return { child, done };
}

const run = (tool: string, args: string[], env: Record<string, string> = {}): Promise<Run> => start(tool, args, env).done;

/** Log rows without the timings (which differ from run to run). */
function logRows(work: string): Record<string, unknown>[] {
  return readFileSync(path.join(work, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const { time: _t, data_time: _d, eta_s: _e, num_tensors: _n, ...rest } = JSON.parse(l) as Record<string, unknown>;
    return rest;
  });
}

function bestOf(work: string): Record<string, unknown> {
  const { run_id: _r, ...rest } = JSON.parse(readFileSync(path.join(work, 'best.json'), 'utf8')) as Record<string, unknown>;
  return rest;
}

function pick<T>(items: T[], n: number, next: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a.slice(0, n);
}

const points = (name: string, n: number): string[] => Array.from({ length: n }, (_, k) => `${name}@${k + 1}`);

let baseline: Promise<string> | null = null;
/** The uninterrupted run (once). */
function baselineRun(): Promise<string> {
  baseline ??= (async () => {
    await dataReady;
    const work = path.join(tmp, 'baseline');
    const r = await run('train.ts', [writeConfig('tiny'), '--work-dir', work]);
    assert.equal(r.code, 0, r.out);
    return work;
  })();
  return baseline;
}

test('SIGKILL at 12 seeded points (iterations, checkpoint writes, evaluation), then --resume: the uninterrupted run\'s weights, best.json and log', async (t) => {
  const base = await baselineRun();
  const cfg = writeConfig('tiny');
  // Reached in every run of this config: 6 steps and 3 train log rows (+2 val rows), 4 checkpoints
  // (iters 2, 3 for the best, 4, 6) of 3 atomic writes each, 2 evaluations of 2 images, a new best at 3.
  const r = new Rng(16);
  const next = (): number => r.uniform();
  const chosen = [
    ...pick([...points('train:step', MAX_ITERS), ...points('log:row', 5)], 4, next),
    ...pick([...points('checkpoint:weights', 4), ...points('checkpoint:state', 4), ...points('atomic:rename', 12)], 4, next),
    ...pick([...points('eval:sample', 4), ...points('eval:metrics', 2), 'eval:best@1'], 4, next),
  ];
  t.diagnostic(`fault points: ${chosen.join(' ')}`);
  const expectWeights = readFileSync(path.join(base, `iter_${MAX_ITERS}.safetensors`));
  const one = async (fault: string, i: number): Promise<void> => {
    const work = path.join(tmp, `fault_${i}`);
    const killed = await run('train.ts', [cfg, '--work-dir', work], { C2F_FAULT_AT: fault });
    assert.equal(killed.signal, 'SIGKILL', `${fault}: the fault point was not reached (exit ${killed.code}):\n${killed.out}`);
    const resumed = await run('train.ts', [cfg, '--work-dir', work, '--resume']);
    assert.equal(resumed.code, 0, `${fault}: the resume failed:\n${resumed.out}`);
    assert.ok(expectWeights.equals(readFileSync(path.join(work, `iter_${MAX_ITERS}.safetensors`))), `${fault}: final weights differ from the uninterrupted run's`);
    assert.deepEqual(bestOf(work), bestOf(base), `${fault}: best.json`);
    assert.deepEqual(logRows(work), logRows(base), `${fault}: log.jsonl`);
    const left = readdirSync(work).filter((f) => f.endsWith('.tmp') || f === '.lock');
    assert.deepEqual(left, [], `${fault}: left behind`);
  };
  // Two cases at a time (one process each on the two cores).
  for (let i = 0; i < chosen.length; i += 2) await Promise.all(chosen.slice(i, i + 2).map((f, k) => one(f, i + k)));
});

test('a second run on a locked work dir fails naming the first; a killed launcher takes its trainer down', async () => {
  await dataReady;
  const cfg = writeConfig('long', undefined, { schedule: { max_iters: 100000, warmup_iters: 1 }, train: { eval_interval: 100000, checkpoint_interval: 100000, log_interval: 50 } });
  const work = path.join(tmp, 'locked');
  // Started through the tsx CLI, as `npx tsx tools/train.ts` does: a launcher process and the trainer below it.
  const first = start('train.ts', [cfg, '--work-dir', work], {}, true);
  const lock = path.join(work, '.lock');
  for (let t = 0; !existsSync(lock) || readFileSync(lock, 'utf8').length === 0; t++) {
    assert.ok(t < 600, 'the first run did not take the lock within 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const holder = (JSON.parse(readFileSync(lock, 'utf8')) as { pid: number }).pid;
  assert.notEqual(holder, first.child.pid, 'the lock holder is the trainer, below the launcher');
  const second = await run('train.ts', [cfg, '--work-dir', work]);
  assert.equal(second.code, 1);
  assert.match(second.out, new RegExp(`error: work dir ${work.replace(/[/\\]/g, '.')} is in use by another run: pid ${holder} on `));

  first.child.kill('SIGKILL'); // the launcher: SIGKILL cannot be relayed
  await first.done;
  const t0 = Date.now();
  const alive = (): boolean => { try { process.kill(holder, 0); return true; } catch { return false; } };
  while (alive()) {
    assert.ok(Date.now() - t0 < 10_000, `trainer ${holder} still runs 10 s after its launcher was killed`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(existsSync(lock), false, 'the trainer released its lock on the way out');
});

test('--resume refuses a weights/state pair that was not written together, naming both files, and a changed seed', async () => {
  const base = await baselineRun();
  const cfg = writeConfig('tiny');
  const work = path.join(tmp, 'mixed');
  cpSync(base, work, { recursive: true });
  // A crash between the two writes of a later run leaves new weights beside an old state.
  copyFileSync(path.join(work, 'iter_2.safetensors'), path.join(work, 'iter_4.safetensors'));
  const w = path.join(work, 'iter_4.safetensors');
  const r = await run('train.ts', [cfg, '--work-dir', work, '--resume', w]);
  assert.equal(r.code, 1, r.out);
  assert.ok(r.out.includes(`error: cannot resume: ${w} and ${path.join(work, 'iter_4_state.safetensors')} are not one checkpoint`), r.out);

  const seed = await run('train.ts', [cfg, '--work-dir', work, '--resume', '--cfg-options', 'train.seed=5']);
  assert.equal(seed.code, 1, seed.out);
  assert.match(seed.out, /the config differs from the checkpoint's: train\.seed: checkpoint 0, config 5/);
  const model = await run('train.ts', [cfg, '--work-dir', work, '--resume', '--cfg-options', 'model.decode_head.channels=16']);
  assert.equal(model.code, 1, model.out);
  assert.match(model.out, /model\.decode_head\.channels: checkpoint \d+, config 16/);
});

test('a damaged best.json stops --resume with a message naming it', async () => {
  const base = await baselineRun();
  const work = path.join(tmp, 'damaged');
  cpSync(base, work, { recursive: true });
  writeFileSync(path.join(work, 'best.json'), '{"iter": 3, "weig');
  const r = await run('train.ts', [writeConfig('tiny'), '--work-dir', work, '--resume']);
  assert.equal(r.code, 1, r.out);
  assert.ok(r.out.includes(`best-checkpoint pointer ${path.join(work, 'best.json')} is not valid JSON`), r.out);
});

test('bad images: counted and named by training and testing; --strict-data makes them errors; an unreadable val set fails before training', async () => {
  const base = await baselineRun();
  const data = await dataCopy(path.join(tmp, 'bad-data'));
  const valDir = path.join(data, 'ade', 'images', 'validation');
  const [bad, good] = readdirSync(valDir).sort();
  writeFileSync(path.join(valDir, bad), 'not an image');
  const cfg = writeConfig('bad', data);

  const metrics = path.join(tmp, 'bad-metrics.json');
  const t = await run('test.ts', [cfg, path.join(base, 'latest.json'), '--metrics-out', metrics]);
  assert.equal(t.code, 0, t.out);
  assert.match(t.out, new RegExp(`evaluated 1 of 2 images of data\\.val; skipped 1 of 2 samples \\(first: ${path.join(valDir, bad).replace(/[/\\.]/g, '.')}: `));
  const m = JSON.parse(readFileSync(metrics, 'utf8')) as Record<string, unknown>;
  assert.deepEqual([m.num_images, m.num_evaluated, m.num_skipped], [2, 1, 1]);
  assert.match(String(m.first_skipped), new RegExp(bad));
  const strict = await run('test.ts', [cfg, path.join(base, 'latest.json'), '--strict-data']);
  assert.equal(strict.code, 1, strict.out);
  assert.ok(strict.out.includes(path.join(valDir, bad)), strict.out);

  const tr = await run('train.ts', [cfg, '--work-dir', path.join(tmp, 'bad-train')]);
  assert.equal(tr.code, 0, tr.out);
  assert.match(tr.out, /data\.val: skipped 1 of 2 samples \(first: /);

  writeFileSync(path.join(valDir, good), 'not an image either');
  const none = await run('train.ts', [cfg, '--work-dir', path.join(tmp, 'bad-train2')]);
  assert.equal(none.code, 1, none.out);
  assert.match(none.out, /error: data\.val of .*: none of the first 2 samples could be loaded \(first: /);
  assert.equal(existsSync(path.join(tmp, 'bad-train2', 'iter_2.safetensors')), false);
});
