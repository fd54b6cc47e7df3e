/**
 * The `model: {type: EncoderDecoder, ...}` block (MMSeg layout): its schema and its builder.
 *
 *   model:
 *     type: EncoderDecoder
 *     backbone: {type: Conv2Former, ...}              (src/backbone/conv2former_build.ts)
 *     decode_head: {type: UPerHead | FCNHead, ...}    (src/heads/seg/)
 *     auxiliary_head: {type: FCNHead, ...} | null
 *     train_cfg: {}                                   (segmentors have no training options)
 *     test_cfg: {mode: whole | slide, crop_size, stride, aug: {scales, flip}}
 *
 * Head `in_channels` default to the backbone's `featureInfo`.
 */
import { byType, bool, int, list, nul, num, obj, oneOf, optional, refine, str, type Infer } from '../config/schema.ts';
import { buildConv2Former, conv2formerSchema } from '../backbone/conv2former_build.ts';
import { buildFCNHead, fcnHeadSchema } from '../heads/seg/fcn_head.ts';
import { buildUPerHead, uperHeadSchema } from '../heads/seg/uper_head.ts';
import { DEFAULT_TTA_SCALES, EncoderDecoder } from './encoder_decoder.ts';
import type { ModelBuildOptions } from './model.ts';

const pair = list(int({ min: 1 }), { len: 2 });

/** A segmentor's `test_cfg`; a detector's keys (score_thr, nms, ...) are unknown here. */
export const segTestCfgSchema = refine(
  obj({
    mode: str({ enum: ['whole', 'slide'] }),
    crop_size: optional(pair),
    stride: optional(pair),
    aug: optional(obj({ scales: optional(list(num({ min: 0.01 }))), flip: optional(bool()) })),
  }),
  // Sliding-window inference cannot guess its window.
  (t) => (t.mode === 'slide' && (!t.crop_size || !t.stride) ? "mode 'slide' needs 'crop_size' and 'stride'" : undefined),
);

export const encoderDecoderSchema = obj({
  type: str({ enum: ['EncoderDecoder'] }),
  backbone: byType('backbone type', { Conv2Former: conv2formerSchema }),
  decode_head: byType('decode head type', { UPerHead: uperHeadSchema, FCNHead: fcnHeadSchema }),
  auxiliary_head: optional(oneOf(byType('auxiliary head type', { FCNHead: fcnHeadSchema }), nul())),
  train_cfg: optional(oneOf(obj({}), nul())),
  test_cfg: optional(segTestCfgSchema, { mode: 'whole', crop_size: undefined, stride: undefined, aug: undefined }),
  // MMSeg's `pretrained: null`; weights come from backbone.checkpoint.
  pretrained: optional(refine(oneOf(nul(), str()), (v) => (v === null ? undefined : 'use backbone.checkpoint instead'))),
});

export type EncoderDecoderBlock = Infer<typeof encoderDecoderSchema>;

/** Builds an {@link EncoderDecoder} from a validated block. */
export async function buildEncoderDecoder(m: EncoderDecoderBlock, opts: ModelBuildOptions): Promise<EncoderDecoder> {
  const { file, path } = opts;
  const backbone = await buildConv2Former(m.backbone, { log: opts.log, loadCheckpoint: opts.loadCheckpoint, file, path: `${path}.backbone` });
  const channels = backbone.featureInfo.map((f) => f.channels);
  const d = m.decode_head;
  const decodeSite = { file, path: `${path}.decode_head` };
  const decodeHead = d.type === 'UPerHead' ? buildUPerHead(d, channels, decodeSite) : buildFCNHead(d, channels, decodeSite);
  const aux = m.auxiliary_head;
  const auxiliaryHead = aux ? buildFCNHead(aux, channels, { file, path: `${path}.auxiliary_head` }) : undefined;
  const t = m.test_cfg;
  return new EncoderDecoder({
    backbone,
    decodeHead,
    auxiliaryHead,
    testCfg: {
      mode: t.mode,
      cropSize: t.crop_size as [number, number] | undefined,
      stride: t.stride as [number, number] | undefined,
      aug: { scales: t.aug?.scales ?? DEFAULT_TTA_SCALES, flip: t.aug?.flip ?? true },
    },
  });
}
