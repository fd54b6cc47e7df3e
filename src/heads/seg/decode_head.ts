/**
 * mmseg `BaseDecodeHead` essentials: `conv_seg` (1x1 conv with bias, init N(0, 0.01²)), channel
 * dropout (`nn.Dropout2d`, train mode only, masks from the seeded `globalRng`), the loss
 * (`loss_ce` = cross entropy after bilinear resize of the logits to the label size) and `acc`.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../../nn/conv2d.ts';
import type { NormOptions } from '../../nn/conv_module.ts';
import { normalInit } from '../../nn/init.ts';
import { Module } from '../../nn/module.ts';
import { globalRng } from '../../nn/random.ts';
import { accuracy, crossEntropy } from '../../ops/losses.ts';
import { ohemPixelWeights, type OhemOptions } from '../../ops/pixel_sampler.ts';
import { resizeBilinear } from '../../ops/resize.ts';

/** Head options; `norm`/`gnGroups` apply to every ConvModule of the head (GN groups must divide `channels`). */
export interface DecodeHeadOptions extends NormOptions {
  numClasses: number;
  channels?: number;
  dropoutRatio?: number;
  alignCorners?: boolean;
  ignoreIndex?: number;
  lossWeight?: number;
  /** mmseg CrossEntropyLoss avg_non_ignore (default false, as mmseg 1.x). */
  avgNonIgnore?: boolean;
  classWeights?: number[];
  /** mmseg `sampler: {type: OHEMPixelSampler, thresh, min_kept}`: hard pixels only in the loss. */
  sampler?: OhemOptions;
}

/** `nn.Dropout2d(p)`: zeroes whole channels per sample, scales kept ones by 1/(1-p). */
export function dropout2d(x: tf.Tensor4D, p: number, training: boolean): tf.Tensor4D {
  if (!training || p <= 0) return x;
  const [n, , , c] = x.shape;
  const keep = 1 - p;
  const mask = new Float32Array(n * c);
  for (let i = 0; i < mask.length; i++) mask[i] = globalRng.uniform() < keep ? 1 / keep : 0;
  return tf.tidy(() => tf.mul(x, tf.tensor4d(mask, [n, 1, 1, c])));
}

export abstract class BaseDecodeHead extends Module {
  readonly numClasses: number;
  readonly channels: number;
  readonly dropoutRatio: number;
  readonly ignoreIndex: number;
  readonly lossWeight: number;
  readonly avgNonIgnore: boolean;
  readonly classWeights?: number[];
  readonly sampler?: OhemOptions;
  /** Norm of every ConvModule of the head. */
  protected readonly normCfg: NormOptions;
  /** Created by subclasses after their own modules so the key order follows mmseg's. */
  convSeg!: Conv2d;

  constructor(opts: DecodeHeadOptions) {
    super();
    if (opts.alignCorners) throw new Error('decode head: alignCorners=true is not supported');
    this.numClasses = opts.numClasses;
    this.channels = opts.channels ?? 512;
    this.dropoutRatio = opts.dropoutRatio ?? 0.1;
    this.ignoreIndex = opts.ignoreIndex ?? 255;
    this.lossWeight = opts.lossWeight ?? 1;
    this.avgNonIgnore = opts.avgNonIgnore ?? false;
    this.classWeights = opts.classWeights;
    this.sampler = opts.sampler;
    this.normCfg = { norm: opts.norm, gnGroups: opts.gnGroups };
  }

  protected buildConvSeg(): void {
    this.convSeg = this.addModule('conv_seg', new Conv2d(this.channels, this.numClasses, 1));
    normalInit(this.convSeg, 0.01);
  }

  /** Dropout (train) + conv_seg. */
  protected clsSeg(feat: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.convSeg.forward(dropout2d(feat, this.dropoutRatio, this.training)));
  }

  /** Multi-level NHWC features → logits `[N, h, w, numClasses]`. */
  abstract forward(inputs: tf.Tensor4D[]): tf.Tensor4D;

  /** `loss_ce` (× lossWeight) and `acc` (percent) of logits resized to the label size. */
  loss(logits: tf.Tensor4D, labels: tf.Tensor3D): { loss_ce: tf.Scalar; acc: tf.Scalar } {
    return tf.tidy(() => {
      const [, h, w] = labels.shape;
      const up = resizeBilinear(logits, [h, w]);
      const pixelWeights = this.sampler ? ohemPixelWeights(up, labels, { ...this.sampler, ignoreIndex: this.ignoreIndex }) : undefined;
      const lossCe = crossEntropy(up, labels, {
        ignoreIndex: this.ignoreIndex, avgNonIgnore: this.avgNonIgnore, classWeights: this.classWeights, lossWeight: this.lossWeight, pixelWeights,
      });
      const acc = accuracy(up, labels, this.ignoreIndex);
      return { loss_ce: lossCe, acc };
    });
  }
}
