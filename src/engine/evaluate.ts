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
import { fromJsonBytes, jsonBytes } from '../io/json_file.ts';
import type { ProcessGroup } from './process_group.ts';
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
  /**
   * Sharded evaluation (one process of `size`): this process predicts the images `rank, rank +
   * size, ...`; the evaluators' partial states and the counts are gathered, so every process
   * returns the metrics of the whole set, computed once from the union (never averaged).
   */
  shard?: ProcessGroup;
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
  const shard = opts.shard ?? { rank: 0, size: 1 };
  const mine = Array.from({ length: n }, (_, i) => i).filter((i) => i % shard.size === shard.rank);
  try {
    for (let start = 0; start < mine.length; start += batchSize) {
      const idx = mine.slice(start, start + batchSize);
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
      const done = Math.min(start + batchSize, mine.length);
      const step = Math.max(1, Math.ceil(mine.length / 10));
      if (Math.floor(done / step) > Math.floor(start / step) || done === n) {
        log(`eval: ${done}/${mine.length} images${shard.size > 1 ? ` of shard ${shard.rank}/${shard.size}` : ''} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
    }
  } finally {
    if (wasTraining) model.train();
  }
  if (opts.shard && shard.size > 1) {
    const parts = await opts.shard.allGather(frame(jsonBytes({ evaluated, skipped, firstSkipped }), evaluator.partial()));
    const all = parts.map((p) => unframe(p));
    evaluator.merge(all.map((a) => a.body));
    const counts = all.map((a) => fromJsonBytes<{ evaluated: number; skipped: number; firstSkipped: string | null }>(a.head));
    evaluated = counts.reduce((t, a) => t + a.evaluated, 0);
    skipped = counts.reduce((t, a) => t + a.skipped, 0);
    firstSkipped = counts.find((a) => a.firstSkipped !== null)?.firstSkipped ?? null;
  }
  if (evaluated === 0) throw new Error(`evaluateModel: none of the ${n} samples could be loaded (first: ${firstSkipped})`);
  if (skipped > 0) log(`warning: skipped ${skipped} of ${n} samples (first: ${firstSkipped}); they are not scored`);
  return { ...evaluator.evaluate(), evaluated, skipped, firstSkipped };
}

/** `head` and `body` as one message: head length (uint32 LE), head, body. */
function frame(head: Uint8Array, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + head.length + body.length);
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 4);
  out.set(body, 4 + head.length);
  return out;
}

/** The inverse of {@link frame}. */
function unframe(msg: Uint8Array): { head: Uint8Array; body: Uint8Array } {
  const n = new DataView(msg.buffer, msg.byteOffset, msg.byteLength).getUint32(0, true);
  return { head: msg.subarray(4, 4 + n), body: msg.subarray(4 + n) };
}
