/**
 * `Conv2d`: PyTorch's `nn.Conv2d` on NHWC tensors, with fast gradients from `conv_ops.ts`.
 */
import * as tf from '@tensorflow/tfjs';
import { conv2d, type ConvGeometry } from './conv_ops.ts';
import { truncNormal, type InitMode } from './init.ts';
import { Module, type TensorState } from './module.ts';
import { addSavingNothing } from './frugal.ts';

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions {
  stride?: Pair;
  /** Symmetric zero padding per axis, as in PyTorch. */
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  init?: InitMode;
}

/** 2-D convolution layer; weight key `weight` (PyTorch `[out, in/groups, kh, kw]`), bias key `bias`. */
export class Conv2d extends Module {
  readonly weight: TensorState;
  readonly bias?: TensorState;
  readonly geometry: ConvGeometry;
  readonly depthwise: boolean;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Pair, opts: Conv2dOptions = {}) {
    super();
    const [kh, kw] = pair(kernelSize);
    const groups = opts.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(`Conv2d: in (${inChannels}) and out (${outChannels}) channels must be divisible by groups (${groups})`);
    }
    const [ph, pw] = pair(opts.padding ?? 0);
    this.geometry = { stride: pair(opts.stride ?? 1), padding: [[ph, ph], [pw, pw]], dilation: pair(opts.dilation ?? 1), groups };
    this.depthwise = groups > 1 && groups === inChannels;
    const init = opts.init ?? 'random';
    if (this.depthwise) {
      this.weight = this.addParameter('weight', truncNormal([kh, kw, inChannels, outChannels / inChannels], 0.02, init), { kind: 'depthwise' });
    } else {
      this.weight = this.addParameter('weight', truncNormal([kh, kw, inChannels / groups, outChannels], 0.02, init), { kind: 'conv' });
    }
    if (opts.bias ?? true) this.bias = this.addParameter('bias', tf.zeros([outChannels]));
  }

  /** `[N, H, W, in]` → `[N, Ho, Wo, out]`. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const y = conv2d(x, this.weight.value as tf.Tensor4D, this.geometry);
      return this.bias ? addSavingNothing(y, this.bias.value) : y;
    });
  }
}
