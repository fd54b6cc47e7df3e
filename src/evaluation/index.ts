/** Evaluation metrics on plain arrays (no tfjs): semantic segmentation (MMSeg-compatible). */
export {
  SegMetricAccumulator,
  areasToMetrics,
  formatSegMetrics,
  histcBin,
  intersectAndUnion,
  type SegAreas,
  type SegMetricOptions,
  type SegMetrics,
} from './seg_metrics.ts';
