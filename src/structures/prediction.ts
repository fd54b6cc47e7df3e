/**
 * What a model's `predict` returns for one image, MMDet/MMSeg `DataSample`-like: a semantic label
 * map (segmentors) and/or instances (detectors), in the ORIGINAL image's pixels.
 */
import type { Instances } from './instances.ts';

/** A `[height, width]` row-major map of class ids. */
export interface LabelMap {
  readonly data: Int32Array;
  readonly height: number;
  readonly width: number;
}

export interface Prediction {
  /** Semantic segmentation (segmentors). */
  readonly semSeg?: LabelMap;
  /** Detections, boxes and masks at the original image size (detectors). */
  readonly instances?: Instances;
}
