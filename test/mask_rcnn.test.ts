/**
 * Mask R-CNN end to end on a tiny synthetic image: the configs build with MMDetection's keys, one
 * image is overfitted (every loss falls, then COCO box AP on it >= 0.9 through the COCO evaluator),
 * the tensor count stays flat over training iterations, and predictions are well-formed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { loadConfig } from '../src/config/load.ts';
import { applyCfgOptions } from '../src/config/cfg_options.ts';
import { DataParallel } from '../src/engine/data_parallel.ts';
import { buildModel } from '../src/models/build.ts';
import type { Model } from '../src/models/model.ts';
import { manualSeed } from '../src/nn/random.ts';
import { SCENE, sceneBatch } from './helpers/det_batch.ts';
import { overfit, sceneBoxAP } from './helpers/overfit.ts';

await initBackend('wasm', { quiet: true });

async function shapesModel(options: string[] = []): Promise<Model> {
  const file = 'configs/maskrcnn_c2f_shapes.yaml';
  const cfg = applyCfgOptions(loadConfig(file), options) as { model: unknown };
  return buildModel(cfg.model, { file, log: () => {} });
}

test('the shapes and T configs build with MMDetection key names', async () => {
  manualSeed(0);
  const m = await shapesModel();
  const keys = m.namedParameters().map(([k]) => k);
  for (const k of ['neck.lateral_convs.0.conv.weight', 'neck.fpn_convs.3.conv.bias', 'rpn_head.rpn_conv.weight', 'rpn_head.rpn_cls.weight',
    'rpn_head.rpn_reg.bias', 'roi_head.bbox_head.shared_fcs.0.weight', 'roi_head.bbox_head.shared_fcs.1.bias', 'roi_head.bbox_head.fc_cls.weight',
    'roi_head.bbox_head.fc_reg.weight', 'roi_head.mask_head.convs.3.conv.weight', 'roi_head.mask_head.upsample.weight', 'roi_head.mask_head.conv_logits.bias']) {
    assert.ok(keys.includes(k), `missing ${k}`);
  }
  const sd = m.stateDict();
  assert.deepEqual(sd.get('roi_head.bbox_head.fc_cls.weight')!.shape, [6, 256]);
  assert.deepEqual(sd.get('roi_head.bbox_head.fc_reg.weight')!.shape, [20, 256]);
  assert.deepEqual(sd.get('roi_head.mask_head.upsample.weight')!.shape, [64, 64, 2, 2]);
  assert.deepEqual(sd.get('rpn_head.rpn_cls.weight')!.shape, [3, 64, 1, 1]);
  m.dispose();
});

test('a wrong class count between the heads names both keys', async () => {
  await assert.rejects(shapesModel(['model.roi_head.mask_head.num_classes=4']), /model\.roi_head\.mask_head\.num_classes: 4 differs from bbox_head\.num_classes 5/);
  await assert.rejects(shapesModel(['model.rpn_head.in_channels=32']), /model\.rpn_head\.in_channels: 32 differs from the neck's out_channels 64/);
});

test('loss_bbox selects L1Loss or SmoothL1Loss (beta > 0) in both heads, and the losses differ accordingly', async () => {
  const smooth = ['model.rpn_head.loss_bbox={type: SmoothL1Loss, beta: 0.1111, loss_weight: 1.0}',
    'model.roi_head.bbox_head.loss_bbox={type: SmoothL1Loss, beta: 0.1111, loss_weight: 1.0}'];
  const losses = async (options: string[]) => {
    manualSeed(0);
    const m = await shapesModel(options);
    m.train();
    const batch = sceneBatch();
    manualSeed(1);
    const out = tf.tidy(() => Object.fromEntries(Object.entries(m.loss(batch)).map(([k, v]) => [k, v.dataSync()[0]])));
    batch.dispose();
    m.dispose();
    return out;
  };
  const l1 = await losses([]);
  const sl1 = await losses(smooth);
  // Same weights, same samples: classification equal, box losses smaller under smooth L1 (0.5 d²/β + ... ≤ d).
  assert.equal(sl1.loss_rpn_cls, l1.loss_rpn_cls);
  assert.equal(sl1.loss_cls, l1.loss_cls);
  assert.ok(sl1.loss_rpn_bbox < l1.loss_rpn_bbox && sl1.loss_bbox < l1.loss_bbox, JSON.stringify({ l1, sl1 }));
  await assert.rejects(shapesModel(['model.rpn_head.loss_bbox={type: SmoothL1Loss, beta: 0}']), /model\.rpn_head\.loss_bbox.*SmoothL1Loss needs beta > 0/);
  await assert.rejects(shapesModel(['model.roi_head.bbox_head.loss_bbox.type=GIoULoss']), /GIoULoss/);
});

test('overfitting one image: every loss falls, box AP >= 0.9, tensor count flat', async () => {
  manualSeed(0);
  const m = await shapesModel(['model.roi_head.bbox_head.num_classes=2', 'model.roi_head.mask_head.num_classes=2']);
  const batch = sceneBatch();
  const { first, last, counts } = overfit(m, batch);
  assert.equal(counts.length, 1, `tensor count changed over iterations: ${counts.join(', ')}`);
  for (const k of ['loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask']) {
    assert.ok(last[k] < first[k], `${k} did not fall: ${first[k]} -> ${last[k]}`);
  }
  const { mAP, leaked, pred } = await sceneBoxAP(m, batch);
  assert.equal(leaked, 0, 'predict leaked tensors');
  assert.equal(pred.instances!.masks!.kind, 'bitmaps');
  assert.ok(mAP >= 0.9, `box AP on the overfitted image ${mAP}`);
  batch.dispose();
  m.dispose();
});

test('data-parallel detector: two replicas give every loss; tensor counts flat on both threads', async () => {
  manualSeed(1);
  const file = 'configs/maskrcnn_c2f_shapes.yaml';
  const block = (loadConfig(file) as { model: Record<string, unknown> }).model;
  const model = await buildModel(block, { file, log: () => {} });
  model.train();
  const vars = model.trainableVariables();
  const dp = await DataParallel.start(model, vars, { workers: 2, modelConfig: block, file });
  const batch = sceneBatch(SCENE, 96, 2);
  const counts: number[] = [];
  const workerCounts: (number | undefined)[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const g = await dp.compute(batch);
      for (const k of ['loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask', 'acc']) assert.ok(Number.isFinite(g.parts[k]), `${k}: ${g.parts[k]}`);
      assert.equal(Object.keys(g.grads).length, vars.length);
      tf.dispose(Object.values(g.grads));
      counts.push(tf.memory().numTensors);
      workerCounts.push(dp.workerTensors);
    }
  } finally {
    await dp.close();
    batch.dispose();
    model.dispose();
  }
  assert.equal(new Set(counts).size, 1, `main thread tensors ${counts.join(', ')}`);
  assert.equal(new Set(workerCounts.slice(1)).size, 1, `worker tensors ${workerCounts.join(', ')}`);
});
