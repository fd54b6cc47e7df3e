/** Files on disk to batches: generated shapes through the real datasets, pipelines and DataLoader. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CocoDataset } from '../src/datasets/coco_dataset.ts';
import { DataLoader } from '../src/datasets/loader.ts';
import { ShapesSegDataset } from '../src/datasets/seg_dataset.ts';
import { generateShapes } from '../src/datasets/shapes.ts';
import { Rng } from '../src/nn/random.ts';

await tf.setBackend('cpu');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-data-'));
await generateShapes({ out: tmp, seed: 5, train: 6, val: 1, minSize: 64, maxSize: 96, log: () => {} });

test('detection batches: padded NHWC float32 images, ragged boxes/labels/masks, deterministic', async () => {
  const ds = await CocoDataset.create({
    annFile: path.join(tmp, 'coco/annotations/instances_train.json'), imgDir: path.join(tmp, 'coco/images/train'),
    pipeline: [{ type: 'Resize', scale: [[160, 96], [160, 128]], keep_ratio: true }, { type: 'RandomFlip' }, { type: 'Normalize' }, { type: 'Pad', size_divisor: 32 }],
  });
  const firstBatch = async () => {
    const loader = new DataLoader(ds, { batchSize: 2, shuffle: true, seed: 11, infinite: true, groupByAspect: true });
    const b = (await loader.nextBatch())!;
    const out = { shape: b.imgs.shape, dtype: b.imgs.dtype, sum: tf.tidy(() => tf.sum(b.imgs).dataSync()[0]), metas: b.metas, boxes: b.gtBboxes, labels: b.gtLabels, masks: b.gtMasks };
    b.dispose();
    return out;
  };
  const before = tf.memory().numTensors;
  const a = await firstBatch();
  assert.equal(tf.memory().numTensors, before, 'batch tensors disposed');
  assert.equal(a.dtype, 'float32');
  assert.equal(a.shape[0], 2);
  assert.equal(a.shape[3], 3);
  assert.ok(a.shape[1] % 32 === 0 && a.shape[2] % 32 === 0, `padded to /32: ${a.shape}`);
  for (let i = 0; i < 2; i++) {
    const n = a.labels[i]!.length;
    assert.ok(n > 0);
    assert.equal(a.boxes[i]!.length, 4 * n);
    assert.ok(a.labels[i]!.every((l) => l >= 0 && l < 5));
    const m = a.masks[i]!;
    assert.equal(m.kind === 'polygons' ? m.polys.length : m.masks.length, n);
    const [h, w] = a.metas[i].imgShape;
    assert.ok(h <= a.shape[1] && w <= a.shape[2]);
  }
  const b = await firstBatch();
  assert.equal(b.sum, a.sum, 'same seed, same batch');
  assert.deepEqual(b.boxes, a.boxes);
});

test('LoadImageFromFile/LoadAnnotations entries are honoured: poly2mask gives bitmap masks', async () => {
  const ds = await CocoDataset.create({
    annFile: path.join(tmp, 'coco/annotations/instances_train.json'), imgDir: path.join(tmp, 'coco/images/train'),
    pipeline: [{ type: 'LoadImageFromFile' }, { type: 'LoadAnnotations', with_bbox: true, with_mask: true, poly2mask: true }, { type: 'Pad', size_divisor: 32 }],
  });
  const s = (await ds.getSample(0, new Rng(0)))!;
  assert.equal(s.gtMasks?.kind, 'bitmaps');
});

test('segmentation batches: seg maps padded with 255 as int32 [N, H, W]', async () => {
  const ds = await ShapesSegDataset.create({
    imgDir: path.join(tmp, 'ade/images/training'), annDir: path.join(tmp, 'ade/annotations/training'),
    pipeline: [{ type: 'RandomCrop', crop_size: [48, 48], cat_max_ratio: 0.75 }, { type: 'RandomFlip' }, { type: 'Normalize' }, { type: 'Pad', size: [64, 64] }],
  });
  const loader = new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 2, infinite: true });
  const batch = (await loader.nextBatch())!;
  assert.deepEqual(batch.imgs.shape, [3, 64, 64, 3]);
  assert.ok(batch.gtSegMaps);
  assert.deepEqual(batch.gtSegMaps.shape, [3, 64, 64]);
  assert.equal(batch.gtSegMaps.dtype, 'int32');
  const seg = batch.gtSegMaps.dataSync();
  assert.equal(seg[3 * 64 * 64 - 1], 255, 'padding is ignore');
  assert.ok(Array.from(seg).every((v) => v === 255 || (v >= 0 && v < 6)));
  batch.dispose();
});
