/**
 * Per-image ground truth as the detection heads read it: the image's {@link Instances} (boxes and
 * labels in input-image pixels, masks at the image size) plus the crowd boxes to ignore, taken from a
 * collated batch.
 */
import type { Batch } from '../datasets/collate.ts';
import type { Instances } from '../structures/instances.ts';

export interface GroundTruth extends Instances {
  /** `[M * 4]` crowd boxes (MMDet `gt_bboxes_ignore`). */
  readonly ignore: Float32Array;
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
