/** data.num_workers: samples loaded in worker threads are the same batches as loaded here. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildLoadingDataset } from '../src/datasets/build.ts';
import { CocoDataset } from '../src/datasets/coco_dataset.ts';
import { isSegLabelSource } from '../src/datasets/dataset.ts';
import { DataLoader } from '../src/datasets/loader.ts';
import { ParallelDataset } from '../src/datasets/parallel_dataset.ts';
import { generateShapes } from '../src/datasets/shapes.ts';

await tf.setBackend('cpu');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-par-'));
await generateShapes({ out: tmp, seed: 3, train: 6, val: 1, minSize: 64, maxSize: 96, log: () => {} });

const segBlock = {
  type: 'ShapesSegDataset',
  img_dir: path.join(tmp, 'ade/images/training'),
  ann_dir: path.join(tmp, 'ade/annotations/training'),
  pipeline: [
    { type: 'LoadImageFromFile' }, { type: 'LoadAnnotations' },
    { type: 'Resize', scale: [128, 64], ratio_range: [0.75, 1.25], keep_ratio: true },
    { type: 'RandomCrop', crop_size: [64, 64], cat_max_ratio: 0.75 },
    { type: 'RandomFlip', prob: 0.5 }, { type: 'Normalize' }, { type: 'Pad', size: [64, 64] },
  ],
};
const detBlock = {
  type: 'CocoDataset',
  ann_file: path.join(tmp, 'coco/annotations/instances_train.json'),
  img_dir: path.join(tmp, 'coco/images/train'),
  pipeline: [
    { type: 'LoadImageFromFile' }, { type: 'LoadAnnotations', with_bbox: true, with_mask: true },
    { type: 'Resize', scale: [[160, 96], [160, 128]], keep_ratio: true }, { type: 'RandomFlip' }, { type: 'Normalize' }, { type: 'Pad', size_divisor: 32 },
  ],
};

/** Three batches of a loader over the dataset built from `block` with `workers` threads. */
async function batches(block: object, workers: number, groupByAspect = false) {
  const ds = await buildLoadingDataset(block, { path: 'data.train' }, workers);
  const loader = new DataLoader(ds, { batchSize: 2, shuffle: true, seed: 7, infinite: true, groupByAspect });
  const out = [];
  for (let i = 0; i < 3; i++) {
    const b = (await loader.nextBatch())!;
    out.push({ imgs: Array.from(b.imgs.dataSync()), seg: b.gtSegMaps ? Array.from(b.gtSegMaps.dataSync()) : null, metas: b.metas,
      boxes: b.gtBboxes, labels: b.gtLabels, masks: b.gtMasks });
    b.dispose();
  }
  await ds.close?.();
  return { out, ds };
}

test('segmentation: two workers give the batches of the training thread, and the dataset surface is kept', async () => {
  const here = await batches(segBlock, 0);
  const there = await batches(segBlock, 2);
  assert.equal((there.ds as ParallelDataset).numWorkers, 2);
  assert.deepEqual(there.out, here.out);
  assert.equal(there.ds.length, here.ds.length);
  assert.ok(isSegLabelSource(there.ds), 'pairs and reduceZeroLabel reach the evaluator');
  assert.deepEqual(there.ds.classes, here.ds.classes);
});

test('detection: boxes, labels and polygon masks come back from a worker unchanged', async () => {
  const here = await batches(detBlock, 0, true);
  const there = await batches(detBlock, 1, true);
  assert.deepEqual(there.out, here.out);
  assert.ok(there.ds instanceof CocoDataset, 'the evaluators see a CocoDataset');
});

test('bad samples are skipped in the worker and counted here; a config error names its key', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'c2f-par-bad-'));
  await generateShapes({ out: dir, seed: 4, train: 3, val: 1, minSize: 64, maxSize: 96, log: () => {} });
  const imgDir = path.join(dir, 'ade/images/training');
  const first = (await import('node:fs')).readdirSync(imgDir).sort()[0];
  writeFileSync(path.join(imgDir, first), 'not an image');
  const block = { ...segBlock, img_dir: imgDir, ann_dir: path.join(dir, 'ade/annotations/training'), on_bad_sample: 'skip' };
  const ds = await buildLoadingDataset(block, { path: 'data.train' }, 1);
  const warn = console.warn;
  console.warn = () => {};
  try {
    const loader = new DataLoader(ds, { batchSize: 2, shuffle: false });
    let n = 0;
    for await (const b of loader) { n += b.imgs.shape[0]; b.dispose(); }
    assert.equal(n, 2);
    assert.equal(ds.badSamples, 1);
    assert.equal(loader.stats.skipped, 1);
  } finally {
    console.warn = warn;
    await ds.close?.();
  }
  await assert.rejects(buildLoadingDataset({ ...segBlock, img_dirr: 'x' }, { file: 'cfg.yaml', path: 'data.train' }, 1), /data\.train.*img_dirr/s);
});
