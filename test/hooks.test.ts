/** Trainer hooks: a custom hook in a real run, and each default hook against a stand-in trainer. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Module } from '../src/nn/module.ts';
import { Linear } from '../src/nn/linear.ts';
import { manualSeed } from '../src/nn/random.ts';
import type { Batch } from '../src/datasets/collate.ts';
import { DataLoader } from '../src/datasets/loader.ts';
import { FakeImages } from './helpers/fake_images.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { Trainer, type Hook, type IterContext, type RunContext, type TrainableModel, type TrainerApi } from '../src/engine/trainer.ts';
import { CheckpointHook } from '../src/engine/hooks/checkpoint_hook.ts';
import { EvalHook } from '../src/engine/hooks/eval_hook.ts';
import { InterruptHook } from '../src/engine/hooks/interrupt_hook.ts';
import { LoggerHook } from '../src/engine/hooks/logger_hook.ts';
import { ProgressHook } from '../src/engine/hooks/progress_hook.ts';

await tf.setBackend('cpu');

const tmp = () => mkdtempSync(join(tmpdir(), 'hooks-test-'));

/** Linear model on pooled 4x4 images: outputs `loss` and a constant `acc`. */
class Pooled extends Module implements TrainableModel {
  readonly fc: Linear;
  constructor() {
    super();
    this.fc = this.addModule('fc', new Linear(3, 1));
  }
  loss(batch: Batch): Record<string, tf.Scalar> {
    return tf.tidy(() => {
      const y = this.fc.forward(tf.mean(batch.imgs, [1, 2]) as tf.Tensor2D);
      return { 'x.loss': tf.mean(tf.square(tf.sub(y, 1))) as tf.Scalar, 'x.acc': tf.scalar(7) as tf.Scalar };
    });
  }
}

/** A stand-in trainer: records saved checkpoints, log lines, stop() and the model mode. */
function fakeTrainer(workDir: string, maxIters: number) {
  const modes: string[] = [];
  const t: TrainerApi & { iter: number; lastCheckpoint: string | null; lastCheckpointIter: number; saved: number[]; lines: string[]; stopped: boolean; modes: string[] } = {
    iter: 0,
    maxIters,
    workDir,
    model: { eval: () => modes.push('eval'), train: () => modes.push('train') } as unknown as TrainableModel,
    optimizer: null as never,
    lastCheckpoint: null as string | null,
    lastCheckpointIter: -1,
    best: null,
    runId: 'test-run',
    writes: true,
    anyRank: async (flag: boolean) => flag,
    saved: [] as number[],
    lines: [] as string[],
    stopped: false,
    modes,
    async saveCheckpoint(): Promise<string> {
      t.saved.push(t.iter);
      t.lastCheckpoint = `iter_${t.iter}.safetensors`;
      t.lastCheckpointIter = t.iter;
      return join(workDir, t.lastCheckpoint);
    },
    stop(): void {
      t.stopped = true;
    },
    log(line: string): void {
      t.lines.push(line);
    },
  };
  return t;
}

/** The afterIter context at iteration `iter` (the stand-in's `iter` is set to it). */
function iterCtx(t: ReturnType<typeof fakeTrainer>, iter: number, extra: Partial<IterContext> = {}): IterContext {
  t.iter = iter;
  return { trainer: t, fresh: true, startIter: 0, iter, lr: 0.1, loss: 1, parts: { 'x.loss': 1 }, gradNorm: 2, time: 0.5, dataTime: 0.1, ...extra };
}

test('a custom hook sees beforeRun, beforeIter/afterIter with iteration, lr and losses, afterRun; stop() ends the run', async () => {
  const dir = tmp();
  try {
    manualSeed(0);
    const model = new Pooled();
    const loader = new DataLoader(new FakeImages(4, false, 4), { batchSize: 2, infinite: true });
    const optimizer = new AdamW(model, { lr: 0.1 });
    const calls: string[] = [];
    const seen: IterContext[] = [];
    const hook: Hook = {
      beforeRun: (c: RunContext) => { calls.push(`beforeRun fresh=${c.fresh} start=${c.startIter}`); },
      beforeIter: (c: RunContext) => { calls.push(`beforeIter ${c.trainer.iter}`); },
      afterIter: (c: IterContext) => {
        calls.push(`afterIter ${c.iter}`);
        seen.push(c);
        if (c.iter === 3) c.trainer.stop();
      },
      afterRun: () => { calls.push('afterRun'); },
    };
    const t = new Trainer({ model, loader, optimizer, schedule: { policy: 'step', base_lr: 0.1, steps: [2], gamma: 0.5 }, maxIters: 10, workDir: dir,
      logInterval: 100, checkpointInterval: 100, seed: 0, log: () => {}, progress: false, hooks: [hook] });
    const n0 = tf.memory().numTensors;
    assert.deepEqual(await t.run(), { iter: 3, interrupted: true });
    assert.equal(tf.memory().numTensors, n0);
    assert.deepEqual(calls, ['beforeRun fresh=true start=0', 'beforeIter 0', 'afterIter 1', 'beforeIter 1', 'afterIter 2', 'beforeIter 2', 'afterIter 3', 'afterRun']);
    assert.deepEqual(seen.map((c) => c.lr), [0.1, 0.1, 0.05]);
    for (const c of seen) {
      assert.ok(Number.isFinite(c.loss) && c.loss > 0 && c.loss === c.parts['x.loss'], `loss ${c.loss} vs parts ${JSON.stringify(c.parts)}`);
      assert.equal(c.parts['x.acc'], 7);
      assert.ok(c.gradNorm > 0 && c.time >= c.dataTime && c.dataTime >= 0);
    }
    assert.equal(process.listenerCount('SIGINT'), 0);
    optimizer.dispose();
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CheckpointHook saves every interval and at maxIters', async () => {
  const t = fakeTrainer('/nonexistent', 7);
  const h = new CheckpointHook(3);
  for (let i = 1; i <= 7; i++) await h.afterIter(iterCtx(t, i));
  assert.deepEqual(t.saved, [3, 6, 7]);
});

test('EvalHook: val rows, eval/train mode, best.json tracks the best metric (saving a checkpoint first when needed)', async () => {
  const dir = tmp();
  try {
    const t = fakeTrainer(dir, 6);
    const scores = [30, 50, 40];
    let k = 0;
    const h = new EvalHook({ evaluate: async () => ({ mIoU: scores[k++], aAcc: 0.5 }), interval: 2, bestMetric: 'mIoU' });
    for (let i = 1; i <= 6; i++) {
      const ctx = iterCtx(t, i);
      if (i === 4) await t.saveCheckpoint(); // a checkpoint of iter 4 exists: not written again
      await h.afterIter(ctx);
    }
    assert.deepEqual(t.saved, [2, 4]);
    assert.deepEqual(t.modes, ['eval', 'train', 'eval', 'train', 'eval', 'train']);
    const best = JSON.parse(readFileSync(join(dir, 'best.json'), 'utf8'));
    assert.deepEqual(best, { iter: 4, weights: 'iter_4.safetensors', state: 'iter_4_state.safetensors', run_id: 'test-run', metric: 'mIoU', value: 50 });
    assert.deepEqual(t.best, best);
    assert.equal(readFileSync(join(dir, 'log.jsonl'), 'utf8'),
      '{"mode":"val","iter":2,"mIoU":30,"aAcc":0.5}\n{"mode":"val","iter":4,"mIoU":50,"aAcc":0.5}\n{"mode":"val","iter":6,"mIoU":40,"aAcc":0.5}\n');
    assert.deepEqual(t.lines, ['eval iter 2: mIoU 30, aAcc 0.5', 'new best mIoU 30 at iter 2', 'eval iter 4: mIoU 50, aAcc 0.5', 'new best mIoU 50 at iter 4', 'eval iter 6: mIoU 40, aAcc 0.5']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LoggerHook: window averages every interval and at the end; a fresh run moves an old log aside', async () => {
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'log.jsonl'), '{"old":1}\n');
    const t = fakeTrainer(dir, 5);
    const h = new LoggerHook({ interval: 2 });
    await h.beforeRun({ trainer: t, fresh: true, startIter: 0 });
    assert.deepEqual(readdirSync(dir).filter((f) => /^log\..+\.jsonl$/.test(f)).length, 1);
    for (let i = 1; i <= 5; i++) h.afterIter(iterCtx(t, i, { lr: i / 10, loss: i, parts: { 'x.loss': i, 'x.acc': 10 * i }, gradNorm: i, workerTensors: 3 }));
    const rows = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => [r.iter, r.lr, r.loss, r['x.loss'], r['x.acc'], r.grad_norm, r.worker_tensors]),
      [[2, 0.2, 1.5, 1.5, 15, 2, 3], [4, 0.4, 3.5, 3.5, 35, 4, 3], [5, 0.5, 5, 5, 50, 5, 3]]);
    assert.deepEqual(Object.keys(rows[0]), ['iter', 'lr', 'loss', 'x.loss', 'x.acc', 'grad_norm', 'time', 'data_time', 'eta_s', 'num_tensors', 'worker_tensors']);
    assert.equal(rows[2].eta_s, 0);
    assert.match(t.lines[0], /^iter 2\/5 {2}lr 2\.000e-1 {2}loss 1\.5 \(x\.loss 1\.5, x\.acc 15\) {2}0\.500 s\/iter {2}data 0\.100 s {2}ETA \d+m\d\ds {2}tensors \d+ \(workers 3\)$/);
    // A resumed run keeps the rows up to its checkpoint and appends (the redone iterations' rows are dropped).
    await h.beforeRun({ trainer: t, fresh: false, startIter: 4 });
    assert.deepEqual(readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).iter), [2, 4]);
    assert.ok(existsSync(join(dir, 'log.jsonl')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ProgressHook draws a \\r bar with the loss and ends the line after the run', () => {
  const t = fakeTrainer('/nonexistent', 4);
  const out: string[] = [];
  const write = process.stdout.write;
  process.stdout.write = ((s: string) => out.push(s) > 0) as typeof process.stdout.write;
  try {
    const h = new ProgressHook(8);
    h.afterIter(iterCtx(t, 1, { loss: 0.5 }));
    h.afterRun();
  } finally {
    process.stdout.write = write;
  }
  assert.deepEqual(out, ['\r[##......] 1/4 loss 0.5', '\n']);
});

test('InterruptHook: SIGINT -> save (unless saved at this iter), say where, stop; listener removed after', async () => {
  const t = fakeTrainer('/w', 10);
  const h = new InterruptHook(false);
  h.beforeRun();
  await h.afterIter(iterCtx(t, 1));
  assert.equal(t.stopped, false);
  process.emit('SIGINT');
  await h.afterIter(iterCtx(t, 2));
  assert.deepEqual(t.saved, [2]);
  assert.equal(t.stopped, true);
  assert.deepEqual(t.lines, ['interrupted (SIGINT) at iter 2; saved /w/iter_2.safetensors']);
  h.afterRun();
  assert.equal(process.listenerCount('SIGINT'), 0);
  // Already saved at this iteration: not saved again.
  const t2 = fakeTrainer('/w', 10);
  h.beforeRun();
  iterCtx(t2, 3);
  await t2.saveCheckpoint();
  process.emit('SIGINT');
  await h.afterIter(iterCtx(t2, 3));
  h.afterRun();
  assert.deepEqual(t2.saved, [3]);
  assert.equal(t2.stopped, true);
});
