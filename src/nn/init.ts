/**
 * Parameter initialisers, drawn from the seedable `globalRng` so that runs are reproducible.
 */
import * as tf from '@tensorflow/tfjs';
import type { Conv2d } from './conv2d.ts';
import { globalRng } from './random.ts';

/**
 * `random`: the official code's initialisation (trunc-normal std 0.02 for conv/linear weights, zero
 * biases). `zeros`: skip the random draw, for models about to be overwritten by a checkpoint.
 */
export type InitMode = 'random' | 'zeros';

/** A tensor of `shape` from N(0, std²) truncated to [-2, 2] (PyTorch's `trunc_normal_` defaults). */
export function truncNormal(shape: number[], std = 0.02, mode: InitMode = 'random'): tf.Tensor {
  if (mode === 'zeros') return tf.zeros(shape);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = globalRng.truncNormal(std);
  return tf.tensor(v, shape);
}

/** Fills a conv's weight with N(0, 2/fan_out) (mmcv `kaiming_init`, mode fan_out, relu). */
export function kaimingFanOut(conv: Conv2d): void {
  const [kh, kw, , out] = conv.weight.variable.shape;
  const std = Math.sqrt(2 / (out * kh * kw));
  normalInit(conv, std);
}

/** Fills a conv's weight with N(0, std²) (mmcv `normal_init`; the bias keeps Conv2d's zero init). */
export function normalInit(conv: Conv2d, std: number): void {
  const v = conv.weight.variable;
  const data = new Float32Array(v.size);
  for (let i = 0; i < data.length; i++) data[i] = globalRng.normal() * std;
  tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
}

/**
 * Fills a conv's weight from U(-b, b), b = gain·sqrt(6 / (fan_in + fan_out)), fan_in = in·kh·kw,
 * fan_out = out·kh·kw, and zeroes its bias (mmcv `xavier_init(distribution='uniform')`, PyTorch
 * `xavier_uniform_`). Grouped/depthwise convs use their per-group `in`, as PyTorch's fan does.
 */
export function xavierUniform(conv: Conv2d, gain = 1): void {
  const v = conv.weight.variable;
  const shape = conv.weight.torchShape(); // [out, in/groups, kh, kw]
  const receptive = shape[2] * shape[3];
  const bound = gain * Math.sqrt(6 / (shape[1] * receptive + shape[0] * receptive));
  const data = new Float32Array(v.size);
  for (let i = 0; i < data.length; i++) data[i] = (2 * globalRng.uniform() - 1) * bound;
  tf.tidy(() => {
    v.assign(tf.tensor(data, v.shape));
    if (conv.bias) conv.bias.variable.assign(tf.zerosLike(conv.bias.variable));
  });
}
