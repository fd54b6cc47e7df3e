/**
 * Parameter initialisers, drawn from the seedable `globalRng` so that runs are reproducible.
 */
import * as tf from '@tensorflow/tfjs';
import type { TensorState } from './module.ts';
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

/** A layer with a PyTorch-shaped weight (`[out, in, ...]`, or `[in, out, k, k]` for transposed convs) and maybe a bias. */
export interface WeightedLayer {
  readonly weight: TensorState;
  readonly bias?: TensorState;
}

/** PyTorch's `_calculate_fan_in_and_fan_out` of `layer`'s weight: dims 1 and 0 times the receptive field. */
function fans(layer: WeightedLayer): { fanIn: number; fanOut: number } {
  const shape = layer.weight.torchShape();
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/** Assigns `draw()` to every weight element, in storage order. */
function fillWeight(layer: WeightedLayer, draw: () => number): void {
  const v = layer.weight.variable;
  const data = new Float32Array(v.size);
  for (let i = 0; i < data.length; i++) data[i] = draw();
  tf.tidy(() => v.assign(tf.tensor(data, v.shape)));
}

/** Fills a layer's weight with N(0, 2/fan_out) (mmcv `kaiming_init`, mode fan_out, relu). */
export function kaimingFanOut(layer: WeightedLayer): void {
  normalInit(layer, Math.sqrt(2 / fans(layer).fanOut));
}

/** Fills a layer's weight with N(0, std²) (mmcv `normal_init`; the bias keeps its zero init). */
export function normalInit(layer: WeightedLayer, std: number): void {
  fillWeight(layer, () => globalRng.normal() * std);
}

/**
 * Fills a layer's weight from U(-b, b), b = gain·sqrt(6 / (fan_in + fan_out)) (conv: fan_in =
 * in·kh·kw, fan_out = out·kh·kw; linear: in, out), and zeroes its bias (mmcv
 * `xavier_init(distribution='uniform')`, PyTorch `xavier_uniform_`). Grouped/depthwise convs use
 * their per-group `in`, as PyTorch's fan does.
 */
export function xavierUniform(layer: WeightedLayer, gain = 1): void {
  const { fanIn, fanOut } = fans(layer);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  fillWeight(layer, () => (2 * globalRng.uniform() - 1) * bound);
  if (layer.bias) tf.tidy(() => layer.bias!.variable.assign(tf.zerosLike(layer.bias!.variable)));
}
