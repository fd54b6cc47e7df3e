/**
 * Collation of pipeline samples into a training/evaluation batch (MMCV `collate` + MMDet
 * `DefaultFormatBundle`): images become ONE padded `[N, H, W, 3]` float32 tensor, per-instance
 * annotations stay ragged typed arrays (detection heads want per-image lists), and semantic maps
 * become one `[N, H, W]` int32 tensor padded with 255.
 */
import * as tf from '@tensorflow/tfjs';
import type { FlipDirection, Sample } from './transforms/types.ts';
import type { InstanceMasks } from '../structures/masks.ts';

/** Value that seg maps are padded with (MMSeg's ignore index). */
export const SEG_PAD_VALUE = 255;

/** Per-image meta information (MMDet `img_metas`). */
export interface ImgMeta {
  imageId?: number;
  imgPath?: string;
  /** `[h, w]` as loaded. */
  oriShape: [number, number];
  /** `[h, w]` after the geometric transforms (valid region of the image). */
  imgShape: [number, number];
  /** `[h, w]` after the pipeline's Pad (the image's own size when it had no Pad). */
  padShape: [number, number];
  /** `[h, w]` of the batch tensor. */
  batchInputShape: [number, number];
  scaleFactor: [number, number];
  flip: boolean;
  flipDirection?: FlipDirection;
  /**
   * uint32 seed of the random choices the model makes for this image in training (RPN/RoI target
   * sampling), set by the DataLoader from its seed and the image's draw position: the same image
   * samples the same targets whatever batch or process it lands in, and after a resume.
   */
  samplingSeed?: number;
}

/**
 * A collated batch. `imgs` and `gtSegMaps` are tf tensors created at collate time: the caller owns
 * them and must call {@link Batch.dispose} (or dispose them itself) when done with the batch.
 */
export interface Batch {
  /** `[N, H, W, 3]` float32, padded bottom/right with zeros to the largest image of the batch. */
  imgs: tf.Tensor4D;
  metas: ImgMeta[];
  /** Per image `n_i * 4` boxes xyxy (empty when the sample had none). */
  gtBboxes: Float32Array[];
  /** Per image `n_i` labels. */
  gtLabels: Int32Array[];
  /** Per image instance masks (undefined when the sample had none). */
  gtMasks: (InstanceMasks | undefined)[];
  /** Per image `m_i * 4` ignored boxes. */
  gtBboxesIgnore: Float32Array[];
  /** `[N, H, W]` int32 labels padded with 255, when every sample has a seg map. */
  gtSegMaps?: tf.Tensor3D;
  /** Disposes the batch's tensors (idempotent). */
  dispose(): void;
}

/** Collates `samples` (at least one) into a {@link Batch}. */
export function collate(samples: Sample[]): Batch {
  const n = samples.length;
  if (n === 0) throw new Error('collate: empty batch');
  let H = 0, W = 0;
  for (const s of samples) {
    if (s.img.channels !== 3 || s.img.data.length !== s.img.height * s.img.width * 3) {
      throw new Error(`collate: image ${s.imageId ?? '?'} data does not match ${s.img.height}x${s.img.width}x3`);
    }
    H = Math.max(H, s.img.height);
    W = Math.max(W, s.img.width);
  }
  const imgBuf = new Float32Array(n * H * W * 3);
  samples.forEach((s, k) => {
    const { data, height: h, width: w } = s.img;
    const rowLen = w * 3;
    const base = k * H * W * 3;
    if (w === W) imgBuf.set(data, base);
    else for (let y = 0; y < h; y++) imgBuf.set(data.subarray(y * rowLen, (y + 1) * rowLen), base + y * W * 3);
  });

  const withSeg = samples.filter((s) => s.gtSegMap).length;
  if (withSeg !== 0 && withSeg !== n) throw new Error(`collate: ${withSeg} of ${n} samples have a seg map; all or none must`);
  let segBuf: Int32Array | undefined;
  if (withSeg === n) {
    segBuf = new Int32Array(n * H * W).fill(SEG_PAD_VALUE);
    samples.forEach((s, k) => {
      const { height: h, width: w } = s.img;
      const seg = s.gtSegMap!;
      if (seg.length !== h * w) throw new Error(`collate: seg map of image ${s.imageId ?? '?'} has ${seg.length} pixels, image is ${h}x${w}`);
      for (let y = 0; y < h; y++) {
        const dst = k * H * W + y * W;
        for (let x = 0; x < w; x++) segBuf![dst + x] = seg[y * w + x];
      }
    });
  }

  const metas: ImgMeta[] = samples.map((s) => ({
    imageId: s.imageId,
    imgPath: s.imgPath,
    oriShape: [...s.oriShape],
    imgShape: [...s.imgShape],
    padShape: s.padShape ? [...s.padShape] : [s.img.height, s.img.width],
    batchInputShape: [H, W],
    scaleFactor: [...s.scaleFactor],
    flip: s.flip,
    flipDirection: s.flipDirection,
  }));

  return batchOf({
    imgs: tf.tensor4d(imgBuf, [n, H, W, 3], 'float32'),
    metas,
    gtBboxes: samples.map((s) => s.gtBboxes ?? new Float32Array(0)),
    gtLabels: samples.map((s) => s.gtLabels ?? new Int32Array(0)),
    gtMasks: samples.map((s) => s.gtMasks),
    gtBboxesIgnore: samples.map((s) => s.gtBboxesIgnore ?? new Float32Array(0)),
    gtSegMaps: segBuf ? tf.tensor3d(segBuf, [n, H, W], 'int32') : undefined,
  });
}

/** A {@link Batch} of these fields whose `dispose()` frees its tensors once. */
export function batchOf(fields: Omit<Batch, 'dispose'>): Batch {
  let disposed = false;
  return {
    ...fields,
    dispose() {
      if (disposed) return;
      disposed = true;
      fields.imgs.dispose();
      fields.gtSegMaps?.dispose();
    },
  };
}
