/**
 * mmseg `UPerHead` (UperNet): PPM on the last level + FPN, keys as mmseg's state dict:
 * `psp_modules.{i}.1.*`, `bottleneck.*`, `lateral_convs.{i}.*`, `fpn_convs.{i}.*`,
 * `fpn_bottleneck.*`, `conv_seg.*`. Logits at the finest input level (stride 4).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../../nn/module.ts';
import { ModuleList } from '../../nn/container.ts';
import { adaptiveAvgPool2d, resizeBilinear } from '../../ops/resize.ts';
import { ConvModule, type NormOptions } from '../../nn/conv_module.ts';
import { int, list, obj, optional, refine, str, type Infer } from '../../config/schema.ts';
import { BaseDecodeHead, type DecodeHeadOptions } from './decode_head.ts';
import { DECODE_HEAD_FIELDS, decodeHeadOptions, headError, noDoubleLossWeight, type HeadSite } from './head_config.ts';
import { addSavingNothing } from '../../nn/frugal.ts';

/** One PPM branch: `0` = AdaptiveAvgPool2d (no parameters), `1` = 1x1 ConvModule. */
class PPMBranch extends Module {
  readonly conv: ConvModule;
  constructor(readonly scale: number, inChannels: number, channels: number, norm: NormOptions) {
    super();
    this.conv = this.addModule('1', new ConvModule(inChannels, channels, 1, norm));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      const pooled = adaptiveAvgPool2d(x, [this.scale, this.scale]);
      return resizeBilinear(this.conv.forward(pooled), [h, w]);
    });
  }
}

export interface UPerHeadOptions extends DecodeHeadOptions {
  inChannels: number[];
  poolScales?: number[];
}

export class UPerHead extends BaseDecodeHead {
  readonly inChannels: number[];
  readonly poolScales: number[];
  readonly pspModules: ModuleList<PPMBranch>;
  readonly bottleneck: ConvModule;
  readonly lateralConvs: ModuleList<ConvModule>;
  readonly fpnConvs: ModuleList<ConvModule>;
  readonly fpnBottleneck: ConvModule;

  constructor(opts: UPerHeadOptions) {
    super({ ...opts, channels: opts.channels ?? 512 });
    this.inChannels = opts.inChannels;
    this.poolScales = opts.poolScales ?? [1, 2, 3, 6];
    const ch = this.channels;
    const norm = this.normCfg;
    const last = this.inChannels[this.inChannels.length - 1];
    // mmseg registers conv_seg first (BaseDecodeHead.__init__); keep that key order.
    this.buildConvSeg();
    this.pspModules = this.addModule('psp_modules', new ModuleList(this.poolScales.map((s) => new PPMBranch(s, last, ch, norm))));
    this.bottleneck = this.addModule('bottleneck', new ConvModule(last + this.poolScales.length * ch, ch, 3, { padding: 1, ...norm }));
    this.lateralConvs = this.addModule('lateral_convs', new ModuleList(this.inChannels.slice(0, -1).map((c) => new ConvModule(c, ch, 1, norm))));
    this.fpnConvs = this.addModule('fpn_convs', new ModuleList(this.inChannels.slice(0, -1).map(() => new ConvModule(ch, ch, 3, { padding: 1, ...norm }))));
    this.fpnBottleneck = this.addModule('fpn_bottleneck', new ConvModule(this.inChannels.length * ch, ch, 3, { padding: 1, ...norm }));
  }

  private pspForward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const outs = [x, ...this.pspModules.items.map((m) => m.forward(x))];
      return this.bottleneck.forward(tf.concat(outs, 3));
    });
  }

  forward(inputs: tf.Tensor4D[]): tf.Tensor4D {
    if (inputs.length !== this.inChannels.length) throw new Error(`UPerHead: ${inputs.length} inputs, expected ${this.inChannels.length}`);
    return tf.tidy(() => {
      const n = inputs.length;
      const laterals = this.lateralConvs.items.map((conv, i) => conv.forward(inputs[i]));
      laterals.push(this.pspForward(inputs[n - 1]));
      for (let i = n - 1; i > 0; i--) {
        const [, h, w] = laterals[i - 1].shape;
        laterals[i - 1] = addSavingNothing(laterals[i - 1], resizeBilinear(laterals[i], [h, w]));
      }
      const fpnOuts = this.fpnConvs.items.map((conv, i) => conv.forward(laterals[i]));
      fpnOuts.push(laterals[n - 1]);
      const [, h0, w0] = fpnOuts[0].shape;
      for (let i = n - 1; i > 0; i--) fpnOuts[i] = resizeBilinear(fpnOuts[i], [h0, w0]);
      const feat = this.fpnBottleneck.forward(tf.concat(fpnOuts, 3));
      return this.clsSeg(feat);
    });
  }
}

/** `decode_head: {type: UPerHead, in_channels?, in_index?, pool_scales?, ...DECODE_HEAD_FIELDS}`. */
export const uperHeadSchema = refine(
  obj({
    type: str({ enum: ['UPerHead'] }),
    ...DECODE_HEAD_FIELDS,
    in_channels: optional(list(int({ min: 1 }))),
    in_index: optional(list(int({ min: 0 }))),
    pool_scales: optional(list(int({ min: 1 }))),
  }),
  noDoubleLossWeight,
);

/** A UPerHead over every backbone output (`channels[i]` of output i). */
export function buildUPerHead(b: Infer<typeof uperHeadSchema>, channels: readonly number[], site: HeadSite): UPerHead {
  const want = channels.map((_, i) => i);
  if (b.in_index !== undefined && b.in_index.join() !== want.join()) {
    throw headError(site, 'in_index', `UPerHead takes every backbone output ([${want.join(', ')}]), got [${b.in_index.join(', ')}]`, b.in_index);
  }
  if (b.in_channels !== undefined && b.in_channels.join() !== channels.join()) {
    throw headError(site, 'in_channels', `[${b.in_channels.join(', ')}] does not match the backbone outputs [${channels.join(', ')}]`, b.in_channels);
  }
  return new UPerHead({ ...decodeHeadOptions(b), inChannels: [...channels], ...(b.pool_scales ? { poolScales: b.pool_scales } : {}) });
}
