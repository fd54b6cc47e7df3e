/**
 * MMDetection 2.x `RPNHead`: a shared 3x3 conv (ReLU) over every FPN level, then a 1x1 objectness
 * conv (`A` sigmoid logits per position) and a 1x1 regression conv (`4A` deltas). Keys `rpn_conv.*`,
 * `rpn_cls.*`, `rpn_reg.*`.
 *
 * Training targets (`AnchorHead.get_targets`): per image the anchors of all levels (order level,
 * h, w, anchor), valid where the padded image covers them (and, with `allowedBorder >= 0`, inside
 * the image plus that border); MaxIoU assignment and random sampling among the valid ones; positive
 * labels 1, sampled negatives 0; deltas of the positives to their GT. Both losses are sums over the
 * sampled anchors divided by the number sampled in the batch (MMDet's `avg_factor`; in a distributed
 * batch this process's share of the number over all processes, see ops/batch_counts.ts). Each image
 * samples from its own generator (ImgMeta.samplingSeed). The loss is dense
 * over all anchors with 0/1 weights (no gather, whose gradient the wasm backend lacks).
 *
 * Proposals (`RPNHead._get_bboxes_single`): per level the `nmsPre` best-scored anchors, decoded and
 * clipped to the image, boxes no larger than `minBboxSize` dropped, NMS per level (batched NMS by
 * level id), the best `maxPerImg` kept.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../../nn/conv2d.ts';
import { normalInit } from '../../nn/init.ts';
import { Module } from '../../nn/module.ts';
import { AnchorGenerator } from '../../ops/anchors.ts';
import { DeltaXYWHBBoxCoder } from '../../ops/delta_coder.ts';
import { MaxIoUAssigner } from '../../ops/assigner.ts';
import { imageSamplingRng, type RandomSampler } from '../../ops/sampler.ts';
import { avgFactors, LOCAL_COUNTS, type CountReducer } from '../../ops/batch_counts.ts';
import { batchedNms } from '../../ops/nms.ts';
import { boxLoss, sigmoidBCE, type BoxLossSpec } from '../../ops/det_losses.ts';
import { concatArrays, pickBoxes, readOnce, topK } from '../../ops/arrays.ts';
import type { ImgMeta } from '../../datasets/collate.ts';
import type { ProposalCfg } from '../det_config.ts';
import type { GroundTruth } from '../ground_truth.ts';
import { reluSavingOutput } from '../../nn/frugal.ts';

export interface RPNHeadOptions {
  inChannels: number;
  featChannels: number;
  anchorGenerator: AnchorGenerator;
  bboxCoder: DeltaXYWHBBoxCoder;
  lossClsWeight?: number;
  lossBboxWeight?: number;
  /** Box regression loss (default L1). */
  lossBbox?: BoxLossSpec;
}

/** What the RPN's training targets need besides the head (MMDet `train_cfg.rpn`). */
export interface RPNTrainCfg {
  assigner: MaxIoUAssigner;
  sampler: RandomSampler;
  /** -1: every valid anchor takes part; b >= 0: only anchors inside the image grown by b pixels. */
  allowedBorder: number;
}

/** Raw RPN outputs per level: objectness `[N, H, W, A]` and deltas `[N, H, W, 4A]`. */
export interface RPNOutputs {
  cls: tf.Tensor4D[];
  reg: tf.Tensor4D[];
}

/** Proposals of one image: `[K * 4]` boxes in input-image pixels and their `[K]` objectness. */
export interface Proposals {
  boxes: Float32Array;
  scores: Float32Array;
  /**
   * `[K]` what each proposal came from (its anchor's index over all levels; a later stage keeps
   * its RoI's): a key that does not depend on the score order, for the RoI sampler.
   */
  ids?: Int32Array;
}

export class RPNHead extends Module {
  readonly rpnConv: Conv2d;
  readonly rpnCls: Conv2d;
  readonly rpnReg: Conv2d;
  readonly anchorGenerator: AnchorGenerator;
  readonly bboxCoder: DeltaXYWHBBoxCoder;
  readonly numAnchors: number;
  readonly lossClsWeight: number;
  readonly lossBboxWeight: number;
  readonly lossBbox: BoxLossSpec;

  constructor(opts: RPNHeadOptions) {
    super();
    this.anchorGenerator = opts.anchorGenerator;
    this.bboxCoder = opts.bboxCoder;
    this.numAnchors = opts.anchorGenerator.numBaseAnchors;
    const a = this.numAnchors;
    this.rpnConv = this.addModule('rpn_conv', new Conv2d(opts.inChannels, opts.featChannels, 3, { padding: 1 }));
    this.rpnCls = this.addModule('rpn_cls', new Conv2d(opts.featChannels, a, 1));
    this.rpnReg = this.addModule('rpn_reg', new Conv2d(opts.featChannels, a * 4, 1));
    for (const c of [this.rpnConv, this.rpnCls, this.rpnReg]) normalInit(c, 0.01);
    this.lossClsWeight = opts.lossClsWeight ?? 1;
    this.lossBboxWeight = opts.lossBboxWeight ?? 1;
    this.lossBbox = opts.lossBbox ?? { type: 'L1Loss' };
  }

  /** FPN levels `[N, H_l, W_l, C]` → per-level objectness and deltas. */
  forward(feats: tf.Tensor4D[]): RPNOutputs {
    const cls: tf.Tensor4D[] = [];
    const reg: tf.Tensor4D[] = [];
    for (const f of feats) {
      const [c, r] = tf.tidy(() => {
        const h = reluSavingOutput(this.rpnConv.forward(f));
        return [this.rpnCls.forward(h), this.rpnReg.forward(h)];
      });
      cls.push(c);
      reg.push(r);
    }
    return { cls, reg };
  }

  /** `[h, w]` of each level's map. */
  private featSizes(out: RPNOutputs): [number, number][] {
    return out.cls.map((c) => [c.shape[1], c.shape[2]]);
  }

  /**
   * `loss_rpn_cls` (sigmoid BCE) and `loss_rpn_bbox` (L1 on deltas) of a batch, with weights.
   * @param gts per image GT boxes/ignored boxes in input-image pixels.
   * @param counts sums the number of sampled anchors over the processes of a distributed batch.
   */
  loss(out: RPNOutputs, gts: GroundTruth[], metas: ImgMeta[], cfg: RPNTrainCfg, counts: CountReducer = LOCAL_COUNTS): { loss_rpn_cls: tf.Scalar; loss_rpn_bbox: tf.Scalar } {
    const sizes = this.featSizes(out);
    const anchors = concatArrays(this.anchorGenerator.gridAnchors(sizes));
    const total = anchors.length / 4;
    const n = metas.length;
    const labels = new Float32Array(n * total);
    const labelW = new Float32Array(n * total);
    const boxT = new Float32Array(n * total * 4);
    const boxW = new Float32Array(n * total * 4);
    let numSampled = 0;
    for (let i = 0; i < n; i++) {
      const valid = concatArrays(this.anchorGenerator.validFlags(sizes, metas[i].padShape));
      const inside = insideIndices(anchors, valid, metas[i].imgShape, cfg.allowedBorder);
      const cand = pickBoxes(anchors, inside);
      const gt = gts[i];
      const assign = cfg.assigner.assign(cand, gt.boxes, gt.labels, gt.ignore);
      const s = cfg.sampler.sample(assign, cand, gt.boxes, gt.labels, imageSamplingRng(metas[i].samplingSeed, 0));
      numSampled += s.posInds.length + s.negInds.length;
      const base = i * total;
      if (s.posInds.length) {
        const deltas = this.bboxCoder.encode(pickBoxes(s.bboxes, s.posInds), pickBoxes(gt.boxes, s.posAssignedGtInds));
        s.posInds.forEach((p, k) => {
          const a = base + inside[p];
          labels[a] = 1;
          labelW[a] = 1;
          boxT.set(deltas.subarray(k * 4, k * 4 + 4), a * 4);
          boxW.fill(1, a * 4, a * 4 + 4);
        });
      }
      for (const q of s.negInds) labelW[base + inside[q]] = 1;
    }
    const [avg] = avgFactors(counts, [numSampled]);
    return tf.tidy(() => {
      const logits = tf.concat(out.cls.map((c) => c.reshape([n, -1])), 1);
      const deltas = tf.concat(out.reg.map((r) => r.reshape([n, -1])), 1);
      const cls = sigmoidBCE(logits, tf.tensor2d(labels, [n, total]), tf.tensor2d(labelW, [n, total]), avg);
      const box = boxLoss(this.lossBbox, deltas, tf.tensor2d(boxT, [n, total * 4]), tf.tensor2d(boxW, [n, total * 4]), avg);
      return { loss_rpn_cls: tf.mul(cls, this.lossClsWeight) as tf.Scalar, loss_rpn_bbox: tf.mul(box, this.lossBboxWeight) as tf.Scalar };
    });
  }

  /** Proposals of each image of the batch (no gradient), see the file comment. */
  proposals(out: RPNOutputs, metas: ImgMeta[], cfg: ProposalCfg): Proposals[] {
    const sizes = this.featSizes(out);
    const levelAnchors = this.anchorGenerator.gridAnchors(sizes);
    const a = this.numAnchors;
    const scoresPerLevel = out.cls.map((c) => readOnce(tf.sigmoid(c)));
    const deltasPerLevel = out.reg.map((r) => r.dataSync() as Float32Array);
    return metas.map((meta, i) => {
      const boxes: number[] = [];
      const scores: number[] = [];
      const ids: number[] = [];
      const anchorIds: number[] = [];
      let levelStart = 0;
      sizes.forEach(([h, w], l) => {
        const per = h * w * a;
        const start = levelStart;
        levelStart += per;
        const sc = scoresPerLevel[l].subarray(i * per, (i + 1) * per);
        const order = topK(sc, cfg.nmsPre);
        const anc = pickBoxes(levelAnchors[l], order);
        const del = pickBoxes(deltasPerLevel[l].subarray(i * per * 4, (i + 1) * per * 4), order);
        const dec = this.bboxCoder.decode(anc, del, meta.imgShape);
        order.forEach((_, k) => {
          const bw = dec[k * 4 + 2] - dec[k * 4];
          const bh = dec[k * 4 + 3] - dec[k * 4 + 1];
          if (!(bw > cfg.minBboxSize && bh > cfg.minBboxSize)) return;
          for (let j = 0; j < 4; j++) boxes.push(dec[k * 4 + j]);
          scores.push(sc[order[k]]);
          ids.push(l);
          anchorIds.push(start + order[k]);
        });
      });
      const b = Float32Array.from(boxes);
      const s = Float32Array.from(scores);
      const keep = batchedNms(b, s, Int32Array.from(ids), cfg.nmsIou).subarray(0, cfg.maxPerImg);
      return { boxes: pickBoxes(b, keep), scores: Float32Array.from(keep, (k) => s[k]), ids: Int32Array.from(keep, (k) => anchorIds[k]) };
    });
  }
}

/** Indices of the anchors that are valid and, with `border >= 0`, inside the image grown by it. */
function insideIndices(anchors: Float32Array, valid: Uint8Array, [h, w]: [number, number], border: number): Int32Array {
  const out: number[] = [];
  for (let i = 0; i < valid.length; i++) {
    if (!valid[i]) continue;
    if (border >= 0) {
      const [x1, y1, x2, y2] = anchors.subarray(i * 4, i * 4 + 4);
      if (!(x1 >= -border && y1 >= -border && x2 < w + border && y2 < h + border)) continue;
    }
    out.push(i);
  }
  return Int32Array.from(out);
}
