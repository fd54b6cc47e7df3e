/**
 * Per-image instance records (detectron2 `Instances`, typed): ground truth from the data pipeline,
 * detections from the heads, both read by the evaluators. Lengths are checked on construction.
 */
import { numMasks, type InstanceMasks } from './masks.ts';

export interface Instances {
  /** `[N * 4]` boxes `x1, y1, x2, y2` in pixels of the image they belong to. */
  readonly boxes: Float32Array;
  /** `[N]` contiguous class labels `0..K-1`. */
  readonly labels: Int32Array;
  /** `[N]` confidences (detections only). */
  readonly scores?: Float32Array;
  /** N masks at the image size (optional). */
  readonly masks?: InstanceMasks;
}

/** Number of instances of `inst`. */
export function numInstances(inst: Instances): number {
  return inst.labels.length;
}

/**
 * An {@link Instances} of these fields.
 * @throws when the boxes, labels, scores and masks do not describe the same number of instances.
 */
export function makeInstances(fields: Instances): Instances {
  const n = fields.labels.length;
  const bad = (what: string, got: number) => new Error(`Instances: ${n} labels but ${got} ${what}`);
  if (fields.boxes.length !== n * 4) throw bad('box values (expected 4 per instance)', fields.boxes.length);
  if (fields.scores && fields.scores.length !== n) throw bad('scores', fields.scores.length);
  if (fields.masks && numMasks(fields.masks) !== n) throw bad('masks', numMasks(fields.masks));
  return fields;
}
