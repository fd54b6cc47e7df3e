/**
 * `roi_head: {type: StandardRoIHead | CascadeRoIHead, ...}` and `train_cfg.rcnn` (MMDetection 2.x
 * keys): schemas and builders. Box and mask heads' `num_classes` must agree.
 */
import { ConfigError, where } from '../../config/errors.ts';
import { bool, int, list, num, obj, oneOf, optional, refine, str, type Infer } from '../../config/schema.ts';
import { MaxIoUAssigner } from '../../ops/assigner.ts';
import { DeltaXYWHBBoxCoder } from '../../ops/delta_coder.ts';
import { RandomSampler } from '../../ops/sampler.ts';
import {
  BOX_LOSS_TYPES, boxLossSpec, deltaCoderOptions, deltaCoderSchema, lossSchema, maxIoUAssignerOptions, maxIoUAssignerSchema,
  randomSamplerOptions, randomSamplerSchema,
} from '../det_config.ts';
import { normCfgSchema, normOf } from '../norm_config.ts';
import { ConvFCBBoxHead } from './bbox_head.ts';
import { CascadeRoIHead } from './cascade_roi_head.ts';
import { FCNMaskHead } from './mask_head.ts';
import { SingleRoIExtractor } from './roi_extractor.ts';
import { StandardRoIHead, type RcnnTrainCfg } from './standard_roi_head.ts';

export const roiExtractorSchema = obj({
  type: str({ enum: ['SingleRoIExtractor'] }),
  roi_layer: obj({
    type: str({ enum: ['RoIAlign'] }),
    output_size: int({ min: 1 }),
    sampling_ratio: optional(int({ min: 0 }), 0),
    aligned: optional(bool(), true),
  }),
  out_channels: int({ min: 1 }),
  featmap_strides: list(int({ min: 1 })),
  finest_scale: optional(num({ min: 1 }), 56),
});

/** Shared convs/fcs of each box head type (MMDetection's defaults; `ConvFCBBoxHead` takes them from the block). */
const BBOX_HEAD_LAYOUT = {
  Shared2FCBBoxHead: { convs: 0, fcs: 2 },
  Shared4Conv1FCBBoxHead: { convs: 4, fcs: 1 },
  ConvFCBBoxHead: { convs: 0, fcs: 0 },
} as const;

export const bboxHeadSchema = refine(
  obj({
    type: str({ enum: Object.keys(BBOX_HEAD_LAYOUT) as (keyof typeof BBOX_HEAD_LAYOUT)[] }),
    in_channels: int({ min: 1 }),
    fc_out_channels: int({ min: 1 }),
    roi_feat_size: int({ min: 1 }),
    num_classes: int({ min: 1 }),
    num_shared_convs: optional(int({ min: 0 })),
    num_shared_fcs: optional(int({ min: 1 })),
    conv_out_channels: optional(int({ min: 1 })),
    norm_cfg: optional(normCfgSchema),
    bbox_coder: deltaCoderSchema,
    reg_class_agnostic: optional(bool(), false),
    reg_decoded_bbox: optional(bool(), false),
    loss_cls: optional(lossSchema(['CrossEntropyLoss'], { useSigmoid: false })),
    loss_bbox: optional(lossSchema([...BOX_LOSS_TYPES, 'GIoULoss'])),
  }),
  (b) => {
    if (b.loss_bbox?.type === 'GIoULoss' && !b.reg_decoded_bbox) return 'loss_bbox GIoULoss compares boxes: it needs reg_decoded_bbox: true';
    if (b.type !== 'ConvFCBBoxHead' && (b.num_shared_convs !== undefined || b.num_shared_fcs !== undefined)) {
      return `num_shared_convs/num_shared_fcs are fixed by ${b.type} (use type ConvFCBBoxHead to set them)`;
    }
    if (b.type === 'ConvFCBBoxHead' && b.num_shared_fcs === undefined) return 'ConvFCBBoxHead needs num_shared_fcs (>= 1)';
    return undefined;
  },
);

export const fcnMaskHeadSchema = obj({
  type: str({ enum: ['FCNMaskHead'] }),
  num_convs: int({ min: 0 }),
  in_channels: int({ min: 1 }),
  conv_out_channels: int({ min: 1 }),
  num_classes: int({ min: 1 }),
  loss_mask: optional(lossSchema(['CrossEntropyLoss'])),
});

export const standardRoIHeadSchema = obj({
  type: str({ enum: ['StandardRoIHead'] }),
  bbox_roi_extractor: roiExtractorSchema,
  bbox_head: bboxHeadSchema,
  mask_roi_extractor: optional(roiExtractorSchema),
  mask_head: optional(fcnMaskHeadSchema),
});

/** MMDet `CascadeRoIHead`: a box head per stage (a list), mask heads as one block (repeated) or a list. */
export const cascadeRoIHeadSchema = refine(
  obj({
    type: str({ enum: ['CascadeRoIHead'] }),
    num_stages: int({ min: 1 }),
    stage_loss_weights: list(num({ min: 0 })),
    bbox_roi_extractor: roiExtractorSchema,
    bbox_head: list(bboxHeadSchema),
    mask_roi_extractor: optional(roiExtractorSchema),
    mask_head: optional(oneOf(fcnMaskHeadSchema, list(fcnMaskHeadSchema))),
  }),
  (b) => {
    if (b.stage_loss_weights.length !== b.num_stages) return `stage_loss_weights has ${b.stage_loss_weights.length} entries for num_stages ${b.num_stages}`;
    if (b.bbox_head.length !== b.num_stages) return `bbox_head has ${b.bbox_head.length} entries for num_stages ${b.num_stages}`;
    if (Array.isArray(b.mask_head) && b.mask_head.length !== b.num_stages) return `mask_head has ${b.mask_head.length} entries for num_stages ${b.num_stages}`;
    return undefined;
  },
);

/** `train_cfg.rcnn`. */
export const rcnnTrainCfgSchema = obj({
  assigner: maxIoUAssignerSchema,
  sampler: randomSamplerSchema,
  mask_size: optional(int({ min: 1 }), 28),
  pos_weight: optional(num({ min: -1, max: -1 }), -1),
  debug: optional(bool()),
});

export function buildRoIExtractor(b: Infer<typeof roiExtractorSchema>): SingleRoIExtractor {
  const l = b.roi_layer;
  return new SingleRoIExtractor({
    outputSize: [l.output_size, l.output_size], samplingRatio: l.sampling_ratio, aligned: l.aligned,
    featmapStrides: b.featmap_strides, finestScale: b.finest_scale,
  });
}

type At = { file?: string; path: string };
type BBoxHeadBlock = Infer<typeof bboxHeadSchema>;
type MaskHeadBlock = Infer<typeof fcnMaskHeadSchema>;
type ExtractorBlock = Infer<typeof roiExtractorSchema>;

function configError(at: At, key: string, msg: string, value: unknown): ConfigError {
  return new ConfigError(`${where(at.file, `${at.path}.${key}`)}: ${msg}`, { file: at.file, path: `${at.path}.${key}`, value });
}

/** A box head from its block, checked against its RoI extractor; `key` names it for errors. */
function buildBBoxHead(bh: BBoxHeadBlock, extractor: ExtractorBlock, at: At, key: string): ConvFCBBoxHead {
  if (bh.in_channels !== extractor.out_channels) {
    throw configError(at, `${key}.in_channels`, `${bh.in_channels} differs from bbox_roi_extractor.out_channels ${extractor.out_channels}`, bh.in_channels);
  }
  if (bh.roi_feat_size !== extractor.roi_layer.output_size) {
    throw configError(at, `${key}.roi_feat_size`, `${bh.roi_feat_size} differs from bbox_roi_extractor.roi_layer.output_size ${extractor.roi_layer.output_size}`, bh.roi_feat_size);
  }
  const layout = BBOX_HEAD_LAYOUT[bh.type];
  return new ConvFCBBoxHead({
    inChannels: bh.in_channels, roiFeatSize: bh.roi_feat_size, fcOutChannels: bh.fc_out_channels, numClasses: bh.num_classes,
    numSharedConvs: bh.num_shared_convs ?? layout.convs, numSharedFcs: bh.num_shared_fcs ?? layout.fcs, convOutChannels: bh.conv_out_channels,
    ...(bh.norm_cfg ? normOf(bh.norm_cfg) : { norm: 'none' }),
    bboxCoder: new DeltaXYWHBBoxCoder(deltaCoderOptions(bh.bbox_coder)), regClassAgnostic: bh.reg_class_agnostic,
    regDecodedBbox: bh.reg_decoded_bbox,
    lossClsWeight: bh.loss_cls?.loss_weight, lossBboxWeight: bh.loss_bbox?.loss_weight, lossBbox: boxLossSpec(bh.loss_bbox),
  });
}

/** A mask head from its block, checked against the box head's classes and its RoI extractor. */
function buildMaskHead(mh: MaskHeadBlock, numClasses: number, extractor: ExtractorBlock | undefined, at: At, key: string): FCNMaskHead {
  if (!extractor) throw configError(at, 'mask_roi_extractor', 'a mask_head needs a mask_roi_extractor', undefined);
  if (mh.num_classes !== numClasses) throw configError(at, `${key}.num_classes`, `${mh.num_classes} differs from bbox_head.num_classes ${numClasses}`, mh.num_classes);
  if (mh.in_channels !== extractor.out_channels) {
    throw configError(at, `${key}.in_channels`, `${mh.in_channels} differs from mask_roi_extractor.out_channels ${extractor.out_channels}`, mh.in_channels);
  }
  return new FCNMaskHead({
    inChannels: mh.in_channels, convOutChannels: mh.conv_out_channels, numConvs: mh.num_convs, numClasses: mh.num_classes,
    lossWeight: mh.loss_mask?.loss_weight,
  });
}

/** Builds a StandardRoIHead; `at` names the block for errors. */
export function buildStandardRoIHead(b: Infer<typeof standardRoIHeadSchema>, at: At): StandardRoIHead {
  const bboxHead = buildBBoxHead(b.bbox_head, b.bbox_roi_extractor, at, 'bbox_head');
  const mh = b.mask_head;
  return new StandardRoIHead({
    bboxRoiExtractor: buildRoIExtractor(b.bbox_roi_extractor),
    bboxHead,
    maskRoiExtractor: mh && b.mask_roi_extractor ? buildRoIExtractor(b.mask_roi_extractor) : undefined,
    maskHead: mh ? buildMaskHead(mh, bboxHead.numClasses, b.mask_roi_extractor, at, 'mask_head') : undefined,
  });
}

/** Builds a CascadeRoIHead; `at` names the block for errors. */
export function buildCascadeRoIHead(b: Infer<typeof cascadeRoIHeadSchema>, at: At): CascadeRoIHead {
  const bboxHeads = b.bbox_head.map((bh, i) => buildBBoxHead(bh, b.bbox_roi_extractor, at, `bbox_head.${i}`));
  bboxHeads.forEach((h, i) => {
    if (h.numClasses !== bboxHeads[0].numClasses) throw configError(at, `bbox_head.${i}.num_classes`, `${h.numClasses} differs from bbox_head.0.num_classes ${bboxHeads[0].numClasses}`, h.numClasses);
  });
  const mh = b.mask_head;
  const maskBlocks = mh === undefined ? undefined : Array.isArray(mh) ? mh : Array.from({ length: b.num_stages }, () => mh);
  return new CascadeRoIHead({
    stageLossWeights: b.stage_loss_weights,
    bboxRoiExtractor: buildRoIExtractor(b.bbox_roi_extractor),
    bboxHeads,
    maskRoiExtractor: maskBlocks && b.mask_roi_extractor ? buildRoIExtractor(b.mask_roi_extractor) : undefined,
    maskHeads: maskBlocks?.map((m, i) => buildMaskHead(m, bboxHeads[0].numClasses, b.mask_roi_extractor, at, Array.isArray(mh) ? `mask_head.${i}` : 'mask_head')),
  });
}

export function buildRcnnTrainCfg(b: Infer<typeof rcnnTrainCfgSchema>): RcnnTrainCfg {
  return {
    assigner: new MaxIoUAssigner(maxIoUAssignerOptions(b.assigner)),
    sampler: new RandomSampler(randomSamplerOptions(b.sampler)),
    maskSize: b.mask_size,
  };
}
