/**
 * Sharded evaluation: N processes each predict their shard and the evaluators' partial states are
 * gathered; the metrics equal one process's to the last digit (mIoU from summed areas; COCO AP from
 * the union of the results in dataset order: same score ties, same matches). The N "processes" here
 * are concurrent evaluations in one event loop joined by an in-memory all-gather.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildDataset } from '../src/datasets/build.ts';
import type { Batch } from '../src/datasets/collate.ts';
import { generateShapes } from '../src/datasets/shapes.ts';
import { evaluateModel } from '../src/engine/evaluate.ts';
import type { ProcessGroup } from '../src/engine/process_group.ts';
import { buildEvaluator } from '../src/evaluation/build.ts';
import type { Predictor } from '../src/models/model.ts';
import type { Prediction } from '../src/structures/prediction.ts';

await tf.setBackend('cpu');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-sharded-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const data = generateShapes({ out: tmp, train: 1, val: 7, minSize: 48, maxSize: 64, what: ['semantic', 'instances'], log: () => {} });

/** In-memory all-gather of `size` concurrent participants. */
function gatherGroup(size: number): ProcessGroup[] {
  let pending: { parts: Uint8Array[]; resolvers: ((v: Uint8Array[]) => void)[]; n: number } = { parts: [], resolvers: [], n: 0 };
  return Array.from({ length: size }, (_, rank) => ({
    rank, size,
    allGather: (bytes: Uint8Array) => new Promise<Uint8Array[]>((resolve) => {
      const round = pending;
      round.parts[rank] = bytes;
      round.resolvers.push(resolve);
      if (++round.n === size) {
        pending = { parts: [], resolvers: [], n: 0 };
        for (const r of round.resolvers) r(round.parts);
      }
    }),
  }));
}

/** A deterministic stand-in model: thresholds the image for label maps; boxes with tied scores for detections. */
function fakeModel(task: 'segmentation' | 'detection', numClasses: number): Predictor {
  return {
    task, numClasses, training: false, train: () => undefined, eval: () => undefined,
    predict: async (batch: Batch): Promise<Prediction[]> => batch.metas.map((m, i) => {
      const [h, w] = m.oriShape;
      if (task === 'segmentation') {
        const img = tf.tidy(() => tf.slice(batch.imgs, [i, 0, 0, 0], [1, h, w, 1]).dataSync());
        return { semSeg: { data: Int32Array.from(img, (v) => (v > 0 ? 1 + (Math.round(v * 3) % (numClasses - 1)) : 0)), height: h, width: w } };
      }
      const k = 3;
      const boxes = new Float32Array(4 * k), scores = new Float32Array(k), labels = new Int32Array(k);
      for (let j = 0; j < k; j++) {
        boxes.set([j * 5, j * 3, w / 2 + j * 4, h / 2 + j], 4 * j);
        scores[j] = j === 2 ? 0.5 : 0.9; // ties across images: the order of equal scores must not change the digits
        labels[j] = j % numClasses;
      }
      return { instances: { boxes, scores, labels } };
    }),
  };
}

async function metricsWithShards(block: Record<string, unknown>, task: 'segmentation' | 'detection', shards: number): Promise<Record<string, number>> {
  const ds = await buildDataset(block, { path: 'data.val' });
  const numClasses = ds.classes!.length;
  const group = gatherGroup(shards);
  const results = await Promise.all(group.map((shard) => {
    const evaluator = buildEvaluator(task === 'detection' ? { type: 'CocoMetric', metric: 'bbox' } : undefined, { task, dataset: ds, numClasses });
    return evaluateModel(fakeModel(task, numClasses), ds, evaluator, shards > 1 ? { shard } : {});
  }));
  for (const r of results) assert.deepEqual(r.metrics, results[0].metrics, 'every rank gets the same metrics');
  assert.equal(results[0].evaluated, ds.length);
  return results[0].metrics;
}

test('sharded IoUMetric and CocoMetric equal one process to the last digit (2 and 3 shards)', async () => {
  const made = await data;
  const sem = made.semantic!.val;
  const norm = { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };
  const seg = { type: 'ShapesSegDataset', img_dir: sem.images, ann_dir: sem.annotations, pipeline: [{ type: 'LoadImageFromFile' }, { type: 'LoadAnnotations' }, norm] };
  const ann = made.instances!.val;
  const det = {
    type: 'CocoDataset', ann_file: ann, img_dir: path.join(path.dirname(ann), '..', 'images', 'val'), test_mode: true,
    pipeline: [{ type: 'LoadImageFromFile' }, norm],
  };
  for (const [block, task] of [[seg, 'segmentation'], [det, 'detection']] as const) {
    const one = await metricsWithShards(block, task, 1);
    for (const n of [2, 3]) assert.deepEqual(await metricsWithShards(block, task, n), one, `${task}, ${n} shards`);
  }
});
