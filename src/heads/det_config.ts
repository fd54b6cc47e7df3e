/**
 * Config blocks the detection heads share (MMDetection 2.x keys): anchor generator, box coder,
 * assigner, sampler, proposal and RCNN test settings, and the loss blocks the heads accept. Each is
 * a schema plus a conversion to the options of its op in `src/ops/`.
 */
import { bool, int, list, num, obj, oneOf, optional, refine, str, type Infer } from '../config/schema.ts';
import type { AnchorGeneratorOptions } from '../ops/anchors.ts';
import type { MaxIoUAssignerOptions } from '../ops/assigner.ts';
import type { RandomSamplerOptions } from '../ops/sampler.ts';
import type { DeltaCoderOptions } from '../ops/delta_coder.ts';
import type { BoxLossSpec } from '../ops/det_losses.ts';

const four = list(num(), { len: 4 });

/** `anchor_generator: {type: AnchorGenerator, scales, ratios, strides, ...}`. */
export const anchorGeneratorSchema = obj({
  type: str({ enum: ['AnchorGenerator'] }),
  strides: list(int({ min: 1 })),
  ratios: list(num({ min: 0 })),
  scales: optional(list(num({ min: 0 }))),
  base_sizes: optional(list(int({ min: 1 }))),
  octave_base_scale: optional(num({ min: 0 })),
  scales_per_octave: optional(int({ min: 1 })),
  center_offset: optional(num({ min: 0, max: 1 })),
});

export function anchorGeneratorOptions(b: Infer<typeof anchorGeneratorSchema>): AnchorGeneratorOptions {
  return {
    strides: b.strides, ratios: b.ratios, scales: b.scales, baseSizes: b.base_sizes,
    octaveBaseScale: b.octave_base_scale, scalesPerOctave: b.scales_per_octave, centerOffset: b.center_offset,
  };
}

/** `bbox_coder: {type: DeltaXYWHBBoxCoder, target_means, target_stds, clip_border}`. */
export const deltaCoderSchema = obj({
  type: str({ enum: ['DeltaXYWHBBoxCoder'] }),
  target_means: optional(four),
  target_stds: optional(four),
  clip_border: optional(bool()),
});

export function deltaCoderOptions(b: Infer<typeof deltaCoderSchema>): DeltaCoderOptions {
  return { means: b.target_means, stds: b.target_stds, clipBorder: b.clip_border };
}

/** `assigner: {type: MaxIoUAssigner, pos_iou_thr, neg_iou_thr, min_pos_iou, match_low_quality, ignore_iof_thr, ...}`. */
export const maxIoUAssignerSchema = obj({
  type: str({ enum: ['MaxIoUAssigner'] }),
  pos_iou_thr: num({ min: 0, max: 1 }),
  neg_iou_thr: oneOf(num({ min: 0, max: 1 }), list(num({ min: 0, max: 1 }), { len: 2 })),
  min_pos_iou: optional(num({ min: 0, max: 1 })),
  match_low_quality: optional(bool()),
  gt_max_assign_all: optional(bool()),
  ignore_iof_thr: optional(num({ min: -1, max: 1 })),
  ignore_wrt_candidates: optional(bool()),
});

export function maxIoUAssignerOptions(b: Infer<typeof maxIoUAssignerSchema>): MaxIoUAssignerOptions {
  return {
    posIouThr: b.pos_iou_thr,
    negIouThr: typeof b.neg_iou_thr === 'number' ? b.neg_iou_thr : [b.neg_iou_thr[0], b.neg_iou_thr[1]],
    minPosIou: b.min_pos_iou, matchLowQuality: b.match_low_quality, gtMaxAssignAll: b.gt_max_assign_all,
    ignoreIofThr: b.ignore_iof_thr, ignoreWrtCandidates: b.ignore_wrt_candidates,
  };
}

/** `sampler: {type: RandomSampler, num, pos_fraction, neg_pos_ub, add_gt_as_proposals}`. */
export const randomSamplerSchema = obj({
  type: str({ enum: ['RandomSampler'] }),
  num: int({ min: 1 }),
  pos_fraction: num({ min: 0, max: 1 }),
  neg_pos_ub: optional(num({ min: -1 })),
  add_gt_as_proposals: optional(bool()),
});

export function randomSamplerOptions(b: Infer<typeof randomSamplerSchema>): RandomSamplerOptions {
  return { num: b.num, posFraction: b.pos_fraction, negPosUb: b.neg_pos_ub, addGtAsProposals: b.add_gt_as_proposals };
}

/** `nms: {type: nms, iou_threshold}`. */
export const nmsSchema = obj({ type: str({ enum: ['nms'] }), iou_threshold: num({ min: 0, max: 1 }) });

/** RPN proposal settings (`train_cfg.rpn_proposal`, `test_cfg.rpn`). */
export const proposalCfgSchema = obj({
  nms_pre: int({ min: 1 }),
  max_per_img: int({ min: 1 }),
  nms: nmsSchema,
  min_bbox_size: optional(num({ min: 0 }), 0),
});

/** RPN proposal settings, converted. */
export interface ProposalCfg {
  /** Top-scoring anchors kept per level before NMS. */
  nmsPre: number;
  /** Proposals kept per image after NMS. */
  maxPerImg: number;
  nmsIou: number;
  /** Boxes with width or height <= this are dropped. */
  minBboxSize: number;
}

export function proposalCfg(b: Infer<typeof proposalCfgSchema>): ProposalCfg {
  return { nmsPre: b.nms_pre, maxPerImg: b.max_per_img, nmsIou: b.nms.iou_threshold, minBboxSize: b.min_bbox_size };
}

/** `test_cfg.rcnn: {score_thr, nms, max_per_img, mask_thr_binary}`. */
export const rcnnTestCfgSchema = obj({
  score_thr: num({ min: 0, max: 1 }),
  nms: nmsSchema,
  max_per_img: int({ min: 1 }),
  mask_thr_binary: optional(num({ min: 0, max: 1 }), 0.5),
});

export interface RcnnTestCfg {
  scoreThr: number;
  nmsIou: number;
  maxPerImg: number;
  maskThr: number;
}

export function rcnnTestCfg(b: Infer<typeof rcnnTestCfgSchema>): RcnnTestCfg {
  return { scoreThr: b.score_thr, nmsIou: b.nms.iou_threshold, maxPerImg: b.max_per_img, maskThr: b.mask_thr_binary };
}

/** A loss block `{type, loss_weight, ...}` restricted to the types a head implements. */
export function lossSchema<const E extends string>(types: readonly E[], extra: { useSigmoid?: boolean; beta?: boolean } = {}) {
  return refine(
    obj({
      type: str({ enum: types }),
      loss_weight: optional(num({ min: 0 }), 1),
      use_sigmoid: optional(bool()),
      use_mask: optional(bool()),
      beta: optional(num({ min: 0 })),
    }),
    (l) => {
      if (extra.useSigmoid !== undefined && l.type === 'CrossEntropyLoss' && (l.use_sigmoid ?? false) !== extra.useSigmoid) {
        return `this head needs use_sigmoid: ${extra.useSigmoid}`;
      }
      if (l.type === 'SmoothL1Loss' && l.beta !== undefined && !(l.beta > 0)) return `SmoothL1Loss needs beta > 0, got ${l.beta}`;
      return undefined;
    },
  );
}

/** The box-regression losses heads accept for `loss_bbox`. */
export const BOX_LOSS_TYPES = ['L1Loss', 'SmoothL1Loss'] as const;

/** A validated `loss_bbox` block as the heads take it (default L1; SmoothL1's beta defaults to 1.0 as MMDetection's; GIoU for heads that decode). */
export function boxLossSpec(b: { type: string; beta?: number } | undefined): BoxLossSpec {
  if (b?.type === 'GIoULoss') return { type: 'GIoULoss' };
  return b?.type === 'SmoothL1Loss' ? { type: 'SmoothL1Loss', beta: b.beta ?? 1.0 } : { type: 'L1Loss' };
}
