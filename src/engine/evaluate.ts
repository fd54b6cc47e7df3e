/**
 * The evaluation loop of every task (MMEngine `ValLoop`/`TestLoop`): samples in dataset order
 * (sample i's Rng seeded from i), `batchSize` at a time, `model.predict` in eval mode, then the
 * {@link Evaluator}. A sample the dataset returns as null (bad file with policy `skip`) is left out
 * and counted; the model is put back in train mode afterwards if it was training; no tensor escapes.
 */
import { collate } from '../datasets/collate.ts';
import type { Dataset } from '../datasets/dataset.ts';
import { sampleRng } from '../datasets/loader.ts';
import type { Sample } from '../datasets/transforms/types.ts';
import type { EvalItem, EvalResult, Evaluator } from '../evaluation/evaluator.ts';
import type { Predictor } from '../models/model.ts';
import type { Prediction } from '../structures/prediction.ts';
import { faultPoint } from '../util/fault_points.ts';

export interface EvaluateOptions {
  /** Images per forward pass (default 1: images of different sizes are padded together otherwise). */
  batchSize?: number;
  /** Test-time augmentation as the model's `test_cfg` says. */
  augTest?: boolean;
  /** Seed of the per-sample Rngs (default 0; test pipelines are normally deterministic). */
  seed?: number;
  /** Called for each evaluated image with its item and prediction (writers of outputs). */
  onPrediction?: (item: EvalItem, pred: Prediction) => Promise<void> | void;
  /** Progress and warning lines (default: none). */
  log?: (line: string) => void;
}

export interface EvaluateResult extends EvalResult {
  /** Images scored. */
  evaluated: number;
  /** Images that could not be loaded (left out of the metrics). */
  skipped: number;
  /** `FILE: cause` of the first skipped image (null: none, or the dataset cannot say). */
  firstSkipped: string | null;
}

/** Runs `model` over every sample of `dataset` and returns the evaluator's metrics. */
export async function evaluateModel(model: Predictor, dataset: Dataset, evaluator: Evaluator, opts: EvaluateOptions = {}): Promise<EvaluateResult> {
  const batchSize = opts.batchSize ?? 1;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`evaluateModel: batchSize must be a positive integer, got ${batchSize}`);
  const n = dataset.length;
  if (!(n > 0)) throw new Error('evaluateModel: the dataset is empty');
  const log = opts.log ?? (() => undefined);
  const seed = opts.seed ?? 0;
  const wasTraining = model.training;
  model.eval();
  evaluator.reset();
  let evaluated = 0;
  let skipped = 0;
  let firstSkipped: string | null = null;
  const t0 = performance.now();
  try {
    for (let start = 0; start < n; start += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - start) }, (_, k) => start + k);
      const loaded = await Promise.all(idx.map((i) => dataset.getSample(i, sampleRng(seed, i))));
      const samples: { index: number; sample: Sample }[] = [];
      loaded.forEach((s, k) => {
        if (s) samples.push({ index: idx[k], sample: s });
        else {
          skipped++;
          firstSkipped ??= dataset.badSampleOf?.(idx[k]) ?? `sample ${idx[k]}`;
          log(`warning: sample ${idx[k]} could not be loaded; left out of the metrics`);
        }
      });
      if (samples.length === 0) continue;
      const batch = collate(samples.map((it) => it.sample));
      let preds: Prediction[];
      try {
        preds = await model.predict(batch, { augTest: opts.augTest });
      } finally {
        batch.dispose();
      }
      const items: EvalItem[] = samples.map((it, k) => ({ index: it.index, sample: it.sample, meta: batch.metas[k] }));
      await evaluator.process(items, preds);
      if (opts.onPrediction) for (let k = 0; k < items.length; k++) await opts.onPrediction(items[k], preds[k]);
      evaluated += items.length;
      faultPoint('eval:sample');
      const done = Math.min(start + batchSize, n);
      const step = Math.max(1, Math.ceil(n / 10));
      if (Math.floor(done / step) > Math.floor(start / step) || done === n) {
        log(`eval: ${done}/${n} images (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
    }
  } finally {
    if (wasTraining) model.train();
  }
  if (evaluated === 0) throw new Error(`evaluateModel: none of the ${n} samples could be loaded (first: ${firstSkipped})`);
  if (skipped > 0) log(`warning: skipped ${skipped} of ${n} samples (first: ${firstSkipped}); they are not scored`);
  return { ...evaluator.evaluate(), evaluated, skipped, firstSkipped };
}
