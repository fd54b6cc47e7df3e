/**
 * MMDetection 2.x `FCNMaskHead`: `numConvs` 3x3 conv + ReLU (`convs.{i}.conv.*`), a 2x2 stride-2
 * deconv + ReLU (`upsample.*`), a 1x1 conv to one logit map per class (`conv_logits.*`). RoI features
 * `[P, 14, 14, C]` → `[P, 28, 28, K]`.
 *
 * Loss (`mask_cross_entropy`): the map of each RoI's own class against its 28x28 binary target,
 * sigmoid BCE averaged over all pixels of all positives. The class map is picked with a one-hot
 * product (no gather: the wasm backend has no gradient for it).
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../../nn/conv2d.ts';
import { ConvModule } from '../../nn/conv_module.ts';
import { ConvTranspose2d } from '../../nn/conv_transpose.ts';
import { kaimingFanOut } from '../../nn/init.ts';
import { ModuleList } from '../../nn/container.ts';
import { Module } from '../../nn/module.ts';
import { maskBCE } from '../../ops/det_losses.ts';
import { reluSavingOutput } from '../../nn/frugal.ts';

export interface FCNMaskHeadOptions {
  inChannels: number;
  convOutChannels: number;
  numConvs: number;
  numClasses: number;
  lossWeight?: number;
}

export class FCNMaskHead extends Module {
  readonly convs: ModuleList<ConvModule>;
  readonly upsample: ConvTranspose2d;
  readonly convLogits: Conv2d;
  readonly numClasses: number;
  readonly lossWeight: number;

  constructor(opts: FCNMaskHeadOptions) {
    super();
    const c = opts.convOutChannels;
    const list: ConvModule[] = [];
    for (let i = 0; i < opts.numConvs; i++) list.push(new ConvModule(i === 0 ? opts.inChannels : c, c, 3, { padding: 1, norm: 'none' }));
    this.convs = this.addModule('convs', new ModuleList(list));
    const upIn = opts.numConvs > 0 ? c : opts.inChannels;
    this.upsample = this.addModule('upsample', new ConvTranspose2d(upIn, c, 2));
    this.convLogits = this.addModule('conv_logits', new Conv2d(c, opts.numClasses, 1));
    kaimingFanOut(this.convLogits);
    this.numClasses = opts.numClasses;
    this.lossWeight = opts.lossWeight ?? 1;
  }

  /** `[P, s, s, C]` → `[P, 2s, 2s, K]` logits. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      for (const m of this.convs.items) h = m.forward(h);
      return this.convLogits.forward(reluSavingOutput(this.upsample.forward(h)));
    });
  }

  /** `[P, m, m]` logits of each RoI's class `labels[p]` from `[P, m, m, K]`. */
  static pickClass(logits: tf.Tensor4D, labels: Int32Array): tf.Tensor3D {
    return tf.tidy(() => {
      const k = logits.shape[3];
      const onehot = tf.oneHot(tf.tensor1d(labels, 'int32'), k).reshape([labels.length, 1, 1, k]);
      return tf.sum(tf.mul(logits, onehot), -1) as tf.Tensor3D;
    });
  }

  /**
   * `loss_mask` (with its weight): `targets` `[P * m * m]` 0/1 for the logits of `labels`; the mean
   * over the pixels of `numMasks` masks when given (a distributed batch's share, see ops/batch_counts.ts), else of the P.
   */
  loss(logits: tf.Tensor4D, labels: Int32Array, targets: Float32Array, numMasks?: number): tf.Scalar {
    return tf.tidy(() => {
      const [p, m] = logits.shape;
      const picked = FCNMaskHead.pickClass(logits, labels);
      return tf.mul(maskBCE(picked, tf.tensor3d(targets, [p, m, m]), numMasks), this.lossWeight) as tf.Scalar;
    });
  }

  /** `[P * m * m]` probabilities of each RoI's class (test time). */
  probabilities(logits: tf.Tensor4D, labels: Int32Array): Float32Array {
    const t = tf.tidy(() => tf.sigmoid(FCNMaskHead.pickClass(logits, labels)));
    const v = t.dataSync() as Float32Array;
    t.dispose();
    return v;
  }
}
