/**
 * MMDetection 2.x `StandardRoIHead` with a box head and a mask head. Keys `bbox_head.*`,
 * `mask_head.*` (the RoI extractors have no weights).
 *
 * Training (`forward_train`): per image, MaxIoU assignment of the proposals to the GT and random
 * sampling (GT boxes added as proposals); RoIs of all images (positives first per image) pooled
 * 7x7 → box losses; the positives pooled 14x14 → mask head → BCE against the GT masks cropped to
 * each positive and resized to `maskSize` (binarised at 0.5).
 *
 * Test (`simple_test`): box head on the proposals, class-specific deltas decoded and clipped to the
 * image, scaled back to the original image; per class scores above `scoreThr`, NMS per class, the
 * best `maxPerImg`; masks of the detections pasted into the original image at `maskThr`.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../../nn/module.ts';
import type { MaxIoUAssigner } from '../../ops/assigner.ts';
import { imageSamplingRng, type RandomSampler } from '../../ops/sampler.ts';
import { avgFactors, LOCAL_COUNTS, type CountReducer } from '../../ops/batch_counts.ts';
import { batchedNms } from '../../ops/nms.ts';
import { rescaleBoxes } from '../../ops/boxes.ts';
import { maskTargets } from '../../ops/mask_target.ts';
import { pasteMasks } from '../../ops/paste_masks.ts';
import type { ImgMeta } from '../../datasets/collate.ts';
import { makeInstances, type Instances } from '../../structures/instances.ts';
import type { RcnnTestCfg } from '../det_config.ts';
import type { GroundTruth } from '../ground_truth.ts';
import type { Proposals } from '../rpn/rpn_head.ts';
import { concatArrays, pickBoxes, readOnce } from '../../ops/arrays.ts';
import type { BBoxTargets, ConvFCBBoxHead } from './bbox_head.ts';
import type { FCNMaskHead } from './mask_head.ts';
import type { SingleRoIExtractor } from './roi_extractor.ts';

/** MMDet `train_cfg.rcnn`. */
export interface RcnnTrainCfg {
  assigner: MaxIoUAssigner;
  sampler: RandomSampler;
  /** Side of the mask targets (28). */
  maskSize: number;
}

export interface StandardRoIHeadOptions {
  bboxRoiExtractor: SingleRoIExtractor;
  bboxHead: ConvFCBBoxHead;
  maskRoiExtractor?: SingleRoIExtractor;
  maskHead?: FCNMaskHead;
}

/** The sampled RoIs of one image. */
export interface SampledRois {
  pos: Float32Array;
  neg: Float32Array;
  posGt: Float32Array;
  posLabels: Int32Array;
  posGtInds: Int32Array;
  /** `[P]` 1 where the positive is a GT box added as a proposal. */
  posIsGt: Uint8Array;
  /** `[P + N]` the positives' then the negatives' Proposals.ids (-1 for an added GT), when the proposals had ids. */
  ids?: Int32Array;
}

/** The RoI heads' interface to the detector (MMDet `BaseRoIHead`). */
export interface RoIHead extends Module {
  readonly numClasses: number;
  readonly withMask: boolean;
  /**
   * Losses of a batch; `metas` give the images' sizes (refined boxes are clipped to them) and
   * sampling seeds; `counts` sums the loss normalisers over the processes of a distributed batch.
   */
  loss(feats: tf.Tensor4D[], proposals: Proposals[], gts: GroundTruth[], metas: ImgMeta[], cfg: RcnnTrainCfg | RcnnTrainCfg[], counts?: CountReducer): Record<string, tf.Scalar>;
  predict(feats: tf.Tensor4D[], proposals: Proposals[], metas: ImgMeta[], cfg: RcnnTestCfg): Instances[];
}

/** One image's detections in original pixels, before masks. */
export interface Detections {
  boxes: Float32Array;
  scores: Float32Array;
  labels: Int32Array;
}

export class StandardRoIHead extends Module implements RoIHead {
  readonly bboxRoiExtractor: SingleRoIExtractor;
  readonly bboxHead: ConvFCBBoxHead;
  readonly maskRoiExtractor?: SingleRoIExtractor;
  readonly maskHead?: FCNMaskHead;

  constructor(opts: StandardRoIHeadOptions) {
    super();
    this.bboxRoiExtractor = opts.bboxRoiExtractor;
    this.bboxHead = this.addModule('bbox_head', opts.bboxHead);
    if (opts.maskHead) {
      if (!opts.maskRoiExtractor) throw new Error('StandardRoIHead: a mask head needs a mask RoI extractor');
      this.maskRoiExtractor = opts.maskRoiExtractor;
      this.maskHead = this.addModule('mask_head', opts.maskHead);
    }
  }

  get numClasses(): number {
    return this.bboxHead.numClasses;
  }

  get withMask(): boolean {
    return this.maskHead !== undefined;
  }

  /** `loss_cls`, `loss_bbox`, `acc` and (with a mask head) `loss_mask` of a batch. */
  loss(feats: tf.Tensor4D[], proposals: Proposals[], gts: GroundTruth[], metas: ImgMeta[], cfg: RcnnTrainCfg | RcnnTrainCfg[], counts: CountReducer = LOCAL_COUNTS): Record<string, tf.Scalar> {
    if (Array.isArray(cfg)) throw new Error('StandardRoIHead: train_cfg.rcnn is one block (a list is for CascadeRoIHead)');
    const sampled = sampleProposals(proposals, gts, metas, cfg, 1);
    const norm = stageAvgFactors(sampled, counts);
    const { losses } = boxStageLoss(this.bboxHead, this.bboxRoiExtractor, feats, sampled, norm.rois);
    if (this.maskHead && this.maskRoiExtractor) losses.loss_mask = maskStageLoss(this.maskHead, this.maskRoiExtractor, feats, sampled, gts, cfg.maskSize, norm.masks);
    return losses;
  }

  /** Detections (and masks) of each image in its ORIGINAL pixels. */
  predict(feats: tf.Tensor4D[], proposals: Proposals[], metas: ImgMeta[], cfg: RcnnTestCfg): Instances[] {
    const rois = toRois(proposals.map((p) => [p.boxes]));
    const out = tf.tidy(() => {
      const o = this.bboxHead.forward(this.bboxRoiExtractor.forward(feats, rois));
      return [tf.softmax(o.cls, -1), o.reg];
    });
    const dets = detectionsOf(this.bboxHead, proposals.map((p) => p.boxes), readOnce(out[0]), readOnce(out[1]), metas, cfg);
    if (!this.maskHead || !this.maskRoiExtractor) return dets.map((det) => makeInstances(det));
    const maskHead = this.maskHead;
    return withMasks(dets, metas, cfg, this.maskRoiExtractor, (maskRois, labels) => {
      const logits = tf.tidy(() => maskHead.forward(this.maskRoiExtractor!.forward(feats, maskRois)));
      const v = maskHead.probabilities(logits, labels);
      logits.dispose();
      return v;
    });
  }
}

/**
 * Assigns and samples the proposals of each image (MMDet `assigner.assign` + `sampler.sample`),
 * each image from its own generator for sampling `stream` (1 + the RoI stage, see imageSamplingRng).
 */
export function sampleProposals(proposals: Proposals[], gts: GroundTruth[], metas: ImgMeta[], cfg: RcnnTrainCfg, stream: number): SampledRois[] {
  return proposals.map((p, i) => {
    const gt = gts[i];
    const assign = cfg.assigner.assign(p.boxes, gt.boxes, gt.labels, gt.ignore);
    const s = cfg.sampler.sample(assign, p.boxes, gt.boxes, gt.labels, imageSamplingRng(metas[i].samplingSeed, stream), p.ids);
    const ids = p.ids;
    const added = s.bboxes.length / 4 - p.boxes.length / 4; // the GTs prepended as proposals
    return {
      ids: ids && Int32Array.from([...s.posInds, ...s.negInds], (j) => (j < added ? -1 : ids[j - added])),
      pos: pickBoxes(s.bboxes, s.posInds),
      neg: pickBoxes(s.bboxes, s.negInds),
      posGt: pickBoxes(gt.boxes, s.posAssignedGtInds),
      posLabels: s.posGtLabels,
      posGtInds: Int32Array.from(s.posAssignedGtInds),
      posIsGt: s.posIsGt,
    };
  });
}

/**
 * A stage's loss normalisers: this process's share of the batch's sampled RoIs (box losses) and of
 * its positives (mask loss), summed over the processes by `counts` (one reduction, made by every
 * process even when it has no positive).
 */
export function stageAvgFactors(sampled: SampledRois[], counts: CountReducer): { rois: number; masks: number } {
  let rois = 0, masks = 0;
  for (const s of sampled) {
    rois += (s.pos.length + s.neg.length) / 4;
    masks += s.posLabels.length;
  }
  const [r, m] = avgFactors(counts, [rois, masks]);
  return { rois: r, masks: m };
}

/** What a box stage's loss leaves for the next stage: the sampled RoIs' labels and the head's outputs. */
export interface BoxStageResult {
  losses: Record<string, tf.Scalar>;
  /** `[R]` target labels (`K` = background), positives first per image. */
  labels: Int32Array;
  /** `[R, K + 1]` logits and `[R, D]` deltas, read back (no gradient). */
  cls: Float32Array;
  reg: Float32Array;
}

/**
 * The box head's losses on the sampled RoIs of every image, divided by `avgFactor` (see
 * stageAvgFactors), and with `keep` its outputs as values.
 */
export function boxStageLoss(head: ConvFCBBoxHead, extractor: SingleRoIExtractor, feats: tf.Tensor4D[], sampled: SampledRois[], avgFactor: number, keep = false): BoxStageResult {
  const rois = toRois(sampled.map((s) => [s.pos, s.neg]));
  const per = sampled.map((s) => head.targets(s.pos, s.posGt, s.posLabels, s.neg.length / 4));
  const targets: BBoxTargets = {
    labels: concatArrays(per.map((t) => t.labels)),
    deltas: concatArrays(per.map((t) => t.deltas)),
    weights: concatArrays(per.map((t) => t.weights)),
  };
  let cls: Float32Array = new Float32Array(0), reg: Float32Array = new Float32Array(0);
  const losses: Record<string, tf.Scalar> = tf.tidy(() => {
    const out = head.forward(extractor.forward(feats, rois));
    if (keep) {
      cls = out.cls.dataSync() as Float32Array;
      reg = out.reg.dataSync() as Float32Array;
    }
    return { ...head.loss(out, targets, sampledBoxes(sampled), avgFactor) };
  });
  return { losses, labels: targets.labels, cls, reg };
}

/** `loss_mask` of the positives of every image over `numMasks` masks (see stageAvgFactors); 0 without positives. */
export function maskStageLoss(head: FCNMaskHead, extractor: SingleRoIExtractor, feats: tf.Tensor4D[], sampled: SampledRois[], gts: GroundTruth[], maskSize: number, numMasks: number): tf.Scalar {
  const labels = concatArrays(sampled.map((s) => s.posLabels));
  if (labels.length === 0) return tf.scalar(0);
  const posRois = toRois(sampled.map((s) => [s.pos]));
  const tgt = concatArrays(sampled.map((s, i) => {
    const masks = gts[i].masks;
    if (!masks) throw new Error('RoI head: a mask head needs GT masks (LoadAnnotations with_mask: true)');
    return maskTargets(s.pos, s.posGtInds, masks, maskSize);
  }));
  return tf.tidy(() => head.loss(head.forward(extractor.forward(feats, posRois)), labels, tgt, numMasks));
}

/**
 * Per image: `probs` `[R, K + 1]` and `deltas` `[R, D]` of the RoIs `boxes` (input pixels) →
 * decoded, clipped boxes per class above `scoreThr`, class-wise NMS, the best `maxPerImg`, in the
 * ORIGINAL image's pixels.
 */
export function detectionsOf(head: ConvFCBBoxHead, boxes: Float32Array[], probs: Float32Array, deltas: Float32Array, metas: ImgMeta[], cfg: RcnnTestCfg): Detections[] {
  const k = head.numClasses;
  const d = head.regDim;
  let offset = 0;
  return boxes.map((rois, i) => {
    const n = rois.length / 4;
    const meta = metas[i];
    const myDeltas = deltas.subarray(offset * d, (offset + n) * d);
    const myProbs = probs.subarray(offset * (k + 1), (offset + n) * (k + 1));
    offset += n;
    // Decoded in input pixels, clipped to the image, then back to the original image.
    const decoded = rescaleBoxes(head.bboxCoder.decode(rois, myDeltas, meta.imgShape), meta.scaleFactor);
    const perClass = d === 4 ? 1 : k;
    const out: number[] = [];
    const scores: number[] = [];
    const labels: number[] = [];
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < k; c++) {
        const s = myProbs[r * (k + 1) + c];
        if (!(s > cfg.scoreThr)) continue;
        const at = (r * perClass + (perClass === 1 ? 0 : c)) * 4;
        out.push(decoded[at], decoded[at + 1], decoded[at + 2], decoded[at + 3]);
        scores.push(s);
        labels.push(c);
      }
    }
    const b = Float32Array.from(out);
    const sc = Float32Array.from(scores);
    const l = Int32Array.from(labels);
    const keep = batchedNms(b, sc, l, cfg.nmsIou).subarray(0, cfg.maxPerImg);
    return { boxes: pickBoxes(b, keep), scores: Float32Array.from(keep, (j) => sc[j]), labels: Int32Array.from(keep, (j) => l[j]) };
  });
}

/**
 * The detections with their masks pasted into the original images: `maskProbs(rois, labels)` gives
 * `[P * m * m]` probabilities of each detection's class for the RoIs `[P * 5]` (input pixels).
 */
export function withMasks(dets: Detections[], metas: ImgMeta[], cfg: RcnnTestCfg, extractor: SingleRoIExtractor,
  maskProbs: (rois: Float32Array, labels: Int32Array) => Float32Array): Instances[] {
  // Detections back in input pixels for pooling (MMDet `det_bboxes * scale_factor`).
  const scaled = dets.map((det, i) => {
    const [sx, sy] = metas[i].scaleFactor;
    return det.boxes.map((v, j) => v * (j % 2 === 0 ? sx : sy));
  });
  const labels = concatArrays(dets.map((det) => det.labels));
  const m = 2 * extractor.outputSize[0];
  const probs = labels.length ? maskProbs(toRois(scaled.map((b) => [b])), labels) : new Float32Array(0);
  let offset = 0;
  return dets.map((det, i) => {
    const n = det.labels.length;
    const [h, w] = metas[i].oriShape;
    const masks = pasteMasks(probs.subarray(offset * m * m, (offset + n) * m * m), m, det.boxes, [h, w], cfg.maskThr);
    offset += n;
    return makeInstances({ ...det, masks: { kind: 'bitmaps', height: h, width: w, masks } });
  });
}

/** The `[R * 4]` sampled boxes of every image, positives then negatives per image (the targets' order). */
export function sampledBoxes(sampled: SampledRois[]): Float32Array {
  return concatArrays(sampled.flatMap((s) => [s.pos, s.neg]));
}

/** `[R * 5]` RoIs `(image index, x1, y1, x2, y2)` of per-image groups of `[n * 4]` boxes. */
export function toRois(perImage: Float32Array[][]): Float32Array {
  const total = perImage.reduce((s, groups) => s + groups.reduce((t, g) => t + g.length / 4, 0), 0);
  const out = new Float32Array(total * 5);
  let r = 0;
  perImage.forEach((groups, i) => {
    for (const g of groups) {
      for (let j = 0; j < g.length / 4; j++, r++) {
        out[r * 5] = i;
        out.set(g.subarray(j * 4, j * 4 + 4), r * 5 + 1);
      }
    }
  });
  return out;
}
