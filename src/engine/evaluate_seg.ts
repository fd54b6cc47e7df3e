/**
 * Semantic-segmentation evaluation of an {@link EncoderDecoder} over a dataset, with MMSegmentation's
 * metrics (aAcc, mIoU, mAcc, per-class IoU/Acc) computed against the ORIGINAL-resolution labels.
 *
 * - The model runs in eval mode; it is put back in train mode afterwards if it was training.
 * - Samples are loaded in dataset order (index i, Rng seeded from i), `batchSize` at a time; a
 *   sample the dataset returns as null (bad file with policy `skip`) is left out of the metrics and
 *   reported through `log`.
 * - Ground truth: for a {@link SegDataset} (anything exposing `pairs[i].segPath` and
 *   `reduceZeroLabel`) the label PNG is read again at its original size with
 *   {@link readLabelPng} and handed raw to {@link SegMetricAccumulator} with the dataset's
 *   `reduceZeroLabel`, which is what MMSeg's `IoUMetric` sees. For other datasets, the sample's
 *   `gtSegMap` is used when it still has the original size (a pipeline that resized the label
 *   cannot be evaluated that way, and fails with a clear error).
 * - Predictions come from `model.predict` (label maps at `oriShape`); every tensor is disposed.
 */
import { collate, type ImgMeta } from '../datasets/collate.ts';
import { isSegLabelSource, type Dataset } from '../datasets/dataset.ts';
import { sampleRng } from '../datasets/loader.ts';
import type { Sample } from '../datasets/transforms/types.ts';
import { SegMetricAccumulator, type SegMetrics } from '../evaluation/seg_metrics.ts';
import { readLabelPng } from '../io/label_png.ts';
import type { EncoderDecoder } from '../models/encoder_decoder.ts';

export interface EvaluateSegOptions {
  mode: 'whole' | 'slide';
  /** `[h, w]` crop for slide mode. */
  cropSize?: [number, number];
  /** `[h, w]` stride for slide mode. */
  stride?: [number, number];
  numClasses: number;
  /** Label ignored by the metrics (default 255). */
  ignoreIndex?: number;
  /** Images per forward pass (default 1: images of different sizes are padded together otherwise). */
  batchSize?: number;
  /** Test-time augmentation: horizontal flip. */
  flip?: boolean;
  /** Test-time augmentation: input scale ratios (default [1]). */
  scales?: number[];
  /** Seed of the per-sample Rngs (default 0; test pipelines are normally deterministic). */
  seed?: number;
  /** Called for each evaluated image with its dataset index, predicted label map and meta. */
  onPrediction?: (index: number, pred: Int32Array, meta: ImgMeta) => Promise<void> | void;
  /** Progress and warning lines (default: none). */
  log?: (line: string) => void;
}

interface SegLabelSource {
  pairs: readonly { segPath: string | null }[];
  reduceZeroLabel: boolean;
}

function labelSource(ds: Dataset): SegLabelSource | null {
  return isSegLabelSource(ds) && ds.pairs.length === ds.length ? ds : null;
}

/** Ground truth of sample `index` at original size, and whether reduce_zero_label is still to apply. */
async function originalLabel(ds: Dataset, src: SegLabelSource | null, index: number, sample: Sample): Promise<{ label: ArrayLike<number>; h: number; w: number }> {
  if (src) {
    const segPath = src.pairs[index]?.segPath;
    if (!segPath) throw new Error(`evaluateSegmentor: sample ${index} has no label file`);
    const m = await readLabelPng(segPath);
    return { label: m.data, h: m.height, w: m.width };
  }
  const seg = sample.gtSegMap;
  const [h, w] = sample.oriShape;
  if (!seg) throw new Error(`evaluateSegmentor: sample ${index}${sample.imgPath ? ` (${sample.imgPath})` : ''} has no gtSegMap`);
  if (seg.length !== h * w) {
    throw new Error(`evaluateSegmentor: sample ${index}'s gtSegMap was resized by the pipeline (${seg.length} pixels, original ${h}x${w}) ` +
      'and the dataset does not expose its label files (pairs[i].segPath); drop the label resize from the test pipeline');
  }
  return { label: seg, h, w };
}

/**
 * Evaluates `model` on every sample of `dataset`; resolves to MMSeg's metrics (fractions; a class
 * absent from both prediction and ground truth has NaN IoU/Acc, ignored by the means).
 */
export async function evaluateSegmentor(model: EncoderDecoder, dataset: Dataset, opts: EvaluateSegOptions): Promise<SegMetrics> {
  const batchSize = opts.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`evaluateSegmentor: batchSize must be a positive integer, got ${batchSize}`);
  if (opts.mode !== 'whole' && opts.mode !== 'slide') throw new Error(`evaluateSegmentor: mode must be 'whole' or 'slide', got '${String(opts.mode)}'`);
  if (opts.mode === 'slide' && (!opts.cropSize || !opts.stride)) throw new Error("evaluateSegmentor: mode 'slide' needs cropSize and stride");
  const n = dataset.length;
  if (!(n > 0)) throw new Error('evaluateSegmentor: the dataset is empty');
  const src = labelSource(dataset);
  const acc = new SegMetricAccumulator(opts.numClasses, {
    ignoreIndex: opts.ignoreIndex ?? 255,
    reduceZeroLabel: src ? src.reduceZeroLabel : false,
  });
  const log = opts.log ?? (() => undefined);
  const seed = opts.seed ?? 0;
  const wasTraining = model.training;
  model.eval();
  let evaluated = 0;
  let skipped = 0;
  const t0 = performance.now();
  try {
    for (let start = 0; start < n; start += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - start) }, (_, k) => start + k);
      const loaded = await Promise.all(idx.map((i) => dataset.getSample(i, sampleRng(seed, i))));
      const items: { index: number; sample: Sample }[] = [];
      loaded.forEach((s, k) => {
        if (s) items.push({ index: idx[k], sample: s });
        else {
          skipped++;
          log(`warning: sample ${idx[k]} could not be loaded; left out of the metrics`);
        }
      });
      if (items.length === 0) continue;
      const labels = await Promise.all(items.map((it) => originalLabel(dataset, src, it.index, it.sample)));
      const batch = collate(items.map((it) => it.sample));
      let preds: Int32Array[];
      try {
        preds = model.predict(batch.imgs, batch.metas, { mode: opts.mode, cropSize: opts.cropSize, stride: opts.stride, flip: opts.flip, scales: opts.scales });
      } finally {
        batch.dispose();
      }
      for (let k = 0; k < items.length; k++) {
        const meta = batch.metas[k];
        const { label, h, w } = labels[k];
        const [oh, ow] = meta.oriShape;
        if (h !== oh || w !== ow) {
          throw new Error(`evaluateSegmentor: sample ${items[k].index}: label is ${h}x${w} but the image is ${oh}x${ow}` +
            (meta.imgPath ? ` (${meta.imgPath})` : ''));
        }
        acc.add(preds[k], label);
        if (opts.onPrediction) await opts.onPrediction(items[k].index, preds[k], meta);
        evaluated++;
      }
      const done = Math.min(start + batchSize, n);
      const step = Math.max(1, Math.ceil(n / 10));
      if (Math.floor(done / step) > Math.floor(start / step) || done === n) {
        log(`eval: ${done}/${n} images (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
    }
  } finally {
    if (wasTraining) model.train();
  }
  if (evaluated === 0) throw new Error(`evaluateSegmentor: none of the ${n} samples could be loaded`);
  if (skipped > 0) log(`warning: ${skipped} of ${n} samples were skipped`);
  return acc.compute();
}
