/**
 * Semantic-segmentation inference around any forward function (mmseg `BaseSegmentor.inference` +
 * `SegTTAModel`), written once for the tfjs {@link EncoderDecoder} and for engines whose forward is
 * asynchronous (an onnxruntime session):
 *  - `whole`: logits of the whole (padded) batch at the input size;
 *  - `slide`: mmseg `slide_inference` — crops of `cropSize` every `stride`, the last row/column of
 *    crops shifted back to end at the border, each crop's logits (at the crop size) summed and
 *    divided by the per-pixel crop count;
 *  - then per image: crop `imgShape` out of the padded result, undo a pipeline flip (`meta.flip`),
 *    resize to `oriShape`;
 *  - TTA: `scales` (ratios of the input size; default [1]) × `flip` (horizontal). With more than one
 *    view the softmax probabilities of the views are averaged (mmseg 1.x `SegTTAModel.merge_preds`);
 *    with a single view {@link inferenceLogits} returns raw logits.
 *
 * Everything here is async and disposes explicitly (no `tf.tidy` spans an `await`); no tensor
 * escapes except the documented results.
 */
import * as tf from '@tensorflow/tfjs';
import type { ImgMeta } from '../datasets/collate.ts';
import { resizeBilinear } from '../ops/resize.ts';
import type { Prediction } from '../structures/prediction.ts';
import type { ModelPredictOptions } from './model.ts';

/**
 * A segmentor's forward (mmseg `encode_decode`): images `[N, h, w, C]` (normalised NHWC) → logits
 * `[N, h, w, K]` at the input's size. The inference code owns and disposes what it returns (it may
 * not return its input).
 */
export type EncodeDecodeFn = (imgs: tf.Tensor4D) => tf.Tensor4D | Promise<tf.Tensor4D>;

/** mmseg `test_cfg` of a segmentor: whole/slide inference and the test-time augmentation views. */
export interface SegTestCfg {
  mode: 'whole' | 'slide';
  cropSize?: [number, number];
  stride?: [number, number];
  /** Views used when `predict` is asked for test-time augmentation. */
  aug: { scales: number[]; flip: boolean };
}

/** MMSeg's TTA scales (`img_ratios`). */
export const DEFAULT_TTA_SCALES = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75];

export interface PredictOptions {
  mode?: 'whole' | 'slide';
  /** `[h, w]` crop for slide mode. */
  cropSize?: [number, number];
  /** `[h, w]` stride for slide mode. */
  stride?: [number, number];
  /** Also run the horizontally flipped input and average. */
  flip?: boolean;
  /** Input scale ratios for multi-scale testing (default [1]). */
  scales?: number[];
}

/** The {@link PredictOptions} that `predict(batch, opts)` uses under `testCfg` (TTA views only with `augTest`). */
export function testCfgOptions(testCfg: SegTestCfg, opts: ModelPredictOptions = {}): PredictOptions {
  return {
    mode: testCfg.mode, cropSize: testCfg.cropSize, stride: testCfg.stride,
    ...(opts.augTest ? { flip: testCfg.aug.flip, scales: testCfg.aug.scales } : {}),
  };
}

/** Calls `encodeDecode` and checks its logits are `[n, h, w, numClasses]` for `imgs` `[n, h, w, C]`. */
async function forwardChecked(encodeDecode: EncodeDecodeFn, imgs: tf.Tensor4D, numClasses: number): Promise<tf.Tensor4D> {
  const logits = await encodeDecode(imgs);
  const [n, h, w] = imgs.shape;
  const s = logits.shape;
  if (s.length !== 4 || s[0] !== n || s[1] !== h || s[2] !== w || s[3] !== numClasses) {
    logits.dispose();
    throw new Error(`encodeDecode: expected logits [${n}, ${h}, ${w}, ${numClasses}] for images [${imgs.shape}], got [${s}]`);
  }
  return logits;
}

/**
 * mmseg `slide_inference`.
 * @param imgs `[N, H, W, C]` (already padded/scaled).
 * @param cropSize `[h, w]` crop; @param stride `[h, w]` step between crops.
 * @returns logits `[N, H, W, numClasses]` (the caller disposes them).
 */
export async function slideLogits(
  encodeDecode: EncodeDecodeFn, imgs: tf.Tensor4D, numClasses: number, cropSize: [number, number], stride: [number, number],
): Promise<tf.Tensor4D> {
  const [n, hImg, wImg, c] = imgs.shape;
  const [hCrop, wCrop] = cropSize;
  const [hStride, wStride] = stride;
  if (hCrop <= 0 || wCrop <= 0 || hStride <= 0 || wStride <= 0) throw new Error('slide: crop size and stride must be positive');
  const hGrids = Math.floor(Math.max(hImg - hCrop + hStride - 1, 0) / hStride) + 1;
  const wGrids = Math.floor(Math.max(wImg - wCrop + wStride - 1, 0) / wStride) + 1;
  let preds: tf.Tensor4D = tf.zeros([n, hImg, wImg, numClasses]);
  const count = new Float32Array(hImg * wImg);
  try {
    for (let hi = 0; hi < hGrids; hi++) {
      for (let wi = 0; wi < wGrids; wi++) {
        let y1 = hi * hStride;
        let x1 = wi * wStride;
        const y2 = Math.min(y1 + hCrop, hImg);
        const x2 = Math.min(x1 + wCrop, wImg);
        y1 = Math.max(y2 - hCrop, 0);
        x1 = Math.max(x2 - wCrop, 0);
        const crop = tf.slice(imgs, [0, y1, x1, 0], [n, y2 - y1, x2 - x1, c]);
        let logit: tf.Tensor4D;
        try {
          logit = await forwardChecked(encodeDecode, crop, numClasses);
        } finally {
          crop.dispose();
        }
        const prev = preds;
        preds = tf.tidy(() => tf.add(prev, tf.pad(logit, [[0, 0], [y1, hImg - y2], [x1, wImg - x2], [0, 0]])) as tf.Tensor4D);
        tf.dispose([prev, logit]);
        for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) count[y * wImg + x] += 1;
      }
    }
    return tf.tidy(() => tf.div(preds, tf.tensor4d(count, [1, hImg, wImg, 1])) as tf.Tensor4D);
  } finally {
    preds.dispose();
  }
}

/**
 * Per-image logits (one view) or averaged softmax probabilities (several views).
 * @param imgs `[N, H, W, C]`, the batch as collated (padded); @param metas one per image.
 * @returns `[oriH, oriW, numClasses]` per image (the caller disposes them).
 */
export async function inferenceLogits(
  encodeDecode: EncodeDecodeFn, imgs: tf.Tensor4D, metas: ImgMeta[], numClasses: number, opts: PredictOptions = {},
): Promise<tf.Tensor3D[]> {
  const mode = opts.mode ?? 'whole';
  const scales = opts.scales ?? [1];
  const flips = opts.flip ? [false, true] : [false];
  const views = scales.length * flips.length;
  const [n, H, W] = imgs.shape;
  if (metas.length !== n) throw new Error(`inferenceLogits: ${metas.length} metas for ${n} images`);
  const { cropSize, stride } = opts;
  if (mode === 'slide' && (!cropSize || !stride)) throw new Error("inferenceLogits: mode 'slide' needs cropSize and stride");
  const acc: (tf.Tensor3D | undefined)[] = metas.map(() => undefined);
  try {
    for (const s of scales) {
      const hs = Math.round(H * s);
      const ws = Math.round(W * s);
      for (const fl of flips) {
        const x = tf.tidy(() => {
          const r = s === 1 ? imgs : resizeBilinear(imgs, [hs, ws]);
          return fl ? (tf.reverse(r, 2) as tf.Tensor4D) : r;
        });
        let logits: tf.Tensor4D;
        try {
          logits = mode === 'slide'
            ? await slideLogits(encodeDecode, x, numClasses, cropSize!, stride!)
            : await forwardChecked(encodeDecode, x, numClasses);
        } finally {
          if (x !== imgs) x.dispose();
        }
        try {
          tf.tidy(() => {
            const l = fl ? (tf.reverse(logits, 2) as tf.Tensor4D) : logits;
            metas.forEach((m, i) => {
              const vh = Math.min(Math.round(m.imgShape[0] * s), hs);
              const vw = Math.min(Math.round(m.imgShape[1] * s), ws);
              let one = tf.slice(l, [i, 0, 0, 0], [1, vh, vw, numClasses]) as tf.Tensor4D;
              if (m.flip) one = tf.reverse(one, m.flipDirection === 'vertical' ? 1 : 2);
              one = resizeBilinear(one, m.oriShape);
              let v = one.squeeze([0]) as tf.Tensor3D;
              if (views > 1) v = tf.softmax(v, -1);
              const prev = acc[i];
              acc[i] = tf.keep(prev ? (tf.add(prev, v) as tf.Tensor3D) : v);
              if (prev) prev.dispose();
            });
          });
        } finally {
          logits.dispose();
        }
      }
    }
  } catch (e) {
    tf.dispose(acc.filter((a): a is tf.Tensor3D => a !== undefined));
    throw e;
  }
  const sums = acc as tf.Tensor3D[];
  if (views === 1) return sums;
  const out = sums.map((a) => tf.div(a, views) as tf.Tensor3D);
  tf.dispose(sums);
  return out;
}

/**
 * Per-image label maps: argmax of {@link inferenceLogits}.
 * @returns `Int32Array` of `oriH * oriW` labels (row-major) per image; no tensor escapes.
 */
export async function segmentLabels(
  encodeDecode: EncodeDecodeFn, imgs: tf.Tensor4D, metas: ImgMeta[], numClasses: number, opts: PredictOptions = {},
): Promise<Int32Array[]> {
  const logits = await inferenceLogits(encodeDecode, imgs, metas, numClasses, opts);
  try {
    const out: Int32Array[] = [];
    for (const l of logits) {
      const t = tf.argMax(l, -1);
      try {
        out.push(Int32Array.from(await t.data()));
      } finally {
        t.dispose();
      }
    }
    return out;
  } finally {
    tf.dispose(logits);
  }
}

/** One `semSeg` {@link Prediction} per image from its label map at `metas[i].oriShape`. */
export function labelsToPredictions(labels: Int32Array[], metas: ImgMeta[]): Prediction[] {
  if (labels.length !== metas.length) throw new Error(`labelsToPredictions: ${labels.length} label maps for ${metas.length} metas`);
  return labels.map((data, i) => {
    const [height, width] = metas[i].oriShape;
    if (data.length !== height * width) throw new Error(`labelsToPredictions: image ${i} has ${data.length} labels for oriShape [${height}, ${width}]`);
    return { semSeg: { data, height, width } };
  });
}

/**
 * A segmentor's `predict` ({@link Model.predict}) for `imgs` `[N, H, W, C]` and their `metas`:
 * inference as `testCfg` says (its TTA views when `opts.augTest`), label maps at the original size.
 */
export async function predictSegmentation(
  encodeDecode: EncodeDecodeFn, imgs: tf.Tensor4D, metas: ImgMeta[], numClasses: number, testCfg: SegTestCfg, opts: ModelPredictOptions = {},
): Promise<Prediction[]> {
  return labelsToPredictions(await segmentLabels(encodeDecode, imgs, metas, numClasses, testCfgOptions(testCfg, opts)), metas);
}
