/**
 * MMDetection 2.x `MaskRCNN` (a `TwoStageDetector`): backbone → FPN neck → RPN head → RoI head.
 * Keys `backbone.*`, `neck.*`, `rpn_head.*`, `roi_head.*` as in MMDetection.
 *
 * `loss(batch)` → `loss_rpn_cls`, `loss_rpn_bbox`, `loss_cls`, `loss_bbox`, `loss_mask` (summed by
 * the trainer) and `acc` (logged). Proposals for the RoI head come from the RPN outputs with no
 * gradient (MMDet detaches them too). `predict(batch)` → per image boxes, scores, labels and masks
 * in the original image's pixels.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone } from '../backbone/backbone.ts';
import type { Batch, ImgMeta } from '../datasets/collate.ts';
import { Module } from '../nn/module.ts';
import type { FPN } from '../necks/fpn.ts';
import type { ProposalCfg, RcnnTestCfg } from '../heads/det_config.ts';
import { groundTruthOf } from '../heads/ground_truth.ts';
import type { RPNHead, RPNOutputs, RPNTrainCfg } from '../heads/rpn/rpn_head.ts';
import type { RcnnTrainCfg, RoIHead } from '../heads/roi/standard_roi_head.ts';
import type { Prediction } from '../structures/prediction.ts';
import type { Model, ModelPredictOptions, Task } from './model.ts';
import { LOCAL_COUNTS, type CountReducer, type UsesBatchCounts } from '../ops/batch_counts.ts';

export interface TwoStageTrainCfg {
  rpn: RPNTrainCfg;
  rpnProposal: ProposalCfg;
  /** One block, or one per cascade stage. */
  rcnn: RcnnTrainCfg | RcnnTrainCfg[];
}

export interface TwoStageTestCfg {
  rpn: ProposalCfg;
  rcnn: RcnnTestCfg;
}

export interface MaskRCNNOptions {
  backbone: Backbone;
  neck: FPN;
  rpnHead: RPNHead;
  roiHead: RoIHead;
  trainCfg: TwoStageTrainCfg;
  testCfg: TwoStageTestCfg;
}

export class MaskRCNN extends Module implements Model, UsesBatchCounts {
  readonly task: Task = 'detection';
  /** Sums the loss normalisers over the processes of a distributed run (set by src/dist). */
  countReducer: CountReducer = LOCAL_COUNTS;
  readonly backbone: Backbone;
  readonly neck: FPN;
  readonly rpnHead: RPNHead;
  readonly roiHead: RoIHead;
  trainCfg: TwoStageTrainCfg;
  testCfg: TwoStageTestCfg;

  constructor(opts: MaskRCNNOptions) {
    super();
    this.backbone = this.addModule('backbone', opts.backbone);
    this.neck = this.addModule('neck', opts.neck);
    this.rpnHead = this.addModule('rpn_head', opts.rpnHead);
    this.roiHead = this.addModule('roi_head', opts.roiHead);
    this.trainCfg = opts.trainCfg;
    this.testCfg = opts.testCfg;
  }

  get numClasses(): number {
    return this.roiHead.numClasses;
  }

  /** `[N, H, W, 3]` → FPN levels `[N, H/s, W/s, C]` (caller disposes). */
  extractFeatures(imgs: tf.Tensor4D): tf.Tensor4D[] {
    const feats = this.backbone.forward(imgs);
    const out = this.neck.forward(feats);
    tf.dispose(feats);
    return out;
  }

  loss(batch: Batch): Record<string, tf.Scalar> {
    const feats = this.extractFeatures(batch.imgs);
    const gts = groundTruthOf(batch);
    const rpnOut = this.rpnHead.forward(feats);
    const rpnLosses = this.rpnHead.loss(rpnOut, gts, batch.metas, this.trainCfg.rpn, this.countReducer);
    const proposals = this.rpnHead.proposals(rpnOut, batch.metas, this.trainCfg.rpnProposal);
    const roiLosses = this.roiHead.loss(feats, proposals, gts, batch.metas, this.trainCfg.rcnn, this.countReducer);
    return { ...rpnLosses, ...roiLosses };
  }

  predict(batch: Batch, opts: ModelPredictOptions = {}): Prediction[] {
    // Refuse rather than silently run single-scale when asked for TTA.
    if (opts.augTest) throw new Error('MaskRCNN: test-time augmentation (--aug-test) is not implemented for detectors');
    const feats = tf.tidy(() => this.extractFeatures(batch.imgs));
    const rpnOut = this.rpnHead.forward(feats);
    try {
      return this.predictFromDense(feats, rpnOut, batch.metas);
    } finally {
      tf.dispose([...feats, ...rpnOut.cls, ...rpnOut.reg]);
    }
  }

  /**
   * The detector after its dense part (which may have run elsewhere, e.g. in onnxruntime): proposals
   * from the RPN maps, then the RoI head, with `test_cfg`. Disposes none of its inputs.
   * @param feats FPN levels `[N, H_l, W_l, C]`; @param rpnOut per-level objectness / deltas (NHWC).
   */
  predictFromDense(feats: tf.Tensor4D[], rpnOut: RPNOutputs, metas: ImgMeta[]): Prediction[] {
    const proposals = this.rpnHead.proposals(rpnOut, metas, this.testCfg.rpn);
    return this.roiHead.predict(feats, proposals, metas, this.testCfg.rcnn).map((instances) => ({ instances }));
  }
}

/**
 * MMDetection's `CascadeRCNN` with masks: the same two-stage detector with a {@link CascadeRoIHead}
 * (`roi_head: {type: CascadeRoIHead}`, `train_cfg.rcnn` one block per stage). Its losses are the
 * RPN's and the stages' (`s0.loss_cls`, ..., `s2.loss_mask`); results and metrics as Mask R-CNN's.
 */
export class CascadeMaskRCNN extends MaskRCNN {}
