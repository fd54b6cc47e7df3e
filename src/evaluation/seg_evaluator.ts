/**
 * MMSeg `IoUMetric` as an {@link Evaluator}: aAcc, mIoU, mAcc and per-class IoU/Acc against the
 * ORIGINAL-resolution labels.
 *
 * Ground truth: when the dataset exposes its label files (`pairs[i].segPath`, `reduceZeroLabel`:
 * the seg datasets) the label PNG is read again at its original size and handed raw to
 * {@link SegMetricAccumulator} with the dataset's `reduceZeroLabel`, which is what MMSeg's
 * `IoUMetric` sees. Otherwise the sample's `gtSegMap` is used when it still has the original size
 * (a pipeline that resized the label cannot be evaluated that way, and fails with a clear error).
 */
import type { SegLabelSource } from '../datasets/dataset.ts';
import { readLabelPng } from '../io/label_png.ts';
import type { Prediction } from '../structures/prediction.ts';
import { fromJsonBytes, jsonBytes } from '../io/json_file.ts';
import type { EvalItem, EvalResult, Evaluator } from './evaluator.ts';
import { formatSegMetrics, SegMetricAccumulator, type SegAccumulatorState, type SegMetrics } from './seg_metrics.ts';


export interface IoUMetricOptions {
  numClasses: number;
  /** Label ignored by the metrics (default 255). */
  ignoreIndex?: number;
  /** Where the original labels are read from (else each sample's `gtSegMap`). */
  labelFiles?: Pick<SegLabelSource, 'pairs' | 'reduceZeroLabel'>;
  /** Class names for the table (default the indices). */
  classes?: readonly string[];
}

/** MMSeg-style JSON of metrics: fractions, NaN → null. */
export function segMetricsJson(m: SegMetrics): unknown {
  const n = (v: number) => (Number.isFinite(v) ? v : null);
  return { aAcc: n(m.aAcc), mIoU: n(m.mIoU), mAcc: n(m.mAcc), per_class: { IoU: m.perClass.IoU.map(n), Acc: m.perClass.Acc.map(n) } };
}

export class IoUMetric implements Evaluator {
  readonly type = 'IoUMetric';
  readonly defaultBestMetric = 'mIoU';
  private readonly acc: SegMetricAccumulator;

  constructor(private readonly opts: IoUMetricOptions) {
    this.acc = new SegMetricAccumulator(opts.numClasses, {
      ignoreIndex: opts.ignoreIndex ?? 255,
      reduceZeroLabel: opts.labelFiles?.reduceZeroLabel ?? false,
    });
  }

  reset(): void {
    this.acc.reset();
  }

  async process(items: readonly EvalItem[], results: readonly Prediction[]): Promise<void> {
    const labels = await Promise.all(items.map((it) => this.originalLabel(it)));
    items.forEach((it, k) => {
      const seg = results[k]?.semSeg;
      if (!seg) throw new Error(`IoUMetric: the prediction of sample ${it.index} has no semantic map`);
      const { label, h, w } = labels[k];
      if (h !== seg.height || w !== seg.width) {
        throw new Error(`IoUMetric: sample ${it.index}: label is ${h}x${w} but the prediction is ${seg.height}x${seg.width}` +
          (it.meta.imgPath ? ` (${it.meta.imgPath})` : ''));
      }
      this.acc.add(seg.data, label);
    });
  }

  partial(): Uint8Array {
    return jsonBytes(this.acc.snapshot());
  }

  merge(parts: readonly Uint8Array[]): void {
    this.acc.reset();
    for (const p of parts) this.acc.absorb(fromJsonBytes<SegAccumulatorState>(p));
  }

  evaluate(): EvalResult {
    const m = this.acc.compute();
    const classes = this.opts.classes && this.opts.classes.length === this.opts.numClasses ? this.opts.classes : undefined;
    return { metrics: { aAcc: m.aAcc, mIoU: m.mIoU, mAcc: m.mAcc }, report: formatSegMetrics(m, classes), json: segMetricsJson(m) };
  }

  /** Ground truth of one item at original size. */
  private async originalLabel(it: EvalItem): Promise<{ label: ArrayLike<number>; h: number; w: number }> {
    const files = this.opts.labelFiles;
    if (files) {
      const segPath = files.pairs[it.index]?.segPath;
      if (!segPath) throw new Error(`IoUMetric: sample ${it.index} has no label file`);
      const m = await readLabelPng(segPath);
      return { label: m.data, h: m.height, w: m.width };
    }
    const seg = it.sample?.gtSegMap;
    const [h, w] = it.meta.oriShape;
    const name = `sample ${it.index}${it.meta.imgPath ? ` (${it.meta.imgPath})` : ''}`;
    if (!seg) throw new Error(`IoUMetric: ${name} has no gtSegMap`);
    if (seg.length !== h * w) {
      throw new Error(`IoUMetric: ${name}'s gtSegMap was resized by the pipeline (${seg.length} pixels, original ${h}x${w}) ` +
        'and the dataset does not expose its label files (pairs[i].segPath); drop the label resize from the test pipeline');
    }
    return { label: seg, h, w };
  }
}
