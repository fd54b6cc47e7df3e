/**
 * The `model: {type: MaskRCNN | CascadeMaskRCNN, ...}` blocks (MMDetection 2.x layout): their schemas
 * and one builder (both are two-stage detectors; the cascade's `roi_head` is a CascadeRoIHead and
 * its `train_cfg.rcnn` a list, one block per stage).
 *
 *   model:
 *     type: MaskRCNN
 *     backbone: {type: Conv2Former, ...}       (src/backbone/conv2former_build.ts)
 *     neck: {type: FPN, ...}                   (src/necks/fpn.ts)
 *     rpn_head: {type: RPNHead, ...}           (src/heads/rpn/rpn_config.ts)
 *     roi_head: {type: StandardRoIHead, ...}   (src/heads/roi/roi_head_config.ts)
 *     train_cfg: {rpn, rpn_proposal, rcnn}     assigners, samplers, proposal settings
 *     test_cfg: {rpn, rcnn}                    proposal settings; score_thr, nms, max_per_img, mask_thr_binary
 *
 * The neck's `in_channels` default to the backbone's outputs; the RPN's `in_channels` must equal
 * the neck's `out_channels`.
 */
import { ConfigError, where } from '../config/errors.ts';
import { byType, list, nul, obj, oneOf, optional, refine, str, type Infer } from '../config/schema.ts';
import { buildConv2Former, conv2formerSchema } from '../backbone/conv2former_build.ts';
import { buildFPN, fpnSchema } from '../necks/fpn.ts';
import { proposalCfg, proposalCfgSchema, rcnnTestCfg, rcnnTestCfgSchema } from '../heads/det_config.ts';
import { buildRPNHead, buildRPNTrainCfg, rpnHeadSchema, rpnTrainCfgSchema } from '../heads/rpn/rpn_config.ts';
import {
  buildCascadeRoIHead, buildRcnnTrainCfg, buildStandardRoIHead, cascadeRoIHeadSchema, rcnnTrainCfgSchema, standardRoIHeadSchema,
} from '../heads/roi/roi_head_config.ts';
import { CascadeMaskRCNN, MaskRCNN } from './mask_rcnn.ts';
import type { ModelBuildOptions } from './model.ts';

/** The keys both detectors share, before and after their RoI head and train_cfg (MMDet's key order). */
const detectorFront = {
  backbone: byType('backbone type', { Conv2Former: conv2formerSchema }),
  neck: byType('neck type', { FPN: fpnSchema }),
  rpn_head: rpnHeadSchema,
};
const detectorBack = {
  test_cfg: obj({ rpn: proposalCfgSchema, rcnn: rcnnTestCfgSchema }),
  pretrained: optional(refine(oneOf(nul(), str()), (v) => (v === null ? undefined : 'use backbone.checkpoint instead'))),
};

export const maskRcnnSchema = obj({
  type: str({ enum: ['MaskRCNN'] }),
  ...detectorFront,
  roi_head: byType('roi head type', { StandardRoIHead: standardRoIHeadSchema }),
  train_cfg: obj({ rpn: rpnTrainCfgSchema, rpn_proposal: proposalCfgSchema, rcnn: rcnnTrainCfgSchema }),
  ...detectorBack,
});

export const cascadeMaskRcnnSchema = refine(
  obj({
    type: str({ enum: ['CascadeMaskRCNN'] }),
    ...detectorFront,
    roi_head: byType('roi head type', { CascadeRoIHead: cascadeRoIHeadSchema }),
    train_cfg: obj({ rpn: rpnTrainCfgSchema, rpn_proposal: proposalCfgSchema, rcnn: list(rcnnTrainCfgSchema) }),
    ...detectorBack,
  }),
  (m) => (m.train_cfg.rcnn.length !== m.roi_head.num_stages
    ? `train_cfg.rcnn has ${m.train_cfg.rcnn.length} blocks for roi_head.num_stages ${m.roi_head.num_stages}` : undefined),
);

export type MaskRCNNBlock = Infer<typeof maskRcnnSchema> | Infer<typeof cascadeMaskRcnnSchema>;

/** Builds a {@link MaskRCNN} or {@link CascadeMaskRCNN} from a validated block. */
export async function buildMaskRCNN(m: MaskRCNNBlock, opts: ModelBuildOptions): Promise<MaskRCNN> {
  const { file, path } = opts;
  const backbone = await buildConv2Former(m.backbone, { log: opts.log, loadCheckpoint: opts.loadCheckpoint, file, path: `${path}.backbone` });
  const neck = buildFPN(m.neck, backbone.featureInfo.map((f) => f.channels), { file, path: `${path}.neck` });
  if (m.rpn_head.in_channels !== neck.outChannels) {
    const p = `${path}.rpn_head.in_channels`;
    throw new ConfigError(`${where(file, p)}: ${m.rpn_head.in_channels} differs from the neck's out_channels ${neck.outChannels}`, { file, path: p, value: m.rpn_head.in_channels });
  }
  const Detector = m.type === 'CascadeMaskRCNN' ? CascadeMaskRCNN : MaskRCNN;
  return new Detector({
    backbone,
    neck,
    rpnHead: buildRPNHead(m.rpn_head),
    roiHead: m.type === 'CascadeMaskRCNN'
      ? buildCascadeRoIHead(m.roi_head, { file, path: `${path}.roi_head` })
      : buildStandardRoIHead(m.roi_head, { file, path: `${path}.roi_head` }),
    trainCfg: {
      rpn: buildRPNTrainCfg(m.train_cfg.rpn),
      rpnProposal: proposalCfg(m.train_cfg.rpn_proposal),
      rcnn: Array.isArray(m.train_cfg.rcnn) ? m.train_cfg.rcnn.map(buildRcnnTrainCfg) : buildRcnnTrainCfg(m.train_cfg.rcnn),
    },
    testCfg: { rpn: proposalCfg(m.test_cfg.rpn), rcnn: rcnnTestCfg(m.test_cfg.rcnn) },
  });
}
