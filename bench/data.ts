/**
 * Data pipeline throughput (`npm run bench:data`): images/s of
 *   (a) the detection training pipeline (load JPEG + COCO annotations, multi-scale Resize, flip,
 *       Normalize, Pad /32) through the DataLoader, batch 2, aspect grouping, prefetch 4;
 *   (b) the ADE20K-style semantic pipeline (ratio 0.5-2.0 Resize of (2048, 512), RandomCrop 512
 *       with catMaxRatio 0.75, flip, PhotoMetricDistortion, Normalize, Pad 512), batch 2.
 * The shapes data set is generated under work_dirs/bench_data/ when missing. Batches are disposed
 * right away, so this measures the data side only (no model compute to overlap with).
 *
 *   tsx bench/data.ts [--images 100] [--prefetch 4]
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { CocoDataset } from '../src/datasets/coco_dataset.ts';
import type { Dataset } from '../src/datasets/dataset.ts';
import { DataLoader } from '../src/datasets/loader.ts';
import { ShapesSegDataset } from '../src/datasets/seg_dataset.ts';
import { generateShapes } from '../src/datasets/shapes.ts';
import type { TransformConfig } from '../src/datasets/transforms/pipeline.ts';
import { multiScaleShortSide } from '../src/datasets/transforms/resize.ts';

const ROOT = 'work_dirs/bench_data';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

async function run(name: string, ds: Dataset, images: number, prefetch: number): Promise<void> {
  const batchSize = 2;
  const loader = new DataLoader(ds, { batchSize, shuffle: true, seed: 0, infinite: true, groupByAspect: !!ds.aspectGroup, prefetch });
  // Warm-up batch (JIT, thread pool start) is not timed.
  (await loader.nextBatch())!.dispose();
  const c0 = loader.stats.collateMs, w0 = loader.stats.waitMs, s0 = loader.stats.skipped;
  const t0 = performance.now();
  let n = 0;
  let shape: number[] = [];
  while (n < images) {
    const b = (await loader.nextBatch())!;
    n += b.metas.length;
    shape = b.imgs.shape;
    b.dispose();
  }
  const sec = (performance.now() - t0) / 1000;
  const collateMs = loader.stats.collateMs - c0;
  console.log(`${name}: ${n} images in ${sec.toFixed(2)} s = ${(n / sec).toFixed(1)} images/s ` +
    `(batch ${batchSize}, prefetch ${prefetch}; collate ${collateMs.toFixed(0)} ms = ${(collateMs / n).toFixed(1)} ms/image, ` +
    `${((100 * collateMs) / (sec * 1000)).toFixed(1)}% of the time; waiting for samples ${(loader.stats.waitMs - w0).toFixed(0)} ms; ` +
    `skipped ${loader.stats.skipped - s0}; last batch ${JSON.stringify(shape)})`);
}

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  const images = Number(arg('images', '100'));
  const prefetch = Number(arg('prefetch', '4'));
  const cocoJson = path.join(ROOT, 'coco/annotations/instances_train.json');
  const adeImgs = path.join(ROOT, 'ade/images/training');
  if (!existsSync(cocoJson) || !existsSync(adeImgs)) {
    console.log(`generating shapes data under ${ROOT} ...`);
    await generateShapes({ out: ROOT, seed: 0, train: 64, val: 0, minSize: 480, maxSize: 640 });
  }
  console.log(`cpus ${os.cpus().length}, UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '(default 4)'}`);

  const det: TransformConfig[] = [
    { type: 'Resize', scale: multiScaleShortSide(), keep_ratio: true },
    { type: 'RandomFlip', prob: 0.5 },
    { type: 'Normalize' },
    { type: 'Pad', size_divisor: 32 },
  ];
  const cocoSet = await CocoDataset.create({ annFile: cocoJson, imgDir: path.join(ROOT, 'coco/images/train'), pipeline: det });
  await run('detection', cocoSet, images, prefetch);

  const seg: TransformConfig[] = [
    { type: 'Resize', scale: [2048, 512], ratio_range: [0.5, 2.0], keep_ratio: true },
    { type: 'RandomCrop', crop_size: [512, 512], cat_max_ratio: 0.75 },
    { type: 'RandomFlip', prob: 0.5 },
    { type: 'PhotoMetricDistortion', swap_prob: 0 },
    { type: 'Normalize' },
    { type: 'Pad', size: [512, 512], seg_pad_val: 255 },
  ];
  const segSet = await ShapesSegDataset.create({ imgDir: adeImgs, annDir: path.join(ROOT, 'ade/annotations/training'), pipeline: seg });
  await run('segmentation', segSet, images, prefetch);
}

await main();
