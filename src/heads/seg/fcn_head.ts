/**
 * mmseg `FCNHead`: `numConvs` 3x3 ConvModules (`convs.{i}.*`), optional `conv_cat` over
 * [input, convs(input)], then dropout + `conv_seg`. Reads `inputs[inIndex]`. Used as the UperNet
 * auxiliary head on stage 3 (inIndex 2, channels 256, lossWeight 0.4).
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from '../../nn/module.ts';
import { ConvModule } from '../../nn/conv_module.ts';
import { bool, int, obj, optional, refine, str, type Infer } from '../../config/schema.ts';
import { BaseDecodeHead, type DecodeHeadOptions } from './decode_head.ts';
import { DECODE_HEAD_FIELDS, decodeHeadOptions, headError, noDoubleLossWeight, type HeadSite } from './head_config.ts';

export interface FCNHeadOptions extends DecodeHeadOptions {
  inChannels: number;
  numConvs?: number;
  concatInput?: boolean;
  kernelSize?: number;
  dilation?: number;
  inIndex?: number;
}

class ConvStack extends Module {
  constructor(readonly items: ConvModule[]) {
    super();
    items.forEach((m, i) => this.addModule(String(i), m));
  }
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.items.reduce((y, m) => m.forward(y), x);
  }
}

export class FCNHead extends BaseDecodeHead {
  readonly inChannels: number;
  readonly inIndex: number;
  readonly convs?: ConvStack;
  readonly convCat?: ConvModule;

  constructor(opts: FCNHeadOptions) {
    super({ ...opts, channels: opts.channels ?? 256, lossWeight: opts.lossWeight ?? 0.4 });
    this.inChannels = opts.inChannels;
    this.inIndex = opts.inIndex ?? 2;
    const numConvs = opts.numConvs ?? 1;
    const k = opts.kernelSize ?? 3;
    const dil = opts.dilation ?? 1;
    const pad = Math.floor(k / 2) * dil;
    const norm = this.normCfg;
    if (numConvs === 0 && this.inChannels !== this.channels) throw new Error('FCNHead: numConvs=0 needs inChannels == channels');
    this.buildConvSeg();
    if (numConvs > 0) {
      const list: ConvModule[] = [];
      for (let i = 0; i < numConvs; i++) list.push(new ConvModule(i === 0 ? this.inChannels : this.channels, this.channels, k, { padding: pad, dilation: dil, ...norm }));
      this.convs = this.addModule('convs', new ConvStack(list));
    }
    if (opts.concatInput) {
      this.convCat = this.addModule('conv_cat', new ConvModule(this.inChannels + this.channels, this.channels, k, { padding: Math.floor(k / 2), ...norm }));
    }
  }

  forward(inputs: tf.Tensor4D[]): tf.Tensor4D {
    return tf.tidy(() => {
      const x = inputs[this.inIndex];
      if (!x) throw new Error(`FCNHead: no input at index ${this.inIndex} (${inputs.length} given)`);
      let feat = this.convs ? this.convs.forward(x) : x;
      if (this.convCat) feat = this.convCat.forward(tf.concat([x, feat], 3));
      return this.clsSeg(feat);
    });
  }
}

/** `{type: FCNHead, in_channels?, in_index (default 2), num_convs, concat_input, kernel_size, dilation, ...}`. */
export const fcnHeadSchema = refine(
  obj({
    type: str({ enum: ['FCNHead'] }),
    ...DECODE_HEAD_FIELDS,
    in_channels: optional(int({ min: 1 })),
    in_index: optional(int({ min: 0 }), 2),
    num_convs: optional(int({ min: 0 })),
    concat_input: optional(bool()),
    kernel_size: optional(int({ min: 1 })),
    dilation: optional(int({ min: 1 })),
  }),
  noDoubleLossWeight,
);

/** An FCNHead on backbone output `in_index` (`channels[i]` of output i). */
export function buildFCNHead(b: Infer<typeof fcnHeadSchema>, channels: readonly number[], site: HeadSite): FCNHead {
  const idx = b.in_index;
  if (idx >= channels.length) throw headError(site, 'in_index', `${idx} but the backbone returns ${channels.length} feature maps`, idx, `an integer < ${channels.length}`);
  if (b.in_channels !== undefined && b.in_channels !== channels[idx]) {
    throw headError(site, 'in_channels', `${b.in_channels} does not match backbone output ${idx} (${channels[idx]} channels)`, b.in_channels);
  }
  return new FCNHead({
    ...decodeHeadOptions(b),
    inChannels: channels[idx],
    inIndex: idx,
    ...(b.num_convs !== undefined ? { numConvs: b.num_convs } : {}),
    ...(b.concat_input !== undefined ? { concatInput: b.concat_input } : {}),
    ...(b.kernel_size !== undefined ? { kernelSize: b.kernel_size } : {}),
    ...(b.dilation !== undefined ? { dilation: b.dilation } : {}),
  });
}
