/**
 * Per-image ground truth as the detection heads read it, taken from a collated batch: boxes and
 * labels in input-image pixels, crowd boxes to ignore, instance masks at the image size.
 */
import type { Batch } from '../datasets/collate.ts';
import type { InstanceMasks } from '../structures/masks.ts';

export interface GroundTruth {
  /** `[G * 4]` boxes `x1, y1, x2, y2`. */
  boxes: Float32Array;
  /** `[G]` labels `0..K-1`. */
  labels: Int32Array;
  /** `[M * 4]` crowd boxes (MMDet `gt_bboxes_ignore`). */
  ignore: Float32Array;
  masks?: InstanceMasks;
}

/** The ground truth of each image of `batch`. */
export function groundTruthOf(batch: Batch): GroundTruth[] {
  return batch.metas.map((_, i) => ({
    boxes: batch.gtBboxes[i],
    labels: batch.gtLabels[i],
    ignore: batch.gtBboxesIgnore[i],
    masks: batch.gtMasks[i],
  }));
}
