/**
 * mmseg `EncoderDecoder`: backbone → decode head (+ auxiliary head in training), keys `backbone.*`,
 * `decode_head.*`, `auxiliary_head.*`.
 *
 * Training: `loss(batch)` → `{'decode.loss_ce', 'decode.acc', 'aux.loss_ce', 'aux.acc'}`;
 * the logits of each head are resized bilinearly (align_corners=False) to the label size before the
 * loss; `aux.loss_ce` already carries the auxiliary loss weight. A trainer sums the keys containing
 * 'loss' (see `sumLosses` in model.ts).
 *
 * Inference: `predict(batch)` with the model's `test_cfg`, or `segment` / `inferenceLogits` /
 * `slideLogits` with explicit options — async thin wrappers over `seg_inference.ts` (whole/slide,
 * TTA, crop/flip/resize back to the original size) with {@link EncoderDecoder.encodeDecode} as the
 * forward.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone } from '../backbone/backbone.ts';
import type { Batch, ImgMeta } from '../datasets/collate.ts';
import type { Prediction } from '../structures/prediction.ts';
import type { Model, ModelPredictOptions, Task } from './model.ts';
import { Module } from '../nn/module.ts';
import { resizeBilinear } from '../ops/resize.ts';
import {
  DEFAULT_TTA_SCALES, inferenceLogits, predictSegmentation, segmentLabels, slideLogits,
  type PredictOptions, type SegTestCfg,
} from './seg_inference.ts';
import type { FCNHead } from '../heads/seg/fcn_head.ts';
import type { BaseDecodeHead } from '../heads/seg/decode_head.ts';

export { DEFAULT_TTA_SCALES, type PredictOptions, type SegTestCfg } from './seg_inference.ts';

export interface EncoderDecoderOptions {
  backbone: Backbone;
  decodeHead: BaseDecodeHead;
  auxiliaryHead?: FCNHead;
  alignCorners?: boolean;
  /** What `predict(batch)` does (default whole-image inference, TTA flip + MMSeg's scales). */
  testCfg?: SegTestCfg;
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

  /** mmseg `slide_inference` on `[N, H, W, 3]` → logits `[N, H, W, K]` (see `slideLogits` in seg_inference.ts). */
  slideLogits(imgs: tf.Tensor4D, cropSize: [number, number], stride: [number, number]): Promise<tf.Tensor4D> {
    return slideLogits((x) => this.encodeDecode(x), imgs, this.numClasses, cropSize, stride);
  }

  /**
   * Per-image `[oriH, oriW, K]` logits (one view) or averaged softmax probabilities (several views)
   * for `imgs` `[N, H, W, 3]` (see `inferenceLogits` in seg_inference.ts). The caller disposes the returned tensors.
   */
  inferenceLogits(imgs: tf.Tensor4D, metas: ImgMeta[], opts: PredictOptions = {}): Promise<tf.Tensor3D[]> {
    return inferenceLogits((x) => this.encodeDecode(x), imgs, metas, this.numClasses, opts);
  }

  /** {@link Model.predict}: label maps at the original image size, inference as `testCfg` says. */
  predict(batch: Batch, opts: ModelPredictOptions = {}): Promise<Prediction[]> {
    return predictSegmentation((x) => this.encodeDecode(x), batch.imgs, batch.metas, this.numClasses, this.testCfg, opts);
  }

  /** Per-image label maps (`Int32Array`, row-major at `oriShape`) for `imgs` `[N, H, W, 3]`. */
  segment(imgs: tf.Tensor4D, metas: ImgMeta[], opts: PredictOptions = {}): Promise<Int32Array[]> {
    return segmentLabels((x) => this.encodeDecode(x), imgs, metas, this.numClasses, opts);
  }
}
