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
import type { RandomSampler } from '../../ops/sampler.ts';
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
import type { BBoxTargets, Shared2FCBBoxHead } from './bbox_head.ts';
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
  bboxHead: Shared2FCBBoxHead;
  maskRoiExtractor?: SingleRoIExtractor;
  maskHead?: FCNMaskHead;
}

/** The sampled RoIs of one image. */
interface SampledRois {
  pos: Float32Array;
  neg: Float32Array;
  posGt: Float32Array;
  posLabels: Int32Array;
  posGtInds: Int32Array;
}

export class StandardRoIHead extends Module {
  readonly bboxRoiExtractor: SingleRoIExtractor;
  readonly bboxHead: Shared2FCBBoxHead;
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

  get withMask(): boolean {
    return this.maskHead !== undefined;
  }

  /** Assigns and samples the proposals of each image. */
  private sample(proposals: Proposals[], gts: GroundTruth[], cfg: RcnnTrainCfg): SampledRois[] {
    return proposals.map((p, i) => {
      const gt = gts[i];
      const assign = cfg.assigner.assign(p.boxes, gt.boxes, gt.labels, gt.ignore);
      const s = cfg.sampler.sample(assign, p.boxes, gt.boxes, gt.labels);
      return {
        pos: pickBoxes(s.bboxes, s.posInds),
        neg: pickBoxes(s.bboxes, s.negInds),
        posGt: pickBoxes(gt.boxes, s.posAssignedGtInds),
        posLabels: s.posGtLabels,
        posGtInds: Int32Array.from(s.posAssignedGtInds),
      };
    });
  }

  /** `loss_cls`, `loss_bbox`, `acc` and (with a mask head) `loss_mask` of a batch. */
  loss(feats: tf.Tensor4D[], proposals: Proposals[], gts: GroundTruth[], cfg: RcnnTrainCfg): Record<string, tf.Scalar> {
    const sampled = this.sample(proposals, gts, cfg);
    const rois = toRois(sampled.map((s) => [s.pos, s.neg]));
    const per = sampled.map((s) => this.bboxHead.targets(s.pos, s.posGt, s.posLabels, s.neg.length / 4));
    const targets: BBoxTargets = {
      labels: concatArrays(per.map((t) => t.labels)),
      deltas: concatArrays(per.map((t) => t.deltas)),
      weights: concatArrays(per.map((t) => t.weights)),
    };
    const losses: Record<string, tf.Scalar> = tf.tidy(() => {
      const boxFeats = this.bboxRoiExtractor.forward(feats, rois);
      return { ...this.bboxHead.loss(this.bboxHead.forward(boxFeats), targets) };
    });
    if (this.maskHead && this.maskRoiExtractor) {
      const maskHead = this.maskHead;
      const extractor = this.maskRoiExtractor;
      const posRois = toRois(sampled.map((s) => [s.pos]));
      const labels = concatArrays(sampled.map((s) => s.posLabels));
      if (labels.length === 0) {
        losses.loss_mask = tf.scalar(0);
      } else {
        const tgt = concatArrays(sampled.map((s, i) => {
          const masks = gts[i].masks;
          if (!masks) throw new Error('StandardRoIHead: a mask head needs GT masks (LoadAnnotations with_mask: true)');
          return maskTargets(s.pos, s.posGtInds, masks, cfg.maskSize);
        }));
        losses.loss_mask = tf.tidy(() => maskHead.loss(maskHead.forward(extractor.forward(feats, posRois)), labels, tgt));
      }
    }
    return losses;
  }

  /** Detections (and masks) of each image in its ORIGINAL pixels. */
  predict(feats: tf.Tensor4D[], proposals: Proposals[], metas: ImgMeta[], cfg: RcnnTestCfg): Instances[] {
    const k = this.bboxHead.numClasses;
    const rois = toRois(proposals.map((p) => [p.boxes]));
    const out = tf.tidy(() => {
      const o = this.bboxHead.forward(this.bboxRoiExtractor.forward(feats, rois));
      return [tf.softmax(o.cls, -1), o.reg];
    });
    const probs = readOnce(out[0]);
    const deltas = readOnce(out[1]);
    const d = this.bboxHead.regDim;
    let offset = 0;
    const dets = proposals.map((p, i) => {
      const n = p.boxes.length / 4;
      const meta = metas[i];
      const myDeltas = deltas.subarray(offset * d, (offset + n) * d);
      const myProbs = probs.subarray(offset * (k + 1), (offset + n) * (k + 1));
      offset += n;
      // Decoded in input pixels, clipped to the image, then back to the original image.
      const decoded = rescaleBoxes(this.bboxHead.bboxCoder.decode(p.boxes, myDeltas, meta.imgShape), meta.scaleFactor);
      const perClass = d === 4 ? 1 : k;
      const boxes: number[] = [];
      const scores: number[] = [];
      const labels: number[] = [];
      for (let r = 0; r < n; r++) {
        for (let c = 0; c < k; c++) {
          const s = myProbs[r * (k + 1) + c];
          if (!(s > cfg.scoreThr)) continue;
          const at = (r * perClass + (perClass === 1 ? 0 : c)) * 4;
          boxes.push(decoded[at], decoded[at + 1], decoded[at + 2], decoded[at + 3]);
          scores.push(s);
          labels.push(c);
        }
      }
      const b = Float32Array.from(boxes);
      const s = Float32Array.from(scores);
      const l = Int32Array.from(labels);
      const keep = batchedNms(b, s, l, cfg.nmsIou).subarray(0, cfg.maxPerImg);
      return { boxes: pickBoxes(b, keep), scores: Float32Array.from(keep, (j) => s[j]), labels: Int32Array.from(keep, (j) => l[j]) };
    });
    if (!this.maskHead || !this.maskRoiExtractor) return dets.map((det) => makeInstances(det));
    const maskHead = this.maskHead;
    const extractor = this.maskRoiExtractor;
    // Detections back in input pixels for pooling (MMDet `det_bboxes * scale_factor`).
    const scaled = dets.map((det, i) => {
      const [sx, sy] = metas[i].scaleFactor;
      return det.boxes.map((v, j) => v * (j % 2 === 0 ? sx : sy));
    });
    const maskRois = toRois(scaled.map((b) => [b]));
    const labels = concatArrays(dets.map((det) => det.labels));
    const m = 2 * extractor.outputSize[0];
    const maskProbs = labels.length ? (() => {
      const logits = tf.tidy(() => maskHead.forward(extractor.forward(feats, maskRois)));
      const v = maskHead.probabilities(logits, labels);
      logits.dispose();
      return v;
    })() : new Float32Array(0);
    offset = 0;
    return dets.map((det, i) => {
      const n = det.labels.length;
      const [h, w] = metas[i].oriShape;
      const masks = pasteMasks(maskProbs.subarray(offset * m * m, (offset + n) * m * m), m, det.boxes, [h, w], cfg.maskThr);
      offset += n;
      return makeInstances({ ...det, masks: { kind: 'bitmaps', height: h, width: w, masks } });
    });
  }
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
