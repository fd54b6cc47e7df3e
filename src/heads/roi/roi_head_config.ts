/**
 * `roi_head: {type: StandardRoIHead, ...}` and `train_cfg.rcnn` (MMDetection 2.x keys): schemas
 * and builders. Both heads' `num_classes` must agree.
 */
import { ConfigError, where } from '../../config/errors.ts';
import { bool, int, list, num, obj, optional, str, type Infer } from '../../config/schema.ts';
import { MaxIoUAssigner } from '../../ops/assigner.ts';
import { DeltaXYWHBBoxCoder } from '../../ops/delta_coder.ts';
import { RandomSampler } from '../../ops/sampler.ts';
import {
  BOX_LOSS_TYPES, boxLossSpec, deltaCoderOptions, deltaCoderSchema, lossSchema, maxIoUAssignerOptions, maxIoUAssignerSchema,
  randomSamplerOptions, randomSamplerSchema,
} from '../det_config.ts';
import { Shared2FCBBoxHead } from './bbox_head.ts';
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

export const shared2FCBBoxHeadSchema = obj({
  type: str({ enum: ['Shared2FCBBoxHead'] }),
  in_channels: int({ min: 1 }),
  fc_out_channels: int({ min: 1 }),
  roi_feat_size: int({ min: 1 }),
  num_classes: int({ min: 1 }),
  bbox_coder: deltaCoderSchema,
  reg_class_agnostic: optional(bool(), false),
  loss_cls: optional(lossSchema(['CrossEntropyLoss'], { useSigmoid: false })),
  loss_bbox: optional(lossSchema(BOX_LOSS_TYPES)),
});

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
  bbox_head: shared2FCBBoxHeadSchema,
  mask_roi_extractor: optional(roiExtractorSchema),
  mask_head: optional(fcnMaskHeadSchema),
});

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

/** Builds a StandardRoIHead; `at` names the block for errors. */
export function buildStandardRoIHead(b: Infer<typeof standardRoIHeadSchema>, at: { file?: string; path: string }): StandardRoIHead {
  const bh = b.bbox_head;
  const bad = (key: string, msg: string, value: unknown) => new ConfigError(`${where(at.file, `${at.path}.${key}`)}: ${msg}`, { file: at.file, path: `${at.path}.${key}`, value });
  if (bh.in_channels !== b.bbox_roi_extractor.out_channels) {
    throw bad('bbox_head.in_channels', `${bh.in_channels} differs from bbox_roi_extractor.out_channels ${b.bbox_roi_extractor.out_channels}`, bh.in_channels);
  }
  if (bh.roi_feat_size !== b.bbox_roi_extractor.roi_layer.output_size) {
    throw bad('bbox_head.roi_feat_size', `${bh.roi_feat_size} differs from bbox_roi_extractor.roi_layer.output_size ${b.bbox_roi_extractor.roi_layer.output_size}`, bh.roi_feat_size);
  }
  const bboxHead = new Shared2FCBBoxHead({
    inChannels: bh.in_channels, roiFeatSize: bh.roi_feat_size, fcOutChannels: bh.fc_out_channels, numClasses: bh.num_classes,
    bboxCoder: new DeltaXYWHBBoxCoder(deltaCoderOptions(bh.bbox_coder)), regClassAgnostic: bh.reg_class_agnostic,
    lossClsWeight: bh.loss_cls?.loss_weight, lossBboxWeight: bh.loss_bbox?.loss_weight, lossBbox: boxLossSpec(bh.loss_bbox),
  });
  const mh = b.mask_head;
  if (mh && !b.mask_roi_extractor) throw bad('mask_roi_extractor', 'a mask_head needs a mask_roi_extractor', undefined);
  if (mh && mh.num_classes !== bh.num_classes) throw bad('mask_head.num_classes', `${mh.num_classes} differs from bbox_head.num_classes ${bh.num_classes}`, mh.num_classes);
  if (mh && mh.in_channels !== b.mask_roi_extractor!.out_channels) {
    throw bad('mask_head.in_channels', `${mh.in_channels} differs from mask_roi_extractor.out_channels ${b.mask_roi_extractor!.out_channels}`, mh.in_channels);
  }
  return new StandardRoIHead({
    bboxRoiExtractor: buildRoIExtractor(b.bbox_roi_extractor),
    bboxHead,
    maskRoiExtractor: mh && b.mask_roi_extractor ? buildRoIExtractor(b.mask_roi_extractor) : undefined,
    maskHead: mh ? new FCNMaskHead({
      inChannels: mh.in_channels, convOutChannels: mh.conv_out_channels, numConvs: mh.num_convs, numClasses: mh.num_classes,
      lossWeight: mh.loss_mask?.loss_weight,
    }) : undefined,
  });
}

export function buildRcnnTrainCfg(b: Infer<typeof rcnnTrainCfgSchema>): RcnnTrainCfg {
  return {
    assigner: new MaxIoUAssigner(maxIoUAssignerOptions(b.assigner)),
    sampler: new RandomSampler(randomSamplerOptions(b.sampler)),
    maskSize: b.mask_size,
  };
}
