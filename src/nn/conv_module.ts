/**
 * mmcv `ConvModule` (conv → norm → ReLU) on NHWC: keys `conv.weight` (+ `conv.bias` only without a
 * norm, mmcv's bias='auto'), `bn.*` for BN or `gn.*` for GN. Init as mmcv: kaiming-normal
 * (fan_out, relu) conv weights, zero bias, norm weight 1 / bias 0.
 */
import * as tf from '@tensorflow/tfjs';
import { Conv2d } from './conv2d.ts';
import { kaimingFanOut } from './init.ts';
import { BatchNorm2d, GroupNorm } from './norm.ts';
import { Module } from './module.ts';
import { reluSavingOutput } from './frugal.ts';

/** `SyncBN` is BN whose statistics span every process when training is distributed (see BatchNorm2d.syncRequested). */
export type NormKind = 'BN' | 'SyncBN' | 'GN' | 'none';

/** A ConvModule's norm: kind (default BN) and, for GN, the group count (default 32, as mmseg configs). */
export interface NormOptions {
  norm?: NormKind;
  gnGroups?: number;
}

export interface ConvModuleOptions extends NormOptions {
  padding?: number;
  dilation?: number;
  stride?: number;
  /** Apply ReLU (default true). */
  act?: boolean;
}

export class ConvModule extends Module {
  readonly conv: Conv2d;
  readonly norm?: BatchNorm2d | GroupNorm;
  readonly act: boolean;

  constructor(inChannels: number, outChannels: number, kernelSize: number, opts: ConvModuleOptions = {}) {
    super();
    const normKind = opts.norm ?? 'BN';
    this.conv = this.addModule('conv', new Conv2d(inChannels, outChannels, kernelSize, {
      padding: opts.padding ?? 0, dilation: opts.dilation ?? 1, stride: opts.stride ?? 1, bias: normKind === 'none',
    }));
    kaimingFanOut(this.conv);
    if (normKind === 'BN' || normKind === 'SyncBN') {
      const bn = this.addModule('bn', new BatchNorm2d(outChannels));
      bn.syncRequested = normKind === 'SyncBN';
      this.norm = bn;
    }
    else if (normKind === 'GN') this.norm = this.addModule('gn', new GroupNorm(opts.gnGroups ?? 32, outChannels));
    this.act = opts.act ?? true;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let y = this.conv.forward(x);
      if (this.norm) y = this.norm.forward(y);
      return this.act ? reluSavingOutput(y) : y;
    });
  }
}
