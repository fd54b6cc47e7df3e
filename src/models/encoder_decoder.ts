/**
 * mmseg `EncoderDecoder`: backbone → decode head (+ auxiliary head in training), keys `backbone.*`,
 * `decode_head.*`, `auxiliary_head.*`.
 *
 * Training: `loss(batch)` → `{'decode.loss_ce', 'decode.acc', 'aux.loss_ce', 'aux.acc'}`;
 * the logits of each head are resized bilinearly (align_corners=False) to the label size before the
 * loss; `aux.loss_ce` already carries the auxiliary loss weight. A trainer sums the keys containing
 * 'loss' (see `sumLosses` in model.ts).
 *
 * Inference (`predict(batch)` with the model's `test_cfg`, or `segment` / `inferenceLogits` with
 * explicit options):
 *  - `whole`: logits of the whole (padded) batch resized to the input size;
 *  - `slide`: mmseg `slide_inference` — crops of `cropSize` every `stride`, the last row/column of
 *    crops shifted back to end at the border, each crop's logits resized to the crop size, summed
 *    and divided by the per-pixel crop count;
 *  - then per image: crop `imgShape` out of the padded result, undo a pipeline flip (`meta.flip`),
 *    resize to `oriShape`, argmax.
 *  - TTA: `scales` (ratios of the input size; default [1]) × `flip` (horizontal). With more than one
 *    view the softmax probabilities of the views are averaged (mmseg 1.x `SegTTAModel.merge_preds`);
 *    with a single view `inferenceLogits` returns raw logits.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone } from '../backbone/backbone.ts';
import type { Batch, ImgMeta } from '../datasets/collate.ts';
import type { Prediction } from '../structures/prediction.ts';
import type { Model, ModelPredictOptions, Task } from './model.ts';
import { Module } from '../nn/module.ts';
import { resizeBilinear } from '../ops/resize.ts';
import type { FCNHead } from '../heads/seg/fcn_head.ts';
import type { BaseDecodeHead } from '../heads/seg/decode_head.ts';

export interface EncoderDecoderOptions {
  backbone: Backbone;
  decodeHead: BaseDecodeHead;
  auxiliaryHead?: FCNHead;
  alignCorners?: boolean;
  /** What `predict(batch)` does (default whole-image inference, TTA flip + MMSeg's scales). */
  testCfg?: SegTestCfg;
}

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

export class EncoderDecoder extends Module implements Model {
  readonly task: Task = 'segmentation';
  readonly backbone: Backbone;
  readonly decodeHead: BaseDecodeHead;
  readonly auxiliaryHead?: FCNHead;
  testCfg: SegTestCfg;

  constructor(opts: EncoderDecoderOptions) {
    super();
    if (opts.alignCorners) throw new Error('EncoderDecoder: alignCorners=true is not supported');
    this.backbone = this.addModule('backbone', opts.backbone);
    this.decodeHead = this.addModule('decode_head', opts.decodeHead);
    if (opts.auxiliaryHead) this.auxiliaryHead = this.addModule('auxiliary_head', opts.auxiliaryHead);
    this.testCfg = opts.testCfg ?? { mode: 'whole', aug: { scales: DEFAULT_TTA_SCALES, flip: true } };
  }

  get numClasses(): number {
    return this.decodeHead.numClasses;
  }

  extractFeat(imgs: tf.Tensor4D): tf.Tensor4D[] {
    return this.backbone.forward(imgs);
  }

  /** Decode-head logits at stride 4 (no resize). */
  forwardLogits(imgs: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.decodeHead.forward(this.extractFeat(imgs)));
  }

  /** mmseg `encode_decode`: logits resized to the input's spatial size. */
  encodeDecode(imgs: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => resizeBilinear(this.forwardLogits(imgs), [imgs.shape[1], imgs.shape[2]]));
  }

  /** Losses of one batch (needs `batch.gtSegMaps`); call inside `tf.variableGrads` / a tidy. */
  loss(batch: Batch): Record<string, tf.Scalar> {
    const labels = batch.gtSegMaps;
    if (!labels) throw new Error('EncoderDecoder.loss: batch has no gtSegMaps');
    return tf.tidy(() => {
      const feats = this.extractFeat(batch.imgs);
      const out: Record<string, tf.Scalar> = {};
      const d = this.decodeHead.loss(this.decodeHead.forward(feats), labels);
      out['decode.loss_ce'] = d.loss_ce;
      out['decode.acc'] = d.acc;
      if (this.auxiliaryHead) {
        const a = this.auxiliaryHead.loss(this.auxiliaryHead.forward(feats), labels);
        out['aux.loss_ce'] = a.loss_ce;
        out['aux.acc'] = a.acc;
      }
      return out;
    });
  }

  /** mmseg `slide_inference` on `[N,H,W,3]` → logits `[N,H,W,K]`. */
  slideLogits(imgs: tf.Tensor4D, cropSize: [number, number], stride: [number, number]): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, hImg, wImg] = imgs.shape;
      const [hCrop, wCrop] = cropSize;
      const [hStride, wStride] = stride;
      if (hCrop <= 0 || wCrop <= 0 || hStride <= 0 || wStride <= 0) throw new Error('slide: crop size and stride must be positive');
      const hGrids = Math.floor(Math.max(hImg - hCrop + hStride - 1, 0) / hStride) + 1;
      const wGrids = Math.floor(Math.max(wImg - wCrop + wStride - 1, 0) / wStride) + 1;
      const k = this.numClasses;
      let preds: tf.Tensor4D = tf.zeros([n, hImg, wImg, k]);
      const count = new Float32Array(hImg * wImg);
      for (let hi = 0; hi < hGrids; hi++) {
        for (let wi = 0; wi < wGrids; wi++) {
          let y1 = hi * hStride;
          let x1 = wi * wStride;
          const y2 = Math.min(y1 + hCrop, hImg);
          const x2 = Math.min(x1 + wCrop, wImg);
          y1 = Math.max(y2 - hCrop, 0);
          x1 = Math.max(x2 - wCrop, 0);
          const crop = tf.slice(imgs, [0, y1, x1, 0], [n, y2 - y1, x2 - x1, 3]);
          const logit = this.encodeDecode(crop);
          const padded = tf.pad(logit, [[0, 0], [y1, hImg - y2], [x1, wImg - x2], [0, 0]]);
          const next = tf.add(preds, padded) as tf.Tensor4D;
          tf.dispose([preds, crop, logit, padded]);
          preds = next;
          for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) count[y * wImg + x] += 1;
        }
      }
      return tf.div(preds, tf.tensor4d(count, [1, hImg, wImg, 1])) as tf.Tensor4D;
    });
  }

  /**
   * Per-image `[oriH, oriW, K]` logits (one view) or averaged softmax probabilities (several views).
   * The caller disposes the returned tensors.
   */
  inferenceLogits(imgs: tf.Tensor4D, metas: ImgMeta[], opts: PredictOptions = {}): tf.Tensor3D[] {
    const mode = opts.mode ?? 'whole';
    const scales = opts.scales ?? [1];
    const flips = opts.flip ? [false, true] : [false];
    const views = scales.length * flips.length;
    const [n, H, W] = imgs.shape;
    if (metas.length !== n) throw new Error(`inferenceLogits: ${metas.length} metas for ${n} images`);
    return tf.tidy(() => {
      const acc: (tf.Tensor3D | undefined)[] = metas.map(() => undefined);
      for (const s of scales) {
        const hs = Math.round(H * s);
        const ws = Math.round(W * s);
        for (const fl of flips) {
          tf.tidy(() => {
            let x = s === 1 ? imgs : resizeBilinear(imgs, [hs, ws]);
            if (fl) x = tf.reverse(x, 2);
            let logits: tf.Tensor4D;
            if (mode === 'slide') {
              if (!opts.cropSize || !opts.stride) throw new Error("inferenceLogits: mode 'slide' needs cropSize and stride");
              logits = this.slideLogits(x, opts.cropSize, opts.stride);
            } else {
              logits = this.encodeDecode(x);
            }
            if (fl) logits = tf.reverse(logits, 2);
            metas.forEach((m, i) => {
              const vh = Math.min(Math.round(m.imgShape[0] * s), hs);
              const vw = Math.min(Math.round(m.imgShape[1] * s), ws);
              let one = tf.slice(logits, [i, 0, 0, 0], [1, vh, vw, this.numClasses]) as tf.Tensor4D;
              if (m.flip) one = tf.reverse(one, m.flipDirection === 'vertical' ? 1 : 2);
              one = resizeBilinear(one, m.oriShape);
              let v = one.squeeze([0]) as tf.Tensor3D;
              if (views > 1) v = tf.softmax(v, -1);
              const prev = acc[i];
              acc[i] = tf.keep(prev ? (tf.add(prev, v) as tf.Tensor3D) : v);
              if (prev) prev.dispose();
            });
          });
        }
      }
      if (views === 1) return acc as tf.Tensor3D[];
      const out = acc.map((a) => tf.div(a!, views) as tf.Tensor3D);
      tf.dispose(acc as tf.Tensor3D[]);
      return out;
    });
  }

  /** {@link Model.predict}: label maps at the original image size, inference as `testCfg` says. */
  predict(batch: Batch, opts: ModelPredictOptions = {}): Prediction[] {
    const t = this.testCfg;
    const maps = this.segment(batch.imgs, batch.metas, {
      mode: t.mode, cropSize: t.cropSize, stride: t.stride,
      ...(opts.augTest ? { flip: t.aug.flip, scales: t.aug.scales } : {}),
    });
    return maps.map((data, i) => ({ semSeg: { data, height: batch.metas[i].oriShape[0], width: batch.metas[i].oriShape[1] } }));
  }

  /** Per-image label maps (`Int32Array`, row-major at `oriShape`). */
  segment(imgs: tf.Tensor4D, metas: ImgMeta[], opts: PredictOptions = {}): Int32Array[] {
    const logits = this.inferenceLogits(imgs, metas, opts);
    try {
      return logits.map((l) => {
        const t = tf.argMax(l, -1);
        const d = Int32Array.from(t.dataSync());
        t.dispose();
        return d;
      });
    } finally {
      tf.dispose(logits);
    }
  }
}
