/**
 * MMDetection 2.x `Shared2FCBBoxHead`: RoI features `[R, s, s, C]` flattened in PyTorch's `(C, s, s)`
 * order (so `shared_fcs.0.weight` loads from MMDetection unchanged) → fc (ReLU) → fc (ReLU) →
 * `fc_cls` (`K + 1` logits, the last one background) and `fc_reg` (`4K` class-specific deltas, or
 * 4 with `regClassAgnostic`). Keys `shared_fcs.{0,1}.*`, `fc_cls.*`, `fc_reg.*`.
 *
 * Losses (`BBoxHead.loss`): softmax CE over all sampled RoIs (mean), `acc` in percent, L1 on the
 * deltas of the positives' own class, summed and divided by the number of sampled RoIs.
 */
import * as tf from '@tensorflow/tfjs';
import { normalInit, xavierUniform } from '../../nn/init.ts';
import { Linear } from '../../nn/linear.ts';
import { ModuleList } from '../../nn/container.ts';
import { Module } from '../../nn/module.ts';
import type { DeltaXYWHBBoxCoder } from '../../ops/delta_coder.ts';
import { accuracy, boxLoss, softmaxCE, type BoxLossSpec } from '../../ops/det_losses.ts';
import { reluSavingOutput } from '../../nn/frugal.ts';

export interface BBoxHeadOptions {
  inChannels: number;
  roiFeatSize: number;
  fcOutChannels: number;
  numClasses: number;
  bboxCoder: DeltaXYWHBBoxCoder;
  regClassAgnostic?: boolean;
  lossClsWeight?: number;
  lossBboxWeight?: number;
  /** Box regression loss (default L1). */
  lossBbox?: BoxLossSpec;
}

/** Box head outputs: `[R, K + 1]` class logits and `[R, 4K]` (or `[R, 4]`) deltas. */
export interface BBoxHeadOutputs {
  cls: tf.Tensor2D;
  reg: tf.Tensor2D;
}

/** Targets of the sampled RoIs of a batch, positives first per image (MMDet `get_targets`). */
export interface BBoxTargets {
  /** `[R]` labels, `K` for background. */
  labels: Int32Array;
  /** `[R * D]` encoded deltas at the positives' class slot (`D` = width of `reg`). */
  deltas: Float32Array;
  /** `[R * D]` 1 where `deltas` holds a target. */
  weights: Float32Array;
}

export class Shared2FCBBoxHead extends Module {
  readonly sharedFcs: ModuleList<Linear>;
  readonly fcCls: Linear;
  readonly fcReg: Linear;
  readonly numClasses: number;
  readonly roiFeatSize: number;
  readonly inChannels: number;
  readonly bboxCoder: DeltaXYWHBBoxCoder;
  readonly regClassAgnostic: boolean;
  readonly lossClsWeight: number;
  readonly lossBboxWeight: number;
  readonly lossBbox: BoxLossSpec;

  constructor(opts: BBoxHeadOptions) {
    super();
    const { inChannels: c, roiFeatSize: s, fcOutChannels: f, numClasses: k } = opts;
    this.inChannels = c;
    this.roiFeatSize = s;
    this.numClasses = k;
    this.bboxCoder = opts.bboxCoder;
    this.regClassAgnostic = opts.regClassAgnostic ?? false;
    this.sharedFcs = this.addModule('shared_fcs', new ModuleList([new Linear(c * s * s, f), new Linear(f, f)]));
    this.fcCls = this.addModule('fc_cls', new Linear(f, k + 1));
    this.fcReg = this.addModule('fc_reg', new Linear(f, this.regClassAgnostic ? 4 : 4 * k));
    this.sharedFcs.items.forEach((fc) => xavierUniform(fc));
    normalInit(this.fcCls, 0.01);
    normalInit(this.fcReg, 0.001);
    this.lossClsWeight = opts.lossClsWeight ?? 1;
    this.lossBboxWeight = opts.lossBboxWeight ?? 1;
    this.lossBbox = opts.lossBbox ?? { type: 'L1Loss' };
  }

  /** Width of `reg` per RoI. */
  get regDim(): number {
    return this.regClassAgnostic ? 4 : 4 * this.numClasses;
  }

  /** `[R, s, s, C]` RoI features → class logits and deltas. */
  forward(x: tf.Tensor4D): BBoxHeadOutputs {
    return tf.tidy(() => {
      const r = x.shape[0];
      let h: tf.Tensor2D = tf.transpose(x, [0, 3, 1, 2]).reshape([r, this.inChannels * this.roiFeatSize * this.roiFeatSize]);
      for (const fc of this.sharedFcs.items) h = reluSavingOutput(fc.forward(h));
      return { cls: this.fcCls.forward(h), reg: this.fcReg.forward(h) };
    });
  }

  /**
   * Targets of sampled RoIs: `pos` boxes with their GT boxes and labels, then `numNeg` negatives.
   * @param pos `[P * 4]` positive RoIs; `posGt` `[P * 4]` their GT boxes; `posLabels` `[P]`.
   */
  targets(pos: Float32Array, posGt: Float32Array, posLabels: Int32Array, numNeg: number): BBoxTargets {
    const p = posLabels.length;
    const r = p + numNeg;
    const d = this.regDim;
    const labels = new Int32Array(r).fill(this.numClasses);
    const deltas = new Float32Array(r * d);
    const weights = new Float32Array(r * d);
    const enc = p ? this.bboxCoder.encode(pos, posGt) : new Float32Array(0);
    for (let i = 0; i < p; i++) {
      labels[i] = posLabels[i];
      const at = i * d + (this.regClassAgnostic ? 0 : 4 * posLabels[i]);
      deltas.set(enc.subarray(i * 4, i * 4 + 4), at);
      weights.fill(1, at, at + 4);
    }
    return { labels, deltas, weights };
  }

  /** `loss_cls`, `loss_bbox` (with their weights) and `acc` of a batch's sampled RoIs. */
  loss(out: BBoxHeadOutputs, t: BBoxTargets): { loss_cls: tf.Scalar; loss_bbox: tf.Scalar; acc: tf.Scalar } {
    return tf.tidy(() => {
      const r = t.labels.length;
      const labels = tf.tensor1d(t.labels, 'int32');
      const lossCls = tf.mul(softmaxCE(out.cls, labels), this.lossClsWeight) as tf.Scalar;
      const shape: [number, number] = [r, this.regDim];
      const lossBbox = tf.mul(boxLoss(this.lossBbox, out.reg, tf.tensor2d(t.deltas, shape), tf.tensor2d(t.weights, shape), Math.max(r, 1)), this.lossBboxWeight) as tf.Scalar;
      return { loss_cls: lossCls, loss_bbox: lossBbox, acc: accuracy(out.cls, labels) };
    });
  }
}
