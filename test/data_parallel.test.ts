/** Data-parallel gradients on worker threads: slicing, batch transfer, gradient averaging, trainer use. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Batch, ImgMeta } from '../src/datasets/collate.ts';
import { packBatch, unpackBatch } from '../src/datasets/batch_transfer.ts';
import { DataParallel, sliceSizes } from '../src/engine/data_parallel.ts';
import { batchGradients, type BatchGradients } from '../src/engine/gradients.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { Trainer } from '../src/engine/trainer.ts';
import type { DataLoader } from '../src/datasets/loader.ts';
import { buildModel } from '../src/models/build.ts';
import { Rng, manualSeed } from '../src/nn/random.ts';

await tf.setBackend('cpu');

/** A tiny UperNet; `dropPath` > 0 makes the gradients depend on the random stream. */
const modelConfig = (dropPath: number) => ({
  type: 'EncoderDecoder',
  backbone: { type: 'Conv2Former', variant: { dims: [8, 16, 16, 16], depths: [1, 1, 1, 1], kernel_size: 3 }, drop_path_rate: dropPath },
  decode_head: { type: 'UPerHead', channels: 8, num_classes: 3, dropout_ratio: 0 },
  auxiliary_head: { type: 'FCNHead', in_index: 2, channels: 4, num_classes: 3, loss_weight: 0.4, dropout_ratio: 0 },
});

/** `n` random 32x32 images with random labels (some ignored). */
function randomBatch(n: number, seed: number): Batch {
  const rng = new Rng(seed);
  const H = 32, W = 32;
  const img = Float32Array.from({ length: n * H * W * 3 }, () => rng.normal());
  const seg = Int32Array.from({ length: n * H * W }, () => (rng.uniform() < 0.1 ? 255 : Math.floor(rng.uniform() * 3)));
  const meta = (i: number): ImgMeta => ({ imageId: i, oriShape: [H, W], imgShape: [H, W], padShape: [H, W], batchInputShape: [H, W], scaleFactor: [1, 1], flip: false });
  return unpackBatch({
    imgs: img, imgsShape: [n, H, W, 3], metas: Array.from({ length: n }, (_, i) => meta(i)),
    gtBboxes: Array.from({ length: n }, () => new Float32Array(0)), gtLabels: Array.from({ length: n }, () => new Int32Array(0)),
    gtMasks: Array.from({ length: n }, () => undefined), gtBboxesIgnore: Array.from({ length: n }, () => new Float32Array(0)),
    gtSegMaps: seg,
  });
}

function assertGradsClose(got: BatchGradients, want: BatchGradients, tol = 1e-5): void {
  assert.deepEqual(Object.keys(got.grads).sort(), Object.keys(want.grads).sort());
  for (const [k, g] of Object.entries(want.grads)) {
    const a = got.grads[k].dataSync(), b = g.dataSync();
    const scale = Math.max(1e-3, ...Array.from(b, Math.abs));
    for (let i = 0; i < b.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol * scale, `${k}[${i}]: ${a[i]} vs ${b[i]}`);
  }
  assert.ok(Math.abs(got.total - want.total) <= 1e-5 * Math.abs(want.total), `total ${got.total} vs ${want.total}`);
}

test('sliceSizes: nearly equal, larger first, never empty', () => {
  assert.deepEqual(sliceSizes(4, 2), [2, 2]);
  assert.deepEqual(sliceSizes(5, 2), [3, 2]);
  assert.deepEqual(sliceSizes(7, 3), [3, 2, 2]);
  assert.deepEqual(sliceSizes(1, 2), [1]);
});

test('packBatch/unpackBatch: a slice of a batch comes back with its images, labels and metas', () => {
  const b = randomBatch(3, 1);
  const p = unpackBatch(packBatch(b, 1, 3));
  assert.deepEqual(p.imgs.shape, [2, 32, 32, 3]);
  assert.deepEqual(Array.from(p.imgs.dataSync()), Array.from(b.imgs.slice([1, 0, 0, 0], [2, -1, -1, -1]).dataSync()));
  assert.deepEqual(Array.from(p.gtSegMaps!.dataSync()), Array.from(b.gtSegMaps!.slice([1, 0, 0], [2, -1, -1]).dataSync()));
  assert.deepEqual(p.metas.map((m) => m.imageId), [1, 2]);
  assert.throws(() => packBatch(b, 2, 4), /slice \[2, 4\) is not within the batch of 3/);
  b.dispose();
  p.dispose();
});

test('DataParallel: gradients are the slice-size-weighted mean of each slice\'s gradients', async () => {
  const model = await buildModel(modelConfig(0), { file: 'test', log: () => {} });
  model.train();
  const vars = model.trainableVariables();
  const dp = await DataParallel.start(model, vars, { workers: 2, modelConfig: modelConfig(0), file: 'test' });
  try {
    for (const n of [4, 3]) {
      const batch = randomBatch(n, n);
      const first = Math.ceil(n / 2);
      const parts = [unpackBatch(packBatch(batch, 0, first)), unpackBatch(packBatch(batch, first, n))];
      const each = parts.map((p) => batchGradients(model, p, vars));
      const w = [first / n, (n - first) / n];
      const want: BatchGradients = {
        grads: Object.fromEntries(Object.keys(each[0].grads).map((k) => [k, tf.add(tf.mul(each[0].grads[k], w[0]), tf.mul(each[1].grads[k], w[1]))])),
        parts: {},
        total: each[0].total * w[0] + each[1].total * w[1],
      };
      const before = tf.memory().numTensors;
      const got = await dp.compute(batch);
      assert.equal(tf.memory().numTensors - before, Object.keys(got.grads).length, 'only the returned gradients are new tensors');
      assertGradsClose(got, want);
      for (const k of ['decode.acc', 'aux.loss_ce']) assert.ok(Math.abs(got.parts[k] - (each[0].parts[k] * w[0] + each[1].parts[k] * w[1])) < 1e-4);
      // The worker uses the weights of the moment: change them and the gradients follow.
      const v = vars[0];
      tf.tidy(() => v.assign(tf.mul(v, 1.5)));
      tf.dispose([got.grads, want.grads, each.map((e) => e.grads)]);
      parts.forEach((p) => p.dispose());
      batch.dispose();
    }
  } finally {
    await dp.close();
    model.dispose();
  }
});

test('DataParallel in the Trainer: resumed run equals a straight one with DropPath; tensors flat', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'c2f-dp-'));
  const batches = [0, 1, 2, 3].map((i) => randomBatch(2, 10 + i));
  // A loader over fixed batches whose state is the position (what resume restores).
  const loaderAt = (start: number) => {
    let i = start;
    return {
      nextBatch: async () => unpackBatch(packBatch(batches[i++ % 4], 0, 2)),
      state: () => ({ epoch: 0, pos: i }),
      restore: (s: { pos: number }) => { i = s.pos; },
    } as unknown as DataLoader;
  };
  const run = async (from: number, to: number, resume: boolean, sub: string) => {
    manualSeed(0);
    const model = await buildModel(modelConfig(0.2), { file: 'test', log: () => {} });
    const optimizer = new AdamW(model, { lr: 1e-3 });
    const dp = await DataParallel.start(model, optimizer.variables, { workers: 2, modelConfig: modelConfig(0.2), file: 'test' });
    const counts: number[] = [];
    const workerCounts: number[] = [];
    const trainer = new Trainer({
      model, loader: loaderAt(from), optimizer, schedule: { policy: 'fixed', base_lr: 1e-3 }, maxIters: to, workDir: join(dir, sub),
      checkpointInterval: 2, logInterval: 1, seed: 3, gradients: dp, log: () => { counts.push(tf.memory().numTensors); workerCounts.push(dp.workerTensors); }, progress: false,
    });
    try {
      if (resume) await trainer.resume(join(dir, 'a', 'iter_2.safetensors'));
      await trainer.run();
    } finally {
      await dp.close();
    }
    const w = model.stateDict();
    model.dispose();
    return { w, counts, workerCounts };
  };
  try {
    const straight = await run(0, 4, false, 'a');
    assert.equal(new Set(straight.counts).size, 1, `tensor count grew: ${straight.counts}`);
    assert.ok(straight.workerCounts[0] > 0 && new Set(straight.workerCounts).size === 1, `worker tensor count: ${straight.workerCounts}`);
    const resumed = await run(0, 4, true, 'b');
    for (const [k, t] of straight.w) {
      const a = t.data as Float32Array, b = resumed.w.get(k)!.data as Float32Array;
      for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-6, `${k}[${i}]: ${a[i]} vs ${b[i]}`);
    }
  } finally {
    batches.forEach((b) => b.dispose());
    rmSync(dir, { recursive: true, force: true });
  }
});
