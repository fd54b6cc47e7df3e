/**
 * A collated {@link Batch} as plain data, so that a slice of it can be posted to a worker thread
 * (structured clone; the typed arrays' buffers are transferred, not copied) and rebuilt there.
 */
import * as tf from '@tensorflow/tfjs';
import { batchOf, type Batch, type ImgMeta } from './collate.ts';
import type { InstanceMasks } from '../structures/masks.ts';

/** Images `i in [start, end)` of a batch, tensors as flat typed arrays with their shapes. */
export interface PackedBatch {
  /** `[n, H, W, 3]` float32, row-major. */
  imgs: Float32Array;
  imgsShape: [number, number, number, number];
  metas: ImgMeta[];
  gtBboxes: Float32Array[];
  gtLabels: Int32Array[];
  gtMasks: (InstanceMasks | undefined)[];
  gtBboxesIgnore: Float32Array[];
  /** `[n, H, W]` int32, when the batch has seg maps. */
  gtSegMaps?: Int32Array;
}

/** Copies images `[start, end)` of `batch` out of its tensors (the batch stays usable). */
export function packBatch(batch: Batch, start: number, end: number): PackedBatch {
  const [n, H, W] = batch.imgs.shape;
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end && end <= n)) {
    throw new Error(`packBatch: slice [${start}, ${end}) is not within the batch of ${n}`);
  }
  const img = H * W * 3;
  const imgs = (batch.imgs.dataSync() as Float32Array).slice(start * img, end * img);
  const seg = batch.gtSegMaps ? (batch.gtSegMaps.dataSync() as Int32Array).slice(start * H * W, end * H * W) : undefined;
  return {
    imgs,
    imgsShape: [end - start, H, W, 3],
    metas: batch.metas.slice(start, end),
    gtBboxes: batch.gtBboxes.slice(start, end),
    gtLabels: batch.gtLabels.slice(start, end),
    gtMasks: batch.gtMasks.slice(start, end),
    gtBboxesIgnore: batch.gtBboxesIgnore.slice(start, end),
    gtSegMaps: seg,
  };
}

/** The buffers of a packed batch that `postMessage` may transfer (the sender loses them). */
export function transferablesOf(p: PackedBatch): ArrayBuffer[] {
  const out = [p.imgs.buffer as ArrayBuffer];
  if (p.gtSegMaps) out.push(p.gtSegMaps.buffer as ArrayBuffer);
  return out;
}

/** Rebuilds a {@link Batch} (new tensors, owned by the caller) from a packed one. */
export function unpackBatch(p: PackedBatch): Batch {
  const [n, H, W] = p.imgsShape;
  return batchOf({
    imgs: tf.tensor4d(p.imgs, p.imgsShape, 'float32'),
    metas: p.metas,
    gtBboxes: p.gtBboxes,
    gtLabels: p.gtLabels,
    gtMasks: p.gtMasks,
    gtBboxesIgnore: p.gtBboxesIgnore,
    gtSegMaps: p.gtSegMaps ? tf.tensor3d(p.gtSegMaps, [n, H, W], 'int32') : undefined,
  });
}
