/**
 * Parameter initialisers, drawn from the seedable `globalRng` so that runs are reproducible.
 */
import * as tf from '@tensorflow/tfjs';
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
