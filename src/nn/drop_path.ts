/**
 * Stochastic depth: drops a residual branch per sample with probability `p` in training,
 * scaling kept samples by 1/(1-p). Identity in eval mode or when p = 0.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module.ts';
import { globalRng } from './random.ts';

export class DropPath extends Module {
  constructor(readonly p: number) {
    super();
  }

  /** `[N, ...]` → same shape. */
  forward<T extends tf.Tensor>(x: T): T {
    if (!this.training || this.p === 0) return x;
    const keep = 1 - this.p;
    const n = x.shape[0];
    // Drawn from the checkpointable JS generator so a resumed run drops the same paths.
    const mask = new Float32Array(n);
    for (let i = 0; i < n; i++) mask[i] = globalRng.uniform() < keep ? 1 / keep : 0;
    const shape = [n, ...x.shape.slice(1).map(() => 1)];
    return tf.tidy(() => tf.mul(x, tf.tensor(mask, shape))) as T;
  }
}
