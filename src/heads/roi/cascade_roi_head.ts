/**
 * MMDetection 2.x `CascadeRoIHead` (Cascade R-CNN, arXiv 1712.00726) with one box head and one mask
 * head per stage. Keys `bbox_head.{i}.*`, `mask_head.{i}.*` (the RoI extractors have no weights and
 * are shared by the stages).
 *
 * Training: stage `i` assigns and samples its proposals with its own `train_cfg.rcnn[i]` (IoU
 * thresholds rising over the stages), computes its box and mask losses on them (keys `s{i}.loss_cls`,
 * `s{i}.loss_bbox`, `s{i}.acc`, `s{i}.loss_mask`), each loss times `stage_loss_weights[i]`; then the
 * sampled RoIs, without the GT boxes the sampler added, are regressed by the stage's deltas of their
 * label (the predicted class for negatives) into the next stage's proposals, as values: no gradient
 * flows back through them (MMDet `refine_bboxes` under `torch.no_grad`).
 *
 * Test: the proposals go through every stage, each refining them for the next (by its argmax
 * class); the class logits are averaged over the stages, the last stage's deltas decode the boxes;
 * each stage's mask head predicts the detections' masks and their sigmoid probabilities are
 * averaged before the threshold.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../../nn/module.ts';
import { ModuleList } from '../../nn/container.ts';
import { pickBoxes, readOnce } from '../../ops/arrays.ts';
import { LOCAL_COUNTS, type CountReducer } from '../../ops/batch_counts.ts';
import type { ImgMeta } from '../../datasets/collate.ts';
import { makeInstances, type Instances } from '../../structures/instances.ts';
import type { RcnnTestCfg } from '../det_config.ts';
import type { GroundTruth } from '../ground_truth.ts';
import type { Proposals } from '../rpn/rpn_head.ts';
import type { ConvFCBBoxHead } from './bbox_head.ts';
import type { FCNMaskHead } from './mask_head.ts';
import type { SingleRoIExtractor } from './roi_extractor.ts';
import {
  boxStageLoss, detectionsOf, maskStageLoss, sampledBoxes, sampleProposals, stageAvgFactors, toRois, withMasks, type BoxStageResult, type RcnnTrainCfg, type RoIHead,
  type SampledRois,
} from './standard_roi_head.ts';

export interface CascadeRoIHeadOptions {
  stageLossWeights: number[];
  bboxRoiExtractor: SingleRoIExtractor;
  bboxHeads: ConvFCBBoxHead[];
  maskRoiExtractor?: SingleRoIExtractor;
  maskHeads?: FCNMaskHead[];
}

export class CascadeRoIHead extends Module implements RoIHead {
  readonly stageLossWeights: number[];
  readonly bboxRoiExtractor: SingleRoIExtractor;
  readonly bboxHeads: ModuleList<ConvFCBBoxHead>;
  readonly maskRoiExtractor?: SingleRoIExtractor;
  readonly maskHeads?: ModuleList<FCNMaskHead>;

  constructor(opts: CascadeRoIHeadOptions) {
    super();
    const n = opts.bboxHeads.length;
    if (n < 1 || opts.stageLossWeights.length !== n) throw new Error(`CascadeRoIHead: ${n} box heads and ${opts.stageLossWeights.length} stage loss weights`);
    if (opts.bboxHeads.some((h) => h.numClasses !== opts.bboxHeads[0].numClasses)) throw new Error('CascadeRoIHead: the stages predict different class counts');
    this.stageLossWeights = opts.stageLossWeights;
    this.bboxRoiExtractor = opts.bboxRoiExtractor;
    this.bboxHeads = this.addModule('bbox_head', new ModuleList(opts.bboxHeads));
    if (opts.maskHeads) {
      if (!opts.maskRoiExtractor) throw new Error('CascadeRoIHead: mask heads need a mask RoI extractor');
      if (opts.maskHeads.length !== n) throw new Error(`CascadeRoIHead: ${opts.maskHeads.length} mask heads for ${n} stages`);
      this.maskRoiExtractor = opts.maskRoiExtractor;
      this.maskHeads = this.addModule('mask_head', new ModuleList(opts.maskHeads));
    }
  }

  get numStages(): number {
    return this.bboxHeads.items.length;
  }

  get numClasses(): number {
    return this.bboxHeads.items[0].numClasses;
  }

  get withMask(): boolean {
    return this.maskHeads !== undefined;
  }

  /** Every stage's losses (`s{i}.*`), each stage on the previous stage's refined RoIs. */
  loss(feats: tf.Tensor4D[], proposals: Proposals[], gts: GroundTruth[], metas: ImgMeta[], cfg: RcnnTrainCfg | RcnnTrainCfg[], counts: CountReducer = LOCAL_COUNTS): Record<string, tf.Scalar> {
    if (!Array.isArray(cfg) || cfg.length !== this.numStages) {
      throw new Error(`CascadeRoIHead: train_cfg.rcnn needs one block per stage (${this.numStages}), got ${Array.isArray(cfg) ? cfg.length : 'one'}`);
    }
    const losses: Record<string, tf.Scalar> = {};
    let current = proposals;
    for (let i = 0; i < this.numStages; i++) {
      const w = this.stageLossWeights[i];
      const head = this.bboxHeads.items[i];
      const sampled = sampleProposals(current, gts, metas, cfg[i], 1 + i);
      const norm = stageAvgFactors(sampled, counts);
      const last = i === this.numStages - 1;
      const stage = boxStageLoss(head, this.bboxRoiExtractor, feats, sampled, norm.rois, !last);
      for (const [k, v] of Object.entries(stage.losses)) losses[`s${i}.${k}`] = k.includes('loss') ? weighted(v, w) : v;
      if (this.maskHeads && this.maskRoiExtractor) {
        losses[`s${i}.loss_mask`] = weighted(maskStageLoss(this.maskHeads.items[i], this.maskRoiExtractor, feats, sampled, gts, cfg[i].maskSize, norm.masks), w);
      }
      if (!last) current = refineSampled(head, stage, sampled, metas);
    }
    return losses;
  }

  /** Detections (and masks) of each image in its ORIGINAL pixels. */
  predict(feats: tf.Tensor4D[], proposals: Proposals[], metas: ImgMeta[], cfg: RcnnTestCfg): Instances[] {
    const k = this.numClasses;
    let boxes = proposals.map((p) => p.boxes);
    const logitSum = new Float32Array(boxes.reduce((n, b) => n + b.length / 4, 0) * (k + 1));
    let deltas: Float32Array = new Float32Array(0);
    for (let i = 0; i < this.numStages; i++) {
      const head = this.bboxHeads.items[i];
      const rois = toRois(boxes.map((b) => [b]));
      const out = tf.tidy(() => {
        const o = head.forward(this.bboxRoiExtractor.forward(feats, rois));
        return [o.cls, o.reg];
      });
      const cls = readOnce(out[0]);
      deltas = readOnce(out[1]);
      for (let j = 0; j < cls.length; j++) logitSum[j] += cls[j];
      if (i < this.numStages - 1) boxes = regressByClass(head, boxes, argmaxForeground(cls, k), deltas, metas);
    }
    // MMDet averages the stages' logits, then the last head's softmax.
    const probs = tf.tidy(() => tf.softmax(tf.div(tf.tensor2d(logitSum, [logitSum.length / (k + 1), k + 1]), this.numStages)).dataSync() as Float32Array);
    const dets = detectionsOf(this.bboxHeads.items[this.numStages - 1], boxes, probs, deltas, metas, cfg);
    if (!this.maskHeads || !this.maskRoiExtractor) return dets.map((det) => makeInstances(det));
    const heads = this.maskHeads.items;
    const extractor = this.maskRoiExtractor;
    return withMasks(dets, metas, cfg, extractor, (maskRois, labels) => {
      const pooled = extractor.forward(feats, maskRois);
      let mean: Float32Array | null = null;
      for (const head of heads) {
        const logits = tf.tidy(() => head.forward(pooled));
        const p = head.probabilities(logits, labels);
        logits.dispose();
        if (mean === null) mean = p;
        else for (let j = 0; j < p.length; j++) mean[j] += p[j];
      }
      pooled.dispose();
      for (let j = 0; j < mean!.length; j++) mean![j] /= heads.length;
      return mean!;
    });
  }
}

function weighted(v: tf.Scalar, w: number): tf.Scalar {
  if (w === 1) return v;
  const out = tf.mul(v, w) as tf.Scalar;
  v.dispose();
  return out;
}

/** Per row of `[R, K + 1]` logits the best foreground class. */
function argmaxForeground(cls: Float32Array, k: number): Int32Array {
  const n = cls.length / (k + 1);
  const out = new Int32Array(n);
  for (let r = 0; r < n; r++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (cls[r * (k + 1) + c] > cls[r * (k + 1) + best]) best = c;
    out[r] = best;
  }
  return out;
}

/**
 * MMDet `regress_by_class`: each image's boxes moved by the deltas of `labels` (class-agnostic heads:
 * the one set), clipped to the image. `deltas` `[R, D]` over all images in order.
 */
function regressByClass(head: ConvFCBBoxHead, boxes: Float32Array[], labels: Int32Array, deltas: Float32Array, metas: ImgMeta[]): Float32Array[] {
  const d = head.regDim;
  let offset = 0;
  return boxes.map((b, i) => {
    const n = b.length / 4;
    const mine = new Float32Array(n * 4);
    for (let r = 0; r < n; r++) {
      const at = (offset + r) * d + (d === 4 ? 0 : 4 * labels[offset + r]);
      mine.set(deltas.subarray(at, at + 4), r * 4);
    }
    offset += n;
    return head.bboxCoder.decode(b, mine, metas[i].imgShape);
  });
}

/**
 * MMDet `refine_bboxes`: the sampled RoIs of each image regressed by the stage's deltas of their
 * target label (for negatives, the predicted foreground class), the GT boxes the sampler added as
 * proposals left out: the next stage's proposals (values: no gradient).
 */
function refineSampled(head: ConvFCBBoxHead, stage: BoxStageResult, sampled: SampledRois[], metas: ImgMeta[]): Proposals[] {
  const k = head.numClasses;
  const predicted = argmaxForeground(stage.cls, k);
  const labels = stage.labels.map((l, r) => (l === k ? predicted[r] : l));
  const refined = regressByClass(head, sampled.map((s) => sampledBoxes([s])), labels, stage.reg, metas);
  return sampled.map((s, i) => {
    const np = s.pos.length / 4, n = refined[i].length / 4;
    const keep = Array.from({ length: n }, (_, r) => r).filter((r) => r >= np || !s.posIsGt[r]);
    const ids = s.ids;
    return { boxes: pickBoxes(refined[i], keep), scores: new Float32Array(keep.length), ids: ids && Int32Array.from(keep, (r) => ids[r]) };
  });
}
