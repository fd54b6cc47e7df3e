/**
 * `rpn_head: {type: RPNHead, ...}` and `train_cfg.rpn` (MMDetection 2.x keys): schemas and builders.
 */
import { bool, int, num, obj, optional, str, type Infer } from '../../config/schema.ts';
import { AnchorGenerator } from '../../ops/anchors.ts';
import { MaxIoUAssigner } from '../../ops/assigner.ts';
import { DeltaXYWHBBoxCoder } from '../../ops/delta_coder.ts';
import { RandomSampler } from '../../ops/sampler.ts';
import {
  anchorGeneratorOptions, anchorGeneratorSchema, BOX_LOSS_TYPES, boxLossSpec, deltaCoderOptions, deltaCoderSchema, lossSchema,
  maxIoUAssignerOptions, maxIoUAssignerSchema, randomSamplerOptions, randomSamplerSchema,
} from '../det_config.ts';
import { RPNHead, type RPNTrainCfg } from './rpn_head.ts';

export const rpnHeadSchema = obj({
  type: str({ enum: ['RPNHead'] }),
  in_channels: int({ min: 1 }),
  feat_channels: int({ min: 1 }),
  anchor_generator: anchorGeneratorSchema,
  bbox_coder: deltaCoderSchema,
  loss_cls: optional(lossSchema(['CrossEntropyLoss'], { useSigmoid: true })),
  loss_bbox: optional(lossSchema(BOX_LOSS_TYPES)),
});

/** `train_cfg.rpn`. */
export const rpnTrainCfgSchema = obj({
  assigner: maxIoUAssignerSchema,
  sampler: randomSamplerSchema,
  allowed_border: optional(num(), -1),
  pos_weight: optional(num({ min: -1, max: -1 }), -1),
  debug: optional(bool()),
});

export function buildRPNHead(b: Infer<typeof rpnHeadSchema>): RPNHead {
  return new RPNHead({
    inChannels: b.in_channels,
    featChannels: b.feat_channels,
    anchorGenerator: new AnchorGenerator(anchorGeneratorOptions(b.anchor_generator)),
    bboxCoder: new DeltaXYWHBBoxCoder(deltaCoderOptions(b.bbox_coder)),
    lossClsWeight: b.loss_cls?.loss_weight,
    lossBboxWeight: b.loss_bbox?.loss_weight,
    lossBbox: boxLossSpec(b.loss_bbox),
  });
}

export function buildRPNTrainCfg(b: Infer<typeof rpnTrainCfgSchema>): RPNTrainCfg {
  return {
    assigner: new MaxIoUAssigner(maxIoUAssignerOptions(b.assigner)),
    sampler: new RandomSampler(randomSamplerOptions(b.sampler)),
    allowedBorder: b.allowed_border,
  };
}
