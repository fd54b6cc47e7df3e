/**
 * MMDetection 2.x `ConvFCBBoxHead` (shared part only, as its `Shared2FCBBoxHead` and
 * `Shared4Conv1FCBBoxHead`): RoI features `[R, s, s, C]` → `numSharedConvs` 3x3 ConvModules (conv,
 * BN/GN or none, ReLU) → flattened in PyTorch's `(C, s, s)` order (so `shared_fcs.0.weight` loads
 * from MMDetection unchanged) → `numSharedFcs` fcs (ReLU) → `fc_cls` (`K + 1` logits, the last one
 * background) and `fc_reg` (`4K` class-specific deltas, or 4 with `regClassAgnostic`). Keys
 * `shared_convs.{i}.conv.weight`, `shared_convs.{i}.{bn,gn}.*`, `shared_fcs.{i}.*`, `fc_cls.*`, `fc_reg.*`.
 *
 * Losses (`BBoxHead.loss`): softmax CE over all sampled RoIs (mean), `acc` in percent, the box loss
 * on the positives' own-class deltas (or, with `regDecodedBbox`, on those deltas decoded to boxes
 * against the GT boxes: GIoU), summed and divided by the number of sampled RoIs.
 */
import * as tf from '@tensorflow/tfjs';
import { normalInit, xavierUniform } from '../../nn/init.ts';
import { Linear } from '../../nn/linear.ts';
import { ModuleList } from '../../nn/container.ts';
import { Module } from '../../nn/module.ts';
import type { DeltaXYWHBBoxCoder } from '../../ops/delta_coder.ts';
import { accuracy, boxLoss, softmaxCE, type BoxLossSpec } from '../../ops/det_losses.ts';
import { reluSavingOutput } from '../../nn/frugal.ts';
import { pickBoxes } from '../../ops/arrays.ts';
import { ConvModule, type NormOptions } from '../../nn/conv_module.ts';

export interface BBoxHeadOptions extends NormOptions {
  inChannels: number;
  roiFeatSize: number;
  /** 3x3 convs before the fcs (default 0) with `convOutChannels` channels (default 256). */
  numSharedConvs?: number;
  convOutChannels?: number;
  /** fcs after them (default 2). */
  numSharedFcs?: number;
  fcOutChannels: number;
  numClasses: number;
  bboxCoder: DeltaXYWHBBoxCoder;
  regClassAgnostic?: boolean;
  lossClsWeight?: number;
  lossBboxWeight?: number;
  /** Box regression loss (default L1). */
  lossBbox?: BoxLossSpec;
  /** The box loss compares decoded boxes with the GT boxes instead of deltas (MMDet `reg_decoded_bbox`). */
  regDecodedBbox?: boolean;
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
  /** `[R * D]` encoded deltas at the positives' class slot (`D` = width of `reg`); with `regDecodedBbox`, GT boxes. */
  deltas: Float32Array;
  /** `[R * D]` 1 where `deltas` holds a target. */
  weights: Float32Array;
}

export class ConvFCBBoxHead extends Module {
  readonly sharedConvs: ModuleList<ConvModule>;
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
  readonly regDecodedBbox: boolean;
  /** Channels of the features the fcs flatten (the convs' output, else the input's). */
  private readonly flatChannels: number;

  constructor(opts: BBoxHeadOptions) {
    super();
    const { inChannels: c, roiFeatSize: s, fcOutChannels: f, numClasses: k } = opts;
    this.inChannels = c;
    this.roiFeatSize = s;
    this.numClasses = k;
    this.bboxCoder = opts.bboxCoder;
    this.regClassAgnostic = opts.regClassAgnostic ?? false;
    this.regDecodedBbox = opts.regDecodedBbox ?? false;
    const numConvs = opts.numSharedConvs ?? 0, numFcs = opts.numSharedFcs ?? 2, convC = opts.convOutChannels ?? 256;
    if (numFcs < 1) throw new Error('ConvFCBBoxHead: at least one shared fc');
    this.sharedConvs = this.addModule('shared_convs', new ModuleList(Array.from({ length: numConvs }, (_, i) =>
      new ConvModule(i === 0 ? c : convC, convC, 3, { padding: 1, norm: opts.norm ?? 'none', gnGroups: opts.gnGroups }))));
    this.flatChannels = numConvs > 0 ? convC : c;
    this.sharedFcs = this.addModule('shared_fcs', new ModuleList(Array.from({ length: numFcs }, (_, i) =>
      new Linear(i === 0 ? this.flatChannels * s * s : f, f))));
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
      let y = x;
      for (const conv of this.sharedConvs.items) y = conv.forward(y);
      let h: tf.Tensor2D = tf.transpose(y, [0, 3, 1, 2]).reshape([r, this.flatChannels * this.roiFeatSize * this.roiFeatSize]);
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
    const enc = !p ? new Float32Array(0) : this.regDecodedBbox ? posGt : this.bboxCoder.encode(pos, posGt);
    for (let i = 0; i < p; i++) {
      labels[i] = posLabels[i];
      const at = i * d + (this.regClassAgnostic ? 0 : 4 * posLabels[i]);
      deltas.set(enc.subarray(i * 4, i * 4 + 4), at);
      weights.fill(1, at, at + 4);
    }
    return { labels, deltas, weights };
  }

  /**
   * `loss_cls`, `loss_bbox` (with their weights) and `acc` of a batch's sampled RoIs.
   * @param rois `[R * 4]` the sampled RoIs in target order (needed with `regDecodedBbox`).
   * @param avgFactor what the loss sums are divided by (MMDet's `avg_factor`): `max(R, 1)` unless
   *   given (this process's share of the RoIs of a distributed batch, see ops/batch_counts.ts).
   */
  loss(out: BBoxHeadOutputs, t: BBoxTargets, rois?: Float32Array, avgFactor?: number): { loss_cls: tf.Scalar; loss_bbox: tf.Scalar; acc: tf.Scalar } {
    return tf.tidy(() => {
      const r = t.labels.length;
      const avg = avgFactor ?? Math.max(r, 1);
      const labels = tf.tensor1d(t.labels, 'int32');
      const lossCls = tf.mul(softmaxCE(out.cls, labels, undefined, avg), this.lossClsWeight) as tf.Scalar;
      const shape: [number, number] = [r, this.regDim];
      let lossBbox: tf.Scalar;
      if (this.regDecodedBbox) {
        // MMDet: the positives' own-class deltas decoded on their RoIs, against the GT boxes.
        if (!rois || rois.length !== 4 * r) throw new Error(`ConvFCBBoxHead.loss: reg_decoded_bbox needs the ${r} RoIs`);
        const { index, rows } = positiveSlots(t.weights, this.regDim);
        // The slots picked by a one-hot matmul: tf.gather's gradient (UnsortedSegmentSum) is missing on wasm.
        const slots = out.reg.size / 4;
        const pick = new Float32Array(index.length * slots);
        index.forEach((slot, j) => (pick[j * slots + slot] = 1));
        const deltas = tf.matMul(tf.tensor2d(pick, [index.length, slots]), out.reg.reshape([slots, 4])) as tf.Tensor2D;
        const pred = rows.length ? this.bboxCoder.decodeTensor(pickBoxes(rois, rows), deltas) : tf.zeros([0, 4]) as tf.Tensor2D;
        const target = Float32Array.from(index.flatMap((slot) => [0, 1, 2, 3].map((j) => t.deltas[slot * 4 + j])));
        lossBbox = boxLoss(this.lossBbox, pred, target, undefined, avg);
      } else {
        lossBbox = boxLoss(this.lossBbox, out.reg, tf.tensor2d(t.deltas, shape), tf.tensor2d(t.weights, shape), avg);
      }
      return { loss_cls: lossCls, loss_bbox: tf.mul(lossBbox, this.lossBboxWeight) as tf.Scalar, acc: accuracy(out.cls, labels, avg) };
    });
  }
}

/** MMDetection's `Shared2FCBBoxHead`: two shared fcs, no convs. */
export class Shared2FCBBoxHead extends ConvFCBBoxHead {
  constructor(opts: Omit<BBoxHeadOptions, 'numSharedConvs' | 'numSharedFcs'>) {
    super({ ...opts, numSharedConvs: 0, numSharedFcs: 2 });
  }
}

/** The 4-coordinate slots of `reg` (as rows of `[R * D / 4, 4]`) holding targets, and their RoIs. */
function positiveSlots(weights: Float32Array, regDim: number): { index: number[]; rows: number[] } {
  const index: number[] = [], rows: number[] = [];
  for (let slot = 0; slot < weights.length / 4; slot++) {
    if (weights[slot * 4] > 0) {
      index.push(slot);
      rows.push(Math.floor((slot * 4) / regDim));
    }
  }
  return { index, rows };
}

