/**
 * Cascade Mask R-CNN: GIoU loss against a hand computation, per-stage thresholds and coders, the
 * refined (detached) proposals between stages, test-time score and mask averaging, and an overfit
 * of one shapes image with a flat tensor count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { loadConfig } from '../src/config/load.ts';
import { applyCfgOptions } from '../src/config/cfg_options.ts';
import { groundTruthOf } from '../src/heads/ground_truth.ts';
import type { CascadeRoIHead } from '../src/heads/roi/cascade_roi_head.ts';
import type { RcnnTrainCfg } from '../src/heads/roi/standard_roi_head.ts';
import { buildModel, validateModelConfig } from '../src/models/build.ts';
import type { MaskRCNN } from '../src/models/mask_rcnn.ts';
import { manualSeed } from '../src/nn/random.ts';
import { giouLoss } from '../src/ops/det_losses.ts';
import type { SamplingResult } from '../src/ops/sampler.ts';
import { sceneBatch } from './helpers/det_batch.ts';
import { overfit, sceneBoxAP } from './helpers/overfit.ts';

await initBackend('wasm', { quiet: true });
const FILE = 'configs/cascade_maskrcnn_c2f_shapes.yaml';

async function cascadeModel(options: string[] = []): Promise<MaskRCNN> {
  const cfg = applyCfgOptions(loadConfig(FILE), options) as { model: unknown };
  return (await buildModel(cfg.model, { file: FILE, log: () => {} })) as MaskRCNN;
}

test('GIoU loss equals a hand computation; degenerate boxes give finite values and gradients', () => {
  // [0,0,2,2] vs [1,1,3,3]: overlap 1, union 7, enclosing box 9: GIoU = 1/7 - 2/9.
  const pred = tf.tensor2d([[0, 0, 2, 2], [1, 1, 1, 1], [2, 2, 1, 1]]);
  const target = Float32Array.of(1, 1, 3, 3, 1, 1, 1, 1, 0, 0, 4, 4);
  const per = [0, 1, 2].map((i) => giouLoss(pred.slice([i, 0], [1, 4]) as tf.Tensor2D, target.subarray(4 * i, 4 * i + 4)).dataSync()[0]);
  assert.ok(Math.abs(per[0] - (1 - (1 / 7 - 2 / 9))) < 1e-5, `${per[0]}`);
  assert.ok(Math.abs(per[1] - 1) < 1e-5, `zero-area pair: ${per[1]}`);
  // Inverted pred box [2,2,1,1] (area (-1)(-1) = 1 as MMDet computes it): no overlap, union 1 + 16,
  // enclosure 16: 1 - (0 - (16 - 17) / 16).
  assert.ok(Math.abs(per[2] - (1 - 1 / 16)) < 1e-4, `inverted box: ${per[2]}`);
  // Mean over the rows with per-coordinate weights averaged (MMDet), avg factor.
  const all = giouLoss(pred, target, Float32Array.of(1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1), 4).dataSync()[0];
  assert.ok(Math.abs(all - (per[0] + per[2]) / 4) < 1e-5);
  const g = tf.grad((p: tf.Tensor) => giouLoss(p as tf.Tensor2D, target))(pred).dataSync();
  assert.ok(g.every(Number.isFinite), `gradient ${Array.from(g)}`);
  // The gradient of the first pair against a central difference.
  const f = (x: number[]) => giouLoss(tf.tensor2d([x]), target.subarray(0, 4)).dataSync()[0];
  const h = 1e-2, x0 = [0, 0, 2, 2];
  const fd = x0.map((_, k) => (f(x0.map((v, j) => v + (j === k ? h : 0))) - f(x0.map((v, j) => v - (j === k ? h : 0)))) / (2 * h));
  const g0 = tf.grad((p: tf.Tensor) => giouLoss(p as tf.Tensor2D, target.subarray(0, 4)))(tf.tensor2d([x0])).dataSync();
  fd.forEach((v, k) => assert.ok(Math.abs(v - g0[k]) < 2e-3, `d/dx${k}: ${g0[k]} vs ${v}`));
});

test('each stage assigns with its own IoU threshold and decodes with its own stds', async () => {
  manualSeed(0);
  const m = await cascadeModel();
  const head = m.roiHead as CascadeRoIHead;
  const cfg = m.trainCfg.rcnn as RcnnTrainCfg[];
  const gt = Float32Array.of(10, 10, 50, 50);
  // Proposals shifted right: IoU 0.55, 0.65, 0.75 with the GT box (40x40 boxes shifted by s: IoU = (40-s)/(40+s)).
  const ious = [0.55, 0.65, 0.75];
  const boxes = Float32Array.from(ious.flatMap((iou) => { const s = (40 * (1 - iou)) / (1 + iou); return [10 + s, 10, 50 + s, 50]; }));
  ious.forEach((_, stage) => {
    const a = cfg[stage].assigner.assign(boxes, gt, Int32Array.of(1), new Float32Array(0));
    const positives = Array.from(a.gtInds).filter((v) => v > 0).length;
    assert.equal(positives, 3 - stage, `stage ${stage} (IoU >= ${[0.5, 0.6, 0.7][stage]}) positives`);
  });
  const expected = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]];
  head.bboxHeads.items.forEach((h, i) => {
    assert.deepEqual(h.bboxCoder.stds, expected[i]);
    // A unit dx moves a 40-wide RoI by 40 * std.
    const moved = tf.tidy(() => h.bboxCoder.decodeTensor(Float32Array.of(10, 10, 50, 50), tf.tensor2d([[1, 0, 0, 0]])).dataSync());
    assert.ok(Math.abs(moved[0] - (10 + 40 * expected[i][0])) < 1e-4, `stage ${i}: x1 ${moved[0]}`);
  });
  assert.deepEqual(head.stageLossWeights, [1, 0.5, 0.25]);
  m.dispose();
});

test('stage 2 trains on stage 1 regressed boxes without the added GT boxes, and no gradient flows back through them', async () => {
  manualSeed(2);
  const m = await cascadeModel();
  const head = m.roiHead as CascadeRoIHead;
  const cfg = m.trainCfg.rcnn as RcnnTrainCfg[];
  const batch = sceneBatch();
  const gts = groundTruthOf(batch);
  // Capture what stage 0 sampled and what stage 1 is given.
  let sampled0: SamplingResult | null = null;
  let given1: Float32Array | null = null;
  const sample0 = cfg[0].sampler.sample.bind(cfg[0].sampler);
  cfg[0].sampler.sample = (...args) => (sampled0 = sample0(...args));
  const assign1 = cfg[1].assigner.assign.bind(cfg[1].assigner);
  cfg[1].assigner.assign = (boxes, ...rest) => ((given1 = boxes), assign1(boxes, ...rest));
  m.train();
  const vars = m.trainableVariables();
  const stage1Keys = (k: string) => k.startsWith('s1.') && k.includes('loss');
  const { grads } = tf.variableGrads(() => {
    const losses = m.loss(batch);
    const keep = Object.entries(losses).filter(([k]) => stage1Keys(k)).map(([, v]) => v);
    return tf.addN(keep) as tf.Scalar;
  }, vars);
  const s0 = sampled0 as unknown as SamplingResult;
  const g1 = given1 as unknown as Float32Array;
  assert.ok(s0 && g1, 'both stages ran');
  const nonGt = s0.posIsGt.reduce((n, v) => n + (v ? 0 : 1), 0) + s0.negInds.length;
  assert.equal(g1.length / 4, nonGt, 'stage 1 gets every sampled RoI except the added GT boxes');
  // They moved: regressed by stage 0's deltas (not the RPN's proposals or stage 0's RoIs as they were).
  const rois = new Set<string>();
  const all = [...s0.posInds, ...s0.negInds];
  for (const i of all) rois.add(Array.from(s0.bboxes.subarray(i * 4, i * 4 + 4), (v) => v.toFixed(3)).join(','));
  let same = 0;
  for (let r = 0; r < g1.length / 4; r++) if (rois.has(Array.from(g1.subarray(r * 4, r * 4 + 4), (v) => v.toFixed(3)).join(','))) same++;
  assert.ok(same < g1.length / 8, `${same} of ${g1.length / 4} stage-1 proposals are unmoved stage-0 RoIs`);
  // Detached: stage 1's losses give stage 0's heads no gradient.
  for (const [name, v] of m.namedParameters()) {
    if (!name.startsWith('roi_head.bbox_head.0.') && !name.startsWith('roi_head.mask_head.0.')) continue;
    const g = grads[v.variable.name];
    assert.ok(!g || tf.max(tf.abs(g)).dataSync()[0] === 0, `${name} got a gradient from stage 1`);
  }
  tf.dispose(Object.values(grads));
  batch.dispose();
  m.dispose();
  void head;
});

test('test time: class logits averaged over the stages, last stage boxes, mask probabilities averaged', async () => {
  manualSeed(3);
  const m = await cascadeModel(['model.roi_head.bbox_head.0.num_classes=2', 'model.roi_head.bbox_head.1.num_classes=2',
    'model.roi_head.bbox_head.2.num_classes=2', 'model.roi_head.mask_head.num_classes=2']);
  const head = m.roiHead as CascadeRoIHead;
  // Constant heads: zero weights, chosen biases. Logits per stage (class 0, class 1, background).
  const clsBias = [[2, 0, 0], [0, 3, 0], [-1, -1, 2]];
  const maskBias = [-2, -2, 6]; // sigmoids 0.119, 0.119, 0.998: mean 0.412 < 0.5 (mean logit 0.67 and the last stage alone: > 0.5)
  head.bboxHeads.items.forEach((h, i) => {
    for (const lin of [h.fcCls, h.fcReg]) lin.weight.variable.assign(tf.zerosLike(lin.weight.variable));
    h.fcCls.bias!.variable.assign(tf.tensor1d(clsBias[i]));
    h.fcReg.bias!.variable.assign(tf.zerosLike(h.fcReg.bias!.variable));
  });
  head.maskHeads!.items.forEach((h, i) => {
    h.convLogits.weight.variable.assign(tf.zerosLike(h.convLogits.weight.variable));
    h.convLogits.bias!.variable.assign(tf.fill([2], maskBias[i]));
  });
  m.eval();
  const batch = sceneBatch();
  const [pred] = m.predict(batch);
  const inst = pred.instances!;
  assert.ok(inst.labels.length > 0, 'some detections');
  const mean = [0, 1, 2].map((c) => (clsBias[0][c] + clsBias[1][c] + clsBias[2][c]) / 3);
  const z = mean.reduce((s, v) => s + Math.exp(v), 0);
  const want = mean.map((v) => Math.exp(v) / z);
  for (let j = 0; j < inst.labels.length; j++) {
    assert.ok(Math.abs(inst.scores![j] - want[inst.labels[j]]) < 1e-5, `score ${inst.scores![j]} label ${inst.labels[j]}, want ${want}`);
  }
  const masks = inst.masks as { masks: Uint8Array[] };
  assert.ok(masks.masks.every((mk) => mk.every((v) => v === 0)), 'mean probability 0.41 < 0.5: empty masks');
  // Without the first two stages' vote the last alone would paint them.
  head.maskHeads!.items.forEach((h) => h.convLogits.bias!.variable.assign(tf.fill([2], 6)));
  const [again] = m.predict(batch);
  assert.ok((again.instances!.masks as { masks: Uint8Array[] }).masks.some((mk) => mk.some((v) => v === 1)));
  batch.dispose();
  m.dispose();
});

test('cascade overfits one image: the losses fall, box AP >= 0.9, tensor count flat', async () => {
  manualSeed(0);
  const m = await cascadeModel(['model.roi_head.bbox_head.0.num_classes=2', 'model.roi_head.bbox_head.1.num_classes=2',
    'model.roi_head.bbox_head.2.num_classes=2', 'model.roi_head.mask_head.num_classes=2']);
  const batch = sceneBatch();
  const { first, last, counts } = overfit(m, batch);
  assert.equal(counts.length, 1, `tensor count changed over iterations: ${counts.join(', ')}`);
  // The later stages' box losses are sums over their positives, whose number grows as the boxes
  // tighten (few RoIs reach IoU 0.6/0.7 at first): those are judged by the total and the AP.
  const keys = Object.keys(first).filter((k) => k.includes('loss'));
  for (const k of keys.filter((k) => !/^s[12]\.loss_bbox$/.test(k))) assert.ok(last[k] < first[k], `${k} did not fall: ${first[k]} -> ${last[k]}`);
  const total = (r: Record<string, number>) => keys.reduce((a, k) => a + r[k], 0);
  assert.ok(total(last) < 0.5 * total(first), `total loss ${total(first)} -> ${total(last)}`);
  const { mAP, leaked } = await sceneBoxAP(m, batch);
  assert.equal(leaked, 0, 'predict leaked tensors');
  assert.ok(mAP >= 0.9, `box AP on the overfitted image ${mAP}`);
  batch.dispose();
  m.dispose();
});

test('the cascade configs validate; stage counts that disagree name their keys', async () => {
  for (const v of ['t', 's', 'b', 'shapes']) {
    const file = `configs/cascade_maskrcnn_c2f_${v}.yaml`;
    const m = validateModelConfig((loadConfig(file) as { model: unknown }).model, file);
    assert.equal(m.type, 'CascadeMaskRCNN');
  }
  const bad = (options: string[], re: RegExp) => assert.throws(() => validateModelConfig((applyCfgOptions(loadConfig(FILE), options) as { model: unknown }).model, FILE), re);
  bad(['model.roi_head.num_stages=2'], /model\.roi_head: stage_loss_weights has 3 entries for num_stages 2/);
  bad(['model.train_cfg.rcnn=[]'], /model: train_cfg\.rcnn has 0 blocks for roi_head\.num_stages 3/);
  bad(['model.roi_head.bbox_head.1.reg_decoded_bbox=false'], /model\.roi_head\.bbox_head\.1.*GIoULoss compares boxes: it needs reg_decoded_bbox: true/);
  await assert.rejects(cascadeModel(['model.roi_head.bbox_head.2.num_classes=3']), /model\.roi_head\.bbox_head\.2\.num_classes: 3 differs from bbox_head\.0\.num_classes 5/);
});
