/**
 * The detectors' overfit check: train a model on one scene batch, then its box AP on that image.
 * Shared by the Mask R-CNN and Cascade Mask R-CNN tests.
 */
import * as tf from '@tensorflow/tfjs';
import { COCO } from '../../src/coco/coco.ts';
import { AdamW } from '../../src/engine/adamw.ts';
import { batchGradients } from '../../src/engine/gradients.ts';
import { CocoMetric } from '../../src/evaluation/coco_evaluator.ts';
import type { Batch } from '../../src/datasets/collate.ts';
import type { Model } from '../../src/models/model.ts';
import type { Module } from '../../src/nn/module.ts';
import type { Prediction } from '../../src/structures/prediction.ts';
import { SCENE } from './det_batch.ts';

export interface OverfitRun {
  /** Mean of each logged output over the first and the last 5 iterations. */
  first: Record<string, number>;
  last: Record<string, number>;
  /** Distinct tensor counts after each iteration from the third on (one when nothing leaks). */
  counts: number[];
}

/**
 * `iters` AdamW steps (lr 2e-3, no decay) on `batch`, the lr ten times lower for the last 40: at a
 * constant lr the box AP of a Mask R-CNN swung between 0.75 and 0.97 from one 40-iteration mark to
 * the next (seeds 0-2); with the step it was 1.0 in all six runs.
 */
export function overfit(m: Model & Module, batch: Batch, iters = 160): OverfitRun {
  const opt = new AdamW(m, { lr: 2e-3, weightDecay: 0 });
  const vars = m.trainableVariables();
  m.train();
  const first: Record<string, number> = {};
  const last: Record<string, number> = {};
  const counts: number[] = [];
  for (let i = 0; i < iters; i++) {
    opt.lr = i < iters - 40 ? 2e-3 : 2e-4;
    const g = batchGradients(m, batch, vars);
    opt.step(g.grads);
    tf.dispose(Object.values(g.grads));
    for (const [k, v] of Object.entries(g.parts)) {
      if (i < 5) first[k] = (first[k] ?? 0) + v / 5;
      if (i >= iters - 5) last[k] = (last[k] ?? 0) + v / 5;
    }
    if (i >= 2) counts.push(tf.memory().numTensors);
  }
  return { first, last, counts: [...new Set(counts)] };
}

/** Box mAP of the model's prediction for the scene batch (`sceneBatch()`, labels 0/1) in eval mode, and whether predict leaked tensors. */
export async function sceneBoxAP(m: Model, batch: Batch): Promise<{ mAP: number; leaked: number; pred: Prediction }> {
  m.eval();
  const before = tf.memory().numTensors;
  const [pred] = await m.predict(batch);
  const leaked = tf.memory().numTensors - before;
  const gt = new COCO({
    images: [{ id: 1, width: 128, height: 128, file_name: 'scene.png' }],
    categories: [{ id: 1, name: 'square' }, { id: 2, name: 'disc' }],
    annotations: SCENE.map((s, i) => {
      const b = batch.gtBboxes[0].subarray(i * 4, i * 4 + 4);
      const mask = (batch.gtMasks[0] as { masks: Uint8Array[] }).masks[i];
      return { id: i + 1, image_id: 1, category_id: s.label + 1, bbox: [b[0], b[1], b[2] - b[0], b[3] - b[1]], area: mask.reduce((a, v) => a + v, 0), iscrowd: 0,
        segmentation: [[b[0], b[1], b[2], b[1], b[2], b[3], b[0], b[3]]] };
    }),
  });
  const metric = new CocoMetric({ coco: gt, label2cat: [1, 2], metrics: ['bbox'] });
  metric.reset();
  metric.process([{ index: 0, meta: batch.metas[0] }], [pred]);
  return { mAP: metric.evaluate().metrics.bbox_mAP, leaked, pred };
}
