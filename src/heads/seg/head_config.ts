/**
 * Config schema pieces shared by the decode heads (mmseg `BaseDecodeHead` keys) and their
 * conversion to {@link DecodeHeadOptions}. Each head's own schema sits beside its class.
 */
import { ConfigError, where } from '../../config/errors.ts';
import { bool, int, list, nul, num, obj, oneOf, optional, refine, str, type Infer } from '../../config/schema.ts';
import { normCfgSchema, normOf } from '../norm_config.ts';
import type { DecodeHeadOptions } from './decode_head.ts';

const onlyFalse = refine(bool(), (v) => (v ? 'only false is supported' : undefined));

/** `loss_decode: {type: CrossEntropyLoss, use_sigmoid: false, loss_weight, avg_non_ignore, class_weight}`. */
const lossDecodeSchema = obj({
  type: str({ enum: ['CrossEntropyLoss'] }),
  use_sigmoid: optional(onlyFalse),
  loss_weight: optional(num({ min: 0 })),
  avg_non_ignore: optional(bool()),
  class_weight: optional(oneOf(list(num({ min: 0 })), nul())),
});

/** `sampler: {type: OHEMPixelSampler, thresh?, min_kept}` (null: every pixel). */
const samplerSchema = obj({
  type: str({ enum: ['OHEMPixelSampler'] }),
  thresh: optional(oneOf(num({ min: 0, max: 1 }), nul())),
  min_kept: int({ min: 1 }),
});

/** The keys every decode head takes (the heads add `in_channels`, `in_index` and their own). */
export const DECODE_HEAD_FIELDS = {
  num_classes: int({ min: 1 }),
  channels: optional(int({ min: 1 })),
  dropout_ratio: optional(num({ min: 0, max: 1 })),
  norm_cfg: optional(normCfgSchema),
  align_corners: optional(onlyFalse),
  ignore_index: optional(int({ min: 0 })),
  loss_decode: optional(lossDecodeSchema),
  loss_weight: optional(num({ min: 0 })),
  sampler: optional(oneOf(samplerSchema, nul())),
};

const common = obj(DECODE_HEAD_FIELDS);
type CommonBlock = Infer<typeof common>;

/** A decode-head schema with `DECODE_HEAD_FIELDS`, one loss weight at most. */
export function noDoubleLossWeight<T extends CommonBlock>(b: T): string | undefined {
  return b.loss_weight !== undefined && b.loss_decode?.loss_weight !== undefined ? 'give loss_weight or loss_decode.loss_weight, not both' : undefined;
}

/** {@link DecodeHeadOptions} of a validated head block (defaults left to the head classes). */
export function decodeHeadOptions(b: CommonBlock): DecodeHeadOptions {
  const loss = b.loss_decode;
  const lossWeight = b.loss_weight ?? loss?.loss_weight;
  return {
    numClasses: b.num_classes,
    ...(b.channels !== undefined ? { channels: b.channels } : {}),
    ...(b.dropout_ratio !== undefined ? { dropoutRatio: b.dropout_ratio } : {}),
    ...(b.ignore_index !== undefined ? { ignoreIndex: b.ignore_index } : {}),
    ...normOf(b.norm_cfg),
    ...(b.sampler ? { sampler: { minKept: b.sampler.min_kept, ...(b.sampler.thresh != null ? { thresh: b.sampler.thresh } : {}) } } : {}),
    ...(lossWeight !== undefined ? { lossWeight } : {}),
    ...(loss?.avg_non_ignore !== undefined ? { avgNonIgnore: loss.avg_non_ignore } : {}),
    ...(loss?.class_weight ? { classWeights: loss.class_weight } : {}),
  };
}

/** Where a head block is, for cross-checks against the backbone made while building. */
export interface HeadSite {
  file?: string;
  path: string;
}

/** A ConfigError at `site.path.key`. */
export function headError(site: HeadSite, key: string, msg: string, value: unknown, allowed?: string): ConfigError {
  const path = `${site.path}.${key}`;
  return new ConfigError(`${where(site.file, path)}: ${msg}`, { file: site.file, path, value, allowed });
}
