/**
 * Streaming evaluation (detectron2 `DatasetEvaluator`, MMEngine `BaseMetric`): `reset`, then
 * `process` each batch's ground truth with the model's predictions, then `evaluate` once.
 * The segmentation (`IoUMetric`) and COCO (`CocoMetric`) evaluators implement it.
 */
import type { ImgMeta } from '../datasets/collate.ts';
import type { Sample } from '../datasets/transforms/types.ts';
import type { Prediction } from '../structures/prediction.ts';

/** One evaluated image: its dataset index, its batch meta and (when loaded) the pipeline's sample. */
export interface EvalItem {
  index: number;
  meta: ImgMeta;
  sample?: Sample;
}

export interface EvalResult {
  /** Flat numeric metrics (fractions; NaN where undefined), what the trainer logs and tracks. */
  metrics: Record<string, number>;
  /** A human-readable table (per-class rows, summary lines). */
  report: string;
  /** The full result as JSON-ready data (for `--metrics-out`). */
  json: unknown;
}

export interface Evaluator {
  /** The config `type` of this evaluator, e.g. `IoUMetric`. */
  readonly type: string;
  /** The metric tracked for `best.json` unless `train.best_metric` says otherwise. */
  readonly defaultBestMetric: string;
  /** Forgets everything processed so far. */
  reset(): void;
  /** Adds the predictions of a batch (`results[k]` belongs to `items[k]`). */
  process(items: readonly EvalItem[], results: readonly Prediction[]): Promise<void>;
  /** Metrics over everything processed since `reset`. */
  evaluate(): EvalResult;
  /**
   * Sharded evaluation (one shard of the images per process): what this process accumulated, as
   * bytes to send to the others. Never metrics: the merged state is scored once.
   */
  partial(): Uint8Array;
  /** Replaces the state by the union of every process's {@link partial} (in rank order). */
  merge(parts: readonly Uint8Array[]): void;
}

