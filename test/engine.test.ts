/** Engine: lr schedules, param groups, and the Trainer (resume exactness, logging, NaN stop, clipping, accumulation). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { Module } from '../src/nn/module.ts';
import { Conv2d } from '../src/nn/conv2d.ts';
import { Linear } from '../src/nn/linear.ts';
import { manualSeed } from '../src/nn/random.ts';
import { createConv2Former, type Conv2Former } from '../src/backbone/conv2former.ts';
import type { Batch } from '../src/datasets/collate.ts';
import { FakeImages } from './helpers/fake_images.ts';
import { DataLoader } from '../src/datasets/loader.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { buildParamGroups, lrScaleFor } from '../src/engine/param_groups.ts';
import { lrAt, type LrScheduleConfig } from '../src/engine/lr_schedule.ts';
import { Trainer, type TrainableModel, type TrainerOptions } from '../src/engine/trainer.ts';

await tf.setBackend('cpu');

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test('lr schedules follow MMCV (0-based iter, linear warmup on the regular lr)', () => {
  const poly: LrScheduleConfig = { policy: 'poly', base_lr: 0.01, max_iters: 1000, power: 0.9, min_lr: 1e-4, warmup: 'linear', warmup_iters: 100, warmup_ratio: 1e-6 };
  const reg = (i: number) => (0.01 - 1e-4) * (1 - i / 1000) ** 0.9 + 1e-4;
  close(lrAt(0, poly), reg(0) * 1e-6);
  close(lrAt(50, poly), reg(50) * (1e-6 + (1 - 1e-6) * 0.5));
  close(lrAt(100, poly), reg(100));
  close(lrAt(999, poly), reg(999));
  close(lrAt(1000, poly), 1e-4);
  const step: LrScheduleConfig = { policy: 'step', base_lr: 0.1, steps: [10, 20], gamma: 0.1 };
  close(lrAt(9, step), 0.1);
  close(lrAt(10, step), 0.01);
  close(lrAt(25, step), 0.001);
  close(lrAt(7, { policy: 'step', base_lr: 1, steps: 3, gamma: 0.5 }), 0.25);
  const cos: LrScheduleConfig = { policy: 'cosine', base_lr: 1, max_iters: 100, min_lr: 0.1 };
  close(lrAt(0, cos), 1);
  close(lrAt(50, cos), 0.55);
  close(lrAt(100, cos), 0.1);
  close(lrAt(3, { policy: 'fixed', base_lr: 2, warmup: 'linear', warmup_iters: 4, warmup_ratio: 0.2 }), 2 * (0.2 + 0.8 * 0.75));
});

/** Conv2Former backbone + a 1x1 `decode_head.conv_seg`, loss = mean square of the logits. */
class ToySeg extends Module implements TrainableModel {
  readonly backbone: Conv2Former;
  readonly head: Module & { conv_seg: Conv2d };
  constructor() {
    super();
    this.backbone = this.addModule('backbone', createConv2Former({ dims: [8, 16, 16, 16], depths: [1, 1, 1, 1], kernelSize: 3 }, { dropPathRate: 0.1 }));
    const head = new Module() as Module & { conv_seg: Conv2d };
    head.conv_seg = head.addModule('conv_seg', new Conv2d(16, 2, 1));
    this.head = this.addModule('decode_head', head);
  }
  loss(batch: Batch): Record<string, tf.Scalar> {
    const feats = this.backbone.forward(batch.imgs);
    const logits = this.head.conv_seg.forward(feats[3]);
    const loss = tf.mean(tf.square(tf.sub(logits, 0.5))) as tf.Scalar;
    const acc = tf.scalar(50);
    tf.dispose(feats);
    return { 'decode.loss_ce': loss, 'decode.acc': acc };
  }
}

test('param groups: MMSeg stage-wise / layer-wise lr scales and no-decay rule', () => {
  manualSeed(0);
  const m = new ToySeg();
  const sw = { weightDecay: 0.05, layerDecayRate: 0.9, decayType: 'stage_wise' as const, numLayers: 6 };
  close(lrScaleFor('backbone.downsample_layers.0.0.weight', sw).lrScale, 0.9 ** 7);
  close(lrScaleFor('backbone.downsample_layers.2.1.weight', sw).lrScale, 0.9 ** 7); // mmseg: every downsample layer -> stage 0
  close(lrScaleFor('backbone.stages.0.0.attn.v.weight', sw).lrScale, 0.9 ** 6);
  close(lrScaleFor('backbone.stages.3.0.mlp.fc1.weight', sw).lrScale, 0.9 ** 3);
  close(lrScaleFor('decode_head.conv_seg.weight', sw).lrScale, 1);
  const lw = { ...sw, decayType: 'layer_wise' as const, numLayers: 12 };
  close(lrScaleFor('backbone.downsample_layers.0.0.weight', lw).lrScale, 0.9 ** 13);
  close(lrScaleFor('backbone.stages.2.7.attn.v.weight', lw).lrScale, 0.9 ** (13 - 5));
  close(lrScaleFor('backbone.stages.3.0.attn.v.weight', lw).lrScale, 0.9);
  close(lrScaleFor('decode_head.conv_seg.weight', lw).lrScale, 1);

  const groups = buildParamGroups(m, sw);
  const of = (k: string) => groups.find((g) => g.params.includes(k))!;
  assert.equal(of('backbone.stages.0.0.attn.v.weight').weightDecay, 0.05);
  assert.equal(of('backbone.stages.0.0.attn.v.bias').weightDecay, 0);
  assert.equal(of('backbone.stages.0.0.layer_scale_1').weightDecay, 0);
  assert.equal(of('backbone.stages.0.0.attn.norm.weight').weightDecay, 0);
  assert.equal(of('decode_head.conv_seg.bias').weightDecay, 0);
  assert.equal(of('backbone.stages.0.0.attn.v.bias').name, 'layer_1_no_decay');
  const opt = new AdamW(m, { lr: 1, weightDecay: 0.05, paramGroups: groups });
  const s = opt.paramSettings().find((p) => p.name === 'backbone.downsample_layers.0.0.weight')!;
  close(s.lrScale, 0.9 ** 7);
  assert.equal(s.weightDecay, 0.05);
  opt.dispose();
  m.dispose();
});

test('AdamW group lrScale = base lr times scale (decay too)', () => {
  const run = (lr: number, scale: number) => {
    const lin = new Linear(2, 1);
    lin.weight.variable.assign(tf.tensor2d([[1], [-2]]));
    const groups = [{ name: 'w', params: ['weight'], lrScale: scale, weightDecay: 0.1 }, { name: 'b', params: ['bias'], lrScale: scale, weightDecay: 0 }];
    const opt = new AdamW(lin, { lr, paramGroups: groups });
    for (let i = 0; i < 2; i++) opt.step({ [lin.weight.variable.name]: tf.tensor2d([[0.3 * (i + 1)], [-0.1]]), [lin.bias!.variable.name]: tf.tensor1d([0.2]) });
    const out = [...lin.weight.variable.dataSync(), ...lin.bias!.variable.dataSync()];
    opt.dispose();
    lin.dispose();
    return out;
  };
  const a = run(0.1, 0.5), b = run(0.05, 1);
  a.forEach((v, i) => close(v, b[i], 1e-6));
});

const tmp = () => mkdtempSync(join(tmpdir(), 'engine-test-'));

const schedule: LrScheduleConfig = { policy: 'poly', base_lr: 1e-3, max_iters: 10, power: 1, min_lr: 0, warmup: 'linear', warmup_iters: 3, warmup_ratio: 0.1 };

function setup(initSeed: number) {
  manualSeed(initSeed);
  const model = new ToySeg();
  const loader = new DataLoader(new FakeImages(7), { batchSize: 2, shuffle: true, infinite: true, seed: 5 });
  const optimizer = new AdamW(model, { lr: 1e-3, paramGroups: buildParamGroups(model, { weightDecay: 0.05, layerDecayRate: 0.9, decayType: 'stage_wise', numLayers: 6 }) });
  return { model, loader, optimizer };
}

function trainer(s: ReturnType<typeof setup>, workDir: string, maxIters: number, extra: Partial<TrainerOptions> = {}): Trainer {
  return new Trainer({ ...s, schedule, maxIters, workDir, logInterval: 1, checkpointInterval: 100, seed: 42, log: () => {}, progress: false, ...extra });
}

test('resume continues exactly: 5 + resume + 5 == 10 straight (DropPath, shuffled loader); log.jsonl; flat tensor count', async () => {
  const dirA = tmp(), dirB = tmp();
  try {
    const a = setup(1);
    const lines: string[] = [];
    await trainer(a, dirA, 10, { log: (l) => lines.push(l) }).run();
    const b = setup(1);
    const t1 = trainer(b, dirB, 5);
    await t1.run();
    assert.equal(JSON.parse(readFileSync(join(dirB, 'latest.json'), 'utf8')).weights, 'iter_5.safetensors');
    b.optimizer.dispose();
    b.model.dispose();
    const c = setup(777); // different init: everything must come from the checkpoint
    const t2 = trainer(c, dirB, 10);
    await t2.resume();
    assert.equal(t2.iter, 5);
    await t2.run();
    const sa = a.model.stateDict(), sc = c.model.stateDict();
    let maxDiff = 0;
    for (const [k, ra] of sa) {
      const rc = sc.get(k)!;
      for (let i = 0; i < ra.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(Number(ra.data[i]) - Number(rc.data[i])));
    }
    assert.ok(maxDiff <= 1e-6, `max weight difference ${maxDiff}`);
    assert.equal(a.optimizer.stepCount, 10);
    assert.equal(c.optimizer.stepCount, 10);
    // the run did learn something (and differs from init)
    const recs = readFileSync(join(dirA, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(recs.length, 10);
    for (const k of ['iter', 'lr', 'loss', 'decode.loss_ce', 'decode.acc', 'time', 'data_time', 'eta_s', 'num_tensors']) assert.ok(k in recs[0], `log.jsonl lacks ${k}`);
    close(recs[0].lr, lrAt(0, schedule));
    close(recs[9].lr, lrAt(9, schedule));
    assert.deepEqual(new Set(recs.map((r) => r.num_tensors)).size, 1, `tensor count not flat: ${recs.map((r) => r.num_tensors)}`);
    assert.match(lines[0], /^iter 1\/10 {2}lr 1\.000e-4 {2}loss [\d.]+ \(decode\.loss_ce [\d.]+, decode\.acc 50\) {2}[\d.]+ s\/iter {2}data [\d.]+ s {2}ETA \d+m\d\ds {2}tensors \d+$/);
    // The resumed run's second half logs the same losses as the straight run.
    const recsB = readFileSync(join(dirB, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(recsB.length, 10);
    for (let i = 0; i < 10; i++) close(recsB[i].loss, recs[i].loss, 1e-5);
    // A fresh run in the same work dir starts its own log; the earlier one is moved aside, whole.
    const d = setup(1);
    await trainer(d, dirB, 1).run();
    assert.equal(readFileSync(join(dirB, 'log.jsonl'), 'utf8').trim().split('\n').length, 1);
    const aside = readdirSync(dirB).filter((f) => /^log\..+\.jsonl$/.test(f));
    assert.equal(aside.length, 1);
    assert.equal(readFileSync(join(dirB, aside[0]), 'utf8').trim().split('\n').length, 10);
    d.optimizer.dispose();
    d.model.dispose();
    for (const s of [a, c]) {
      s.optimizer.dispose();
      s.model.dispose();
    }
  } finally {
    rmSync(dirA, { recursive: true, force: true });
    rmSync(dirB, { recursive: true, force: true });
  }
});

/** Linear model on pooled images; `nanAt` makes the loss NaN at that (1-based) call. */
class Pooled extends Module implements TrainableModel {
  readonly fc: Linear;
  calls = 0;
  constructor(private readonly nanAt = -1) {
    super();
    this.fc = this.addModule('fc', new Linear(3, 1));
  }
  loss(batch: Batch): Record<string, tf.Scalar> {
    this.calls++;
    const x = tf.mean(batch.imgs, [1, 2]) as tf.Tensor2D;
    const y = this.fc.forward(x);
    let loss = tf.mean(tf.square(tf.sub(y, 1))) as tf.Scalar;
    if (this.calls === this.nanAt) loss = tf.mul(loss, NaN) as tf.Scalar;
    x.dispose();
    y.dispose();
    return { loss };
  }
}

test('a NaN loss stops with a clear error and latest.json keeps pointing at the last good checkpoint', async () => {
  const dir = tmp();
  try {
    manualSeed(0);
    const model = new Pooled(3);
    const loader = new DataLoader(new FakeImages(4, true, 4), { batchSize: 2, shuffle: true, infinite: true });
    const optimizer = new AdamW(model, { lr: 1e-2 });
    const t = new Trainer({ model, loader, optimizer, schedule: { policy: 'fixed', base_lr: 1e-2 }, maxIters: 10, workDir: dir, logInterval: 1, checkpointInterval: 2, seed: 0, log: () => {}, progress: false });
    const n0 = tf.memory().numTensors;
    await assert.rejects(t.run(), (e: Error) => {
      assert.match(e.message, /^loss is NaN at iter 3; the last good checkpoint is .*iter_2\.safetensors$/);
      return true;
    });
    assert.equal(tf.memory().numTensors, n0);
    assert.equal(JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).weights, 'iter_2.safetensors');
    assert.ok(!existsSync(join(dir, 'iter_3.safetensors')));
    assert.equal(process.listenerCount('SIGINT'), 0);
    optimizer.dispose();
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** loss = s_t * (3 w + 4 b) with a preset scale per call: gradient s_t * (3, 4), norm 5 |s_t|. */
class Scaled extends Module implements TrainableModel {
  readonly fc: Linear;
  calls = 0;
  constructor(private readonly scales: number[]) {
    super();
    this.fc = this.addModule('fc', new Linear(1, 1));
  }
  loss(): Record<string, tf.Scalar> {
    const s = this.scales[this.calls++];
    return { loss: tf.tidy(() => tf.mul(s, tf.add(tf.mul(3, tf.sum(this.fc.weight.value)), tf.mul(4, tf.sum(this.fc.bias!.value)))) as tf.Scalar) };
  }
}

test('global-norm gradient clipping matches a hand computation', async () => {
  const scales = [10, 0.1, -2, 0.05];
  const simulate = (clip: number | null) => {
    let w = 0.5, b = 0, mw = 0, vw = 0, mb = 0, vb = 0;
    scales.forEach((s, i) => {
      let gw = 3 * s, gb = 4 * s;
      const norm = Math.hypot(gw, gb);
      if (clip !== null && clip / (norm + 1e-6) < 1) { gw *= clip / (norm + 1e-6); gb *= clip / (norm + 1e-6); }
      const t = i + 1, lr = 0.1;
      mw = 0.9 * mw + 0.1 * gw; vw = 0.999 * vw + 0.001 * gw * gw;
      mb = 0.9 * mb + 0.1 * gb; vb = 0.999 * vb + 0.001 * gb * gb;
      const c1 = 1 - 0.9 ** t, c2 = 1 - 0.999 ** t;
      w -= lr * (mw / c1) / (Math.sqrt(vw / c2) + 1e-8);
      b -= lr * (mb / c1) / (Math.sqrt(vb / c2) + 1e-8);
    });
    return [w, b];
  };
  const dir = tmp();
  try {
    const model = new Scaled(scales);
    model.fc.weight.variable.assign(tf.tensor2d([[0.5]]));
    model.fc.bias!.variable.assign(tf.tensor1d([0]));
    const loader = new DataLoader(new FakeImages(2, false, 2), { batchSize: 1, infinite: true });
    const optimizer = new AdamW(model, { lr: 0.1, weightDecay: 0 });
    await new Trainer({ model, loader, optimizer, schedule: { policy: 'fixed', base_lr: 0.1 }, maxIters: 4, workDir: dir, logInterval: 1, checkpointInterval: 100, gradClip: 1, seed: 0, log: () => {}, progress: false }).run();
    const [ew, eb] = simulate(1);
    close(model.fc.weight.variable.dataSync()[0], ew, 1e-5);
    close(model.fc.bias!.variable.dataSync()[0], eb, 1e-5);
    const [uw] = simulate(null);
    assert.ok(Math.abs(uw - ew) > 1e-3, 'clipping must change the trajectory in this setup');
    const recs = readFileSync(join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    close(recs[0].grad_norm, 50, 1e-5);
    optimizer.dispose();
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('accumulating 2 batches of 2 equals one step on the batch of 4 (batch-mean loss)', async () => {
  const runWith = async (batchSize: number, accumulate: number) => {
    const dir = tmp();
    try {
      manualSeed(3);
      const model = new Pooled();
      const loader = new DataLoader(new FakeImages(8, false, 4), { batchSize, infinite: true });
      const optimizer = new AdamW(model, { lr: 0.05, weightDecay: 0.1 });
      await new Trainer({ model, loader, optimizer, schedule: { policy: 'fixed', base_lr: 0.05 }, maxIters: 3, workDir: dir, logInterval: 1, checkpointInterval: 100, accumulate, seed: 0, log: () => {}, progress: false }).run();
      const w = [...model.fc.weight.variable.dataSync(), ...model.fc.bias!.variable.dataSync()];
      optimizer.dispose();
      model.dispose();
      return w;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const acc = await runWith(2, 2), big = await runWith(4, 1);
  acc.forEach((v, i) => close(v, big[i], 1e-6));
});

test('SIGINT during run saves a checkpoint and stops (exitOnInterrupt: false); handler removed after', async () => {
  const dir = tmp();
  try {
    manualSeed(0);
    const model = new Pooled();
    const orig = model.loss.bind(model);
    model.loss = (b: Batch) => {
      if (model.calls === 2) process.emit('SIGINT');
      return orig(b);
    };
    const loader = new DataLoader(new FakeImages(4, true, 4), { batchSize: 2, infinite: true });
    const optimizer = new AdamW(model, { lr: 1e-2 });
    const t = new Trainer({ model, loader, optimizer, schedule: { policy: 'fixed', base_lr: 1e-2 }, maxIters: 10, workDir: dir, logInterval: 5, checkpointInterval: 100, seed: 0, log: () => {}, progress: false, exitOnInterrupt: false });
    const r = await t.run();
    assert.deepEqual(r, { iter: 3, interrupted: true });
    assert.equal(JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')).weights, 'iter_3.safetensors');
    assert.equal(process.listenerCount('SIGINT'), 0);
    optimizer.dispose();
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('evaluate + bestMetric writes best.json naming the best checkpoint', async () => {
  const dir = tmp();
  try {
    manualSeed(0);
    const model = new Pooled();
    const loader = new DataLoader(new FakeImages(4, true, 4), { batchSize: 2, infinite: true });
    const optimizer = new AdamW(model, { lr: 1e-2 });
    const scores = [30, 50, 40];
    let k = 0;
    const t = new Trainer({ model, loader, optimizer, schedule: { policy: 'fixed', base_lr: 1e-2 }, maxIters: 6, workDir: dir, logInterval: 2, checkpointInterval: 100, evalInterval: 2, evaluate: async () => ({ mIoU: scores[k++] }), bestMetric: 'mIoU', seed: 0, log: () => {}, progress: false });
    await t.run();
    const best = JSON.parse(readFileSync(join(dir, 'best.json'), 'utf8'));
    assert.equal(best.iter, 4);
    assert.equal(best.value, 50);
    assert.ok(existsSync(join(dir, best.weights)) && existsSync(join(dir, best.state)));
    optimizer.dispose();
    model.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
