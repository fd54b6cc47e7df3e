/**
 * Builds a segmentor from an MMSeg-like `model:` block:
 *
 *   model:
 *     type: EncoderDecoder
 *     backbone: {type: Conv2Former, variant: t | {dims, depths, kernel_size}, drop_path_rate,
 *                out_indices, frozen_stages?, out_norms? (default true), checkpoint?}
 *     decode_head: {type: UPerHead, in_channels?, in_index?, channels, pool_scales, num_classes,
 *                   dropout_ratio, norm_cfg: {type: BN|GN}, align_corners?, ignore_index?, loss_decode?,
 *                   sampler?: {type: OHEMPixelSampler, thresh?, min_kept}}
 *     auxiliary_head: {type: FCNHead, in_channels?, in_index, channels, num_convs, concat_input,
 *                      num_classes, dropout_ratio, norm_cfg, loss_weight | loss_decode: {loss_weight}}
 *
 * `type:` values are looked up in explicit tables (an unknown one lists the known ones); an unknown
 * key fails naming its key path. Head `in_channels` default to the backbone's `featureInfo`.
 * A backbone `checkpoint` is read first (its kernel size wins over the config's, with a log line),
 * then loaded non-strictly into the backbone, logging the missing/unexpected key counts.
 */
import { createConv2Former, CONV2FORMER_VARIANTS, type Conv2Former, type Conv2FormerConfig, type Conv2FormerVariant } from '../backbone/conv2former.ts';
import { kernelSizeFromStateDict } from '../backbone/conv2former_checkpoint.ts';
import { FCNHead } from '../heads/seg/fcn_head.ts';
import { UPerHead } from '../heads/seg/uper_head.ts';
import type { BaseDecodeHead } from '../heads/seg/decode_head.ts';
import type { NormOptions } from '../nn/conv_module.ts';
import type { OhemOptions } from '../ops/pixel_sampler.ts';
import { readCheckpointFile } from '../nn/checkpoint.ts';
import { EncoderDecoder } from './encoder_decoder.ts';

type Block = Record<string, unknown>;

export interface BuildSegmentorOptions {
  /** Receives informational lines (checkpoint loading); default `console.log`. */
  log?: (line: string) => void;
}

/** Segmentor types that exist; the others below are recognised but not built yet. */
export const SEGMENTORS = ['EncoderDecoder'] as const;
/** Recognised model types that are planned but not implemented. */
export const PLANNED_MODELS = ['MaskRCNN', 'CascadeMaskRCNN'] as const;
export const BACKBONES = ['Conv2Former'] as const;
export const DECODE_HEADS = ['UPerHead', 'FCNHead'] as const;
export const AUXILIARY_HEADS = ['FCNHead'] as const;

function isBlock(v: unknown): v is Block {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkBlock(v: unknown, where: string): Block {
  if (!isBlock(v)) throw new Error(`${where}: expected a mapping, got ${Array.isArray(v) ? 'a list' : JSON.stringify(v)}`);
  return v;
}

function checkKeys(b: Block, allowed: readonly string[], where: string, what: string): void {
  for (const k of Object.keys(b)) {
    if (!allowed.includes(k)) throw new Error(`${where}.${k}: unknown key for ${what}; allowed keys: ${allowed.join(', ')}`);
  }
}

function checkType(b: Block, known: readonly string[], where: string, what: string): string {
  const t = b.type;
  if (typeof t !== 'string') throw new Error(`${where}.type: expected a ${what} type name, got ${JSON.stringify(t)}`);
  if (!known.includes(t)) throw new Error(`${where}.type: unknown ${what} type '${t}'; known: ${known.join(', ')}`);
  return t;
}

function int(v: unknown, where: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new Error(`${where}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function num(v: unknown, where: string, min = 0, max = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw new Error(`${where}: expected a number in [${min}, ${max}], got ${JSON.stringify(v)}`);
  return v;
}

function intList(v: unknown, where: string, min = 0, len?: number): number[] {
  if (!Array.isArray(v) || (len !== undefined && v.length !== len)) throw new Error(`${where}: expected a list of ${len ?? 'some'} integers, got ${JSON.stringify(v)}`);
  return v.map((x, i) => int(x, `${where}[${i}]`, min));
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') throw new Error(`${where}: expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** `norm_cfg: {type: BN|SyncBN|GN, requires_grad?, num_groups?}` → the heads' norm (SyncBN is BN on one device). */
function normOf(v: unknown, where: string): NormOptions {
  if (v === undefined) return { norm: 'BN' };
  const b = checkBlock(v, where);
  checkKeys(b, ['type', 'requires_grad', 'num_groups'], where, 'norm_cfg');
  const t = checkType(b, ['BN', 'SyncBN', 'GN'], where, 'norm');
  if (b.requires_grad !== undefined && b.requires_grad !== true) throw new Error(`${where}.requires_grad: only true is supported`);
  if (t !== 'GN') {
    if (b.num_groups !== undefined) throw new Error(`${where}.num_groups: only with type GN`);
    return { norm: 'BN' };
  }
  return { norm: 'GN', ...(b.num_groups !== undefined ? { gnGroups: int(b.num_groups, `${where}.num_groups`, 1) } : {}) };
}

/** `loss_decode: {type: CrossEntropyLoss, use_sigmoid: false, loss_weight, avg_non_ignore, class_weight}`. */
function lossOf(v: unknown, where: string): { lossWeight?: number; avgNonIgnore?: boolean; classWeights?: number[] } {
  if (v === undefined) return {};
  const b = checkBlock(v, where);
  checkKeys(b, ['type', 'use_sigmoid', 'loss_weight', 'avg_non_ignore', 'class_weight'], where, 'loss_decode');
  checkType(b, ['CrossEntropyLoss'], where, 'loss');
  if (b.use_sigmoid !== undefined && b.use_sigmoid !== false) throw new Error(`${where}.use_sigmoid: only false is supported`);
  const out: { lossWeight?: number; avgNonIgnore?: boolean; classWeights?: number[] } = {};
  if (b.loss_weight !== undefined) out.lossWeight = num(b.loss_weight, `${where}.loss_weight`);
  if (b.avg_non_ignore !== undefined) out.avgNonIgnore = bool(b.avg_non_ignore, `${where}.avg_non_ignore`);
  if (b.class_weight !== undefined && b.class_weight !== null) {
    if (!Array.isArray(b.class_weight)) throw new Error(`${where}.class_weight: expected a list of numbers`);
    out.classWeights = b.class_weight.map((x, i) => num(x, `${where}.class_weight[${i}]`));
  }
  return out;
}

/** The Conv2Former architecture named by `variant` (a name or `{dims, depths, kernel_size}`). */
function variantOf(v: unknown, where: string): Conv2FormerConfig {
  if (v === undefined) throw new Error(`${where}: missing (a name: ${Object.keys(CONV2FORMER_VARIANTS).join(', ')}, or {dims, depths, kernel_size})`);
  if (typeof v === 'string') {
    if (!Object.hasOwn(CONV2FORMER_VARIANTS, v)) throw new Error(`${where}: unknown Conv2Former variant '${v}'; known: ${Object.keys(CONV2FORMER_VARIANTS).join(', ')}`);
    return { ...CONV2FORMER_VARIANTS[v as Conv2FormerVariant] };
  }
  const b = checkBlock(v, where);
  checkKeys(b, ['dims', 'depths', 'kernel_size'], where, 'a custom Conv2Former variant');
  return {
    dims: intList(b.dims, `${where}.dims`, 1, 4) as Conv2FormerConfig['dims'],
    depths: intList(b.depths, `${where}.depths`, 1, 4) as Conv2FormerConfig['depths'],
    kernelSize: b.kernel_size === undefined ? 7 : int(b.kernel_size, `${where}.kernel_size`, 1),
  };
}

async function buildBackbone(b: Block, where: string, log: (l: string) => void): Promise<Conv2Former> {
  checkKeys(b, ['type', 'variant', 'drop_path_rate', 'out_indices', 'frozen_stages', 'out_norms', 'checkpoint'], where, 'Conv2Former');
  checkType(b, BACKBONES, where, 'backbone');
  const arch = variantOf(b.variant, `${where}.variant`);
  const outIndices = b.out_indices === undefined ? [0, 1, 2, 3] : intList(b.out_indices, `${where}.out_indices`, 0);
  if (outIndices.some((i) => i > 3)) throw new Error(`${where}.out_indices: stages are 0..3, got [${outIndices.join(', ')}]`);
  const opts = {
    outIndices,
    dropPathRate: b.drop_path_rate === undefined ? 0 : num(b.drop_path_rate, `${where}.drop_path_rate`, 0, 1),
    frozenStages: b.frozen_stages === undefined ? -1 : int(b.frozen_stages, `${where}.frozen_stages`, -1),
    outNorms: b.out_norms === undefined ? true : bool(b.out_norms, `${where}.out_norms`),
  };
  const ckpt = b.checkpoint;
  if (ckpt === undefined || ckpt === null) return createConv2Former(arch, opts);
  if (typeof ckpt !== 'string') throw new Error(`${where}.checkpoint: expected a path, got ${JSON.stringify(ckpt)}`);
  const dict = await readCheckpointFile(ckpt);
  const k = kernelSizeFromStateDict(dict, ckpt);
  if (k !== arch.kernelSize) {
    log(`backbone: ${ckpt} has kernel size ${k}, the config says ${arch.kernelSize}; using ${k}`);
    arch.kernelSize = k;
  }
  const backbone = createConv2Former(arch, { ...opts, init: 'random' });
  let res;
  try {
    res = backbone.loadStateDict(dict, { strict: false });
  } catch (err) {
    throw new Error(`${where}.checkpoint: cannot load ${ckpt}: ${(err as Error).message}`);
  }
  log(`backbone: loaded ${ckpt} (${res.missing.length} missing keys, ${res.unexpected.length} unexpected keys)`);
  return backbone;
}

function inChannelsOf(b: Block, where: string, backbone: Conv2Former, multi: boolean): number[] | number {
  const feats = backbone.featureInfo.map((f) => f.channels);
  if (multi) {
    if (b.in_channels === undefined) return feats;
    const got = intList(b.in_channels, `${where}.in_channels`, 1);
    if (got.join() !== feats.join()) throw new Error(`${where}.in_channels: [${got.join(', ')}] does not match the backbone outputs [${feats.join(', ')}]`);
    return got;
  }
  const idx = b.in_index === undefined ? 2 : int(b.in_index, `${where}.in_index`, 0);
  if (idx >= feats.length) throw new Error(`${where}.in_index: ${idx} but the backbone returns ${feats.length} feature maps`);
  if (b.in_channels === undefined) return feats[idx];
  const got = int(b.in_channels, `${where}.in_channels`, 1);
  if (got !== feats[idx]) throw new Error(`${where}.in_channels: ${got} does not match backbone output ${idx} (${feats[idx]} channels)`);
  return got;
}

const HEAD_COMMON = ['type', 'in_channels', 'in_index', 'channels', 'num_classes', 'dropout_ratio', 'norm_cfg', 'align_corners', 'ignore_index', 'loss_decode', 'loss_weight', 'sampler'];

/** `sampler: {type: OHEMPixelSampler, thresh?, min_kept}` (null/absent: every pixel). */
function samplerOf(v: unknown, where: string): { sampler?: OhemOptions } {
  if (v === undefined || v === null) return {};
  const b = checkBlock(v, where);
  checkType(b, ['OHEMPixelSampler'], where, 'pixel sampler');
  checkKeys(b, ['type', 'thresh', 'min_kept'], where, 'OHEMPixelSampler');
  if (b.min_kept === undefined) throw new Error(`${where}.min_kept: missing (pixels kept per image at least, e.g. 100000 for 512x512 crops)`);
  return {
    sampler: {
      minKept: int(b.min_kept, `${where}.min_kept`, 1),
      ...(b.thresh !== undefined && b.thresh !== null ? { thresh: num(b.thresh, `${where}.thresh`, 0, 1) } : {}),
    },
  };
}

function commonHeadOpts(b: Block, where: string) {
  if (b.num_classes === undefined) throw new Error(`${where}.num_classes: missing`);
  const loss = lossOf(b.loss_decode, `${where}.loss_decode`);
  if (b.loss_weight !== undefined) {
    if (loss.lossWeight !== undefined) throw new Error(`${where}: give loss_weight or loss_decode.loss_weight, not both`);
    loss.lossWeight = num(b.loss_weight, `${where}.loss_weight`);
  }
  if (b.align_corners !== undefined && b.align_corners !== false) throw new Error(`${where}.align_corners: only false is supported`);
  return {
    numClasses: int(b.num_classes, `${where}.num_classes`, 1),
    ...(b.channels !== undefined ? { channels: int(b.channels, `${where}.channels`, 1) } : {}),
    ...(b.dropout_ratio !== undefined ? { dropoutRatio: num(b.dropout_ratio, `${where}.dropout_ratio`, 0, 1) } : {}),
    ...(b.ignore_index !== undefined ? { ignoreIndex: int(b.ignore_index, `${where}.ignore_index`, 0) } : {}),
    ...normOf(b.norm_cfg, `${where}.norm_cfg`),
    ...samplerOf(b.sampler, `${where}.sampler`),
    ...loss,
  };
}

function buildFcn(b: Block, where: string, backbone: Conv2Former): FCNHead {
  checkKeys(b, [...HEAD_COMMON, 'num_convs', 'concat_input', 'kernel_size', 'dilation'], where, 'FCNHead');
  return new FCNHead({
    ...commonHeadOpts(b, where),
    inChannels: inChannelsOf(b, where, backbone, false) as number,
    inIndex: b.in_index === undefined ? 2 : int(b.in_index, `${where}.in_index`, 0),
    ...(b.num_convs !== undefined ? { numConvs: int(b.num_convs, `${where}.num_convs`, 0) } : {}),
    ...(b.concat_input !== undefined ? { concatInput: bool(b.concat_input, `${where}.concat_input`) } : {}),
    ...(b.kernel_size !== undefined ? { kernelSize: int(b.kernel_size, `${where}.kernel_size`, 1) } : {}),
    ...(b.dilation !== undefined ? { dilation: int(b.dilation, `${where}.dilation`, 1) } : {}),
  });
}

function buildDecodeHead(b: Block, where: string, backbone: Conv2Former): BaseDecodeHead {
  const t = checkType(b, DECODE_HEADS, where, 'decode head');
  if (t === 'FCNHead') return buildFcn(b, where, backbone);
  checkKeys(b, [...HEAD_COMMON, 'pool_scales'], where, 'UPerHead');
  if (b.in_index !== undefined) {
    const idx = intList(b.in_index, `${where}.in_index`, 0);
    const want = backbone.featureInfo.map((_, i) => i);
    if (idx.join() !== want.join()) throw new Error(`${where}.in_index: UPerHead takes every backbone output ([${want.join(', ')}]), got [${idx.join(', ')}]`);
  }
  return new UPerHead({
    ...commonHeadOpts(b, where),
    inChannels: inChannelsOf(b, where, backbone, true) as number[],
    ...(b.pool_scales !== undefined ? { poolScales: intList(b.pool_scales, `${where}.pool_scales`, 1) } : {}),
  });
}

/**
 * Builds the model of `model` (the config's `model:` block).
 * @param where the config location for messages, e.g. `configs/x.yaml: model`.
 * @throws naming the key path for unknown keys/types, bad values, and checkpoint problems.
 */
export async function buildSegmentor(model: Record<string, unknown>, where: string, opts: BuildSegmentorOptions = {}): Promise<EncoderDecoder> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const m = checkBlock(model, where);
  const t = m.type;
  if (typeof t === 'string' && (PLANNED_MODELS as readonly string[]).includes(t)) {
    throw new Error(`${where}.type: '${t}' is not implemented yet; implemented: ${SEGMENTORS.join(', ')}`);
  }
  checkType(m, SEGMENTORS, where, 'model');
  checkKeys(m, ['type', 'backbone', 'decode_head', 'auxiliary_head', 'pretrained'], where, 'EncoderDecoder');
  if (m.pretrained !== undefined && m.pretrained !== null) throw new Error(`${where}.pretrained: use ${where}.backbone.checkpoint instead`);
  if (m.backbone === undefined) throw new Error(`${where}.backbone: missing`);
  if (m.decode_head === undefined) throw new Error(`${where}.decode_head: missing`);
  const backbone = await buildBackbone(checkBlock(m.backbone, `${where}.backbone`), `${where}.backbone`, log);
  const decodeHead = buildDecodeHead(checkBlock(m.decode_head, `${where}.decode_head`), `${where}.decode_head`, backbone);
  let auxiliaryHead: FCNHead | undefined;
  if (m.auxiliary_head !== undefined && m.auxiliary_head !== null) {
    const aw = `${where}.auxiliary_head`;
    const ab = checkBlock(m.auxiliary_head, aw);
    checkType(ab, AUXILIARY_HEADS, aw, 'auxiliary head');
    auxiliaryHead = buildFcn(ab, aw, backbone);
  }
  return new EncoderDecoder({ backbone, decodeHead, auxiliaryHead });
}
