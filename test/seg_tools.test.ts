/**
 * Segmentation tools: evaluateSegmentor (metrics vs a hand computation at original resolution,
 * no tensor leaks, train mode restored), tools/plot_log.ts, tools/test.ts end to end.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import sharp from 'sharp';
import { createConv2Former } from '../src/backbone/conv2former.ts';
import { collate } from '../src/datasets/collate.ts';
import { sampleRng } from '../src/datasets/loader.ts';
import { ShapesSegDataset } from '../src/datasets/seg_dataset.ts';
import { generateShapes } from '../src/datasets/shapes.ts';
import type { TransformConfig } from '../src/datasets/transforms/index.ts';
import { evaluateModel } from '../src/engine/evaluate.ts';
import { IoUMetric } from '../src/evaluation/seg_evaluator.ts';
import { SegMetricAccumulator } from '../src/evaluation/seg_metrics.ts';
import { FCNHead } from '../src/heads/seg/fcn_head.ts';
import { UPerHead } from '../src/heads/seg/uper_head.ts';
import { readLabelPng } from '../src/io/label_png.ts';
import { EncoderDecoder } from '../src/models/encoder_decoder.ts';
import { manualSeed } from '../src/nn/random.ts';
import { runTool } from './helpers/run_tool.ts';

const K = 6;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-seg-tools-'));
let valImages = '';
let valAnns = '';

const testPipeline: TransformConfig[] = [
  { type: 'LoadImageFromFile' },
  { type: 'LoadAnnotations' },
  { type: 'Resize', scale: [64, 48], keep_ratio: true },
  { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
] as TransformConfig[];

function tinyModel(): EncoderDecoder {
  manualSeed(0);
  const backbone = createConv2Former({ dims: [16, 32, 64, 128], depths: [1, 1, 1, 1], kernelSize: 3 }, { outNorms: true });
  const inChannels = backbone.featureInfo.map((f) => f.channels);
  const decodeHead = new UPerHead({ inChannels, channels: 16, numClasses: K, norm: 'BN' });
  const auxiliaryHead = new FCNHead({ inChannels: inChannels[2], channels: 16, numClasses: K, inIndex: 2, norm: 'BN' });
  return new EncoderDecoder({ backbone, decodeHead, auxiliaryHead });
}

before(async () => {
  await tf.setBackend('wasm');
  const r = await generateShapes({ out: tmp, seed: 1, train: 2, val: 3, minSize: 64, maxSize: 96, what: ['semantic'], log: () => {} });
  valImages = r.semantic!.val.images;
  valAnns = r.semantic!.val.annotations;
});

test('evaluateModel + IoUMetric = predict + SegMetricAccumulator on the original labels; no leaks; mode restored', async () => {
  const ds = await ShapesSegDataset.create({ imgDir: valImages, annDir: valAnns, pipeline: testPipeline });
  const model = tinyModel();
  model.train();
  const metric = () => new IoUMetric({ numClasses: K, labelFiles: ds });
  // Warm-up so lazily created kernels/constants don't count as leaks.
  await evaluateModel(model, ds, metric());
  const before = tf.memory().numTensors;
  const seen: number[] = [];
  const r = await evaluateModel(model, ds, metric(), {
    onPrediction: (item, pred) => {
      seen.push(item.index);
      assert.equal(pred.semSeg!.data.length, item.meta.oriShape[0] * item.meta.oriShape[1]);
    },
  });
  const m = r.metrics;
  assert.equal(tf.memory().numTensors, before, 'tensor count must stay flat');
  assert.equal(model.training, true, 'train mode restored');
  assert.deepEqual(seen, [0, 1, 2]);
  assert.deepEqual([r.evaluated, r.skipped], [3, 0]);
  for (const v of [m.aAcc, m.mIoU, m.mAcc]) assert.ok(v >= 0 && v <= 1, `metric ${v} in [0,1]`);

  // By hand: the same predictions, the label files read raw, MMSeg's reduce_zero_label.
  model.eval();
  const acc = new SegMetricAccumulator(K, { ignoreIndex: 255, reduceZeroLabel: true });
  for (let i = 0; i < ds.length; i++) {
    const s = (await ds.getSample(i, sampleRng(0, i)))!;
    const b = collate([s]);
    const [pred] = await model.segment(b.imgs, b.metas, { mode: 'whole' });
    b.dispose();
    const lab = await readLabelPng(ds.pairs[i].segPath!);
    assert.deepEqual([lab.height, lab.width], s.oriShape);
    assert.notDeepEqual(s.imgShape, s.oriShape, 'the pipeline resized the image, so original-size GT matters');
    acc.add(pred, lab.data);
  }
  const ref = acc.compute();
  assert.equal(m.aAcc, ref.aAcc);
  assert.equal(m.mIoU, ref.mIoU);
  assert.equal(m.mAcc, ref.mAcc);
  assert.deepEqual((r.json as { per_class: unknown }).per_class, { IoU: ref.perClass.IoU.map((v) => (Number.isFinite(v) ? v : null)), Acc: ref.perClass.Acc.map((v) => (Number.isFinite(v) ? v : null)) });

  // Slide mode (from the model's test_cfg) works and stays leak-free too.
  const n0 = tf.memory().numTensors;
  model.testCfg = { ...model.testCfg, mode: 'slide', cropSize: [32, 32], stride: [24, 24] };
  const s = await evaluateModel(model, ds, metric());
  assert.equal(tf.memory().numTensors, n0);
  assert.equal(model.training, false, 'eval mode kept when it was not training');
  assert.ok(s.metrics.aAcc >= 0 && s.metrics.aAcc <= 1);
  model.testCfg = { ...model.testCfg, cropSize: undefined };
  await assert.rejects(evaluateModel(model, ds, metric()), /cropSize/);
  model.testCfg = { ...model.testCfg, mode: 'whole' };
  // Batched (images padded together): still every image once, no leaks.
  const n1 = tf.memory().numTensors;
  const idx: number[] = [];
  const bm = await evaluateModel(model, ds, metric(), { batchSize: 2, onPrediction: (item) => { idx.push(item.index); } });
  assert.deepEqual(idx, [0, 1, 2]);
  assert.ok(bm.metrics.mIoU >= 0 && bm.metrics.mIoU <= 1);
  assert.equal(tf.memory().numTensors, n1);
});

test('tools/plot_log.ts: PNG from a hand-written log; clear errors for malformed/empty/missing logs', async () => {
  const dir = path.join(tmp, 'plot');
  mkdirSync(dir, { recursive: true });
  const lines: string[] = [];
  for (let i = 10; i <= 100; i += 10) {
    lines.push(JSON.stringify({ iter: i, lr: 1e-3, loss: 2 / i + 0.1, 'decode.loss_ce': 1.5 / i, 'decode.acc': 50 + i / 4, 'aux.loss_ce': 0.5 / i }));
    if (i % 50 === 0) lines.push(JSON.stringify({ mode: 'val', iter: i, aAcc: 0.8, mIoU: 0.3 + i / 500, mAcc: 0.5 }));
  }
  const log = path.join(dir, 'log.jsonl');
  writeFileSync(log, lines.join('\n') + '\n');
  const out = path.join(dir, 'curves.png');
  let r = runTool('plot_log.ts', [log, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /10 train records, 2 validation records/);
  const meta = await sharp(out).metadata();
  assert.equal(meta.format, 'png');
  assert.ok(meta.width! >= 600 && meta.height! >= 400);
  r = runTool('plot_log.ts', [log, '--out', path.join(dir, 'acc.png'), '--keys', 'loss,decode.acc']);
  assert.equal(r.code, 0, r.stderr);
  r = runTool('plot_log.ts', [log, '--out', path.join(dir, 'x.png'), '--keys', 'nope']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /'nope' is in no train record.*available: .*decode\.acc/);

  const bad = path.join(dir, 'bad.jsonl');
  writeFileSync(bad, `${lines[0]}\n${lines[1]}\n{"iter": 30, "loss": \n`);
  r = runTool('plot_log.ts', [bad, '--out', path.join(dir, 'b.png')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.jsonl: line 3 is not valid JSON/);
  assert.ok(!existsSync(path.join(dir, 'b.png')));
  const empty = path.join(dir, 'empty.jsonl');
  writeFileSync(empty, '\n');
  r = runTool('plot_log.ts', [empty, '--out', path.join(dir, 'e.png')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /empty/);
  r = runTool('plot_log.ts', [path.join(dir, 'missing.jsonl'), '--out', path.join(dir, 'm.png')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot read .*missing\.jsonl: ENOENT/);
});

test('tools/train.ts 2 iterations → tools/test.ts with --metrics-out, --out, --show-dir', { timeout: 120_000 }, async () => {
  const work = path.join(tmp, 'work');
  const trainImages = path.join(path.dirname(valImages), 'training');
  const trainAnns = path.join(path.dirname(valAnns), 'training');
  const cfg = path.join(tmp, 'tiny.yaml');
  writeFileSync(cfg, [
    '_base_:',
    `  - ${path.resolve('configs/_base_/models/upernet_c2f.yaml')}`,
    `  - ${path.resolve('configs/_base_/datasets/shapes_semantic.yaml')}`,
    `  - ${path.resolve('configs/_base_/schedules/schedule_160k.yaml')}`,
    'model:',
    '  backbone: {variant: {dims: [16, 32, 64, 128], depths: [1, 1, 1, 1], kernel_size: 3}, drop_path_rate: 0.0}',
    `  decode_head: {channels: 16, num_classes: ${K}}`,
    `  auxiliary_head: {channels: 16, num_classes: ${K}}`,
    '  test_cfg: {mode: whole}',
    'data:',
    '  batch_size: 2',
    `  train: {img_dir: ${trainImages}, ann_dir: ${trainAnns}}`,
    `  val: {img_dir: ${valImages}, ann_dir: ${valAnns}}`,
    'schedule: {max_iters: 2, warmup_iters: 1}',
    'train: {eval_interval: 2, checkpoint_interval: 2, log_interval: 1}',
    '',
  ].join('\n'));
  const env = { C2F_BACKEND: 'wasm' };
  let r = runTool('train.ts', [cfg, '--work-dir', work], env);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.ok(existsSync(path.join(work, 'latest.json')));

  const metricsOut = path.join(tmp, 'out', 'metrics.json');
  const show = path.join(tmp, 'out', 'show');
  const pred = path.join(tmp, 'out', 'pred');
  r = runTool('test.ts', [cfg, path.join(work, 'latest'), '--metrics-out', metricsOut, '--show-dir', show, '--out', pred], env);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /\| background +\|/);
  assert.match(r.stdout, /aAcc: [\d.]+ +mIoU: [\d.]+ +mAcc: [\d.]+/);
  const m = JSON.parse(readFileSync(metricsOut, 'utf8'));
  for (const k of ['aAcc', 'mIoU', 'mAcc']) assert.ok(m[k] >= 0 && m[k] <= 1, `${k} = ${m[k]}`);
  assert.equal(m.per_class.IoU.length, K);
  assert.equal(m.per_class.Acc.length, K);
  for (const v of [...m.per_class.IoU, ...m.per_class.Acc]) assert.ok(v === null || (v >= 0 && v <= 1));

  // Same metrics as tools/seg_eval.ts on the written label maps (original size, class ids).
  const stems = readdirSync(valImages).map((f) => f.replace(/\.jpg$/, '')).sort();
  assert.deepEqual(readdirSync(pred).sort(), stems.map((s) => `${s}.png`));
  assert.deepEqual(readdirSync(show).sort(), stems.map((s) => `${s}.png`));
  for (const s of stems) {
    const img = await sharp(path.join(valImages, `${s}.jpg`)).metadata();
    const p = await readLabelPng(path.join(pred, `${s}.png`));
    assert.deepEqual([p.width, p.height], [img.width, img.height]);
    assert.ok(p.data.every((v) => v < K));
    const o = await sharp(path.join(show, `${s}.png`)).metadata();
    assert.deepEqual([o.width, o.height, o.channels], [img.width, img.height, 3]);
  }
  const se = runTool('seg_eval.ts', ['--pred-dir', pred, '--gt-dir', valAnns, '--num-classes', String(K), '--reduce-zero-label', '--json', path.join(tmp, 'out', 'se.json')]);
  assert.equal(se.code, 0, se.stderr);
  const ref = JSON.parse(readFileSync(path.join(tmp, 'out', 'se.json'), 'utf8'));
  assert.ok(Math.abs(ref.mIoU - m.mIoU) < 1e-12 || Math.abs(ref.mIoU / 100 - m.mIoU) < 1e-12, `seg_eval ${ref.mIoU} vs test ${m.mIoU}`);

  // A missing checkpoint is a one-line error.
  r = runTool('test.ts', [cfg, path.join(work, 'nope.safetensors')], env);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /checkpoint .*nope\.safetensors does not exist/);
});
