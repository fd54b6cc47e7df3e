/**
 * Normalisation layers on NHWC tensors: channel LayerNorm, BatchNorm2d, GroupNorm.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type CounterState, type TensorState } from './module.ts';
import { isRecomputing } from './recompute.ts';
import { chain } from './frugal.ts';

/**
 * LayerNorm over the last (channel) axis: the official code's `LayerNorm(data_format=channels_first)`
 * on NCHW equals this on NHWC. Keys `weight`, `bias`.
 */
export class LayerNorm extends Module {
  readonly weight: TensorState;
  readonly bias: TensorState;

  constructor(readonly channels: number, readonly eps = 1e-6) {
    super();
    this.weight = this.addParameter('weight', tf.ones([channels]));
    this.bias = this.addParameter('bias', tf.zeros([channels]));
  }

  /** `[..., C]` → same shape. */
  forward<T extends tf.Tensor>(x: T): T {
    return layerNormLastAxis(x, this.weight.value, this.bias.value, this.eps);
  }
}

/** `mean(t^2)` over `axis` (kept), the square freed at once. */
function meanOfSquares(t: tf.Tensor, axis: number): tf.Tensor {
  const sq = tf.square(t);
  const m = tf.mean(sq, axis, true);
  sq.dispose();
  return m;
}

/**
 * `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis, with a hand-written gradient:
 * it keeps `x` and the per-row mean and 1/std (autodiff kept four full-size intermediates) and runs
 * ~12 kernels where autodiff ran ~30. The forward is the same kernels in the same order as before.
 * @param x `[..., C]`; `weight`, `bias` `[C]`
 */
export function layerNormLastAxis<T extends tf.Tensor>(x: T, weight: tf.Tensor, bias: tf.Tensor, eps: number): T {
  const axis = x.rank - 1;
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, w, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // Each temporary is freed as soon as it is used (they would otherwise live to the caller's tidy).
    const mean = tf.mean(xIn, axis, true);
    const d = tf.sub(xIn, mean);
    const variance = meanOfSquares(d, axis);
    const rstd = chain(variance, (t) => tf.add(t, eps), (t) => tf.rsqrt(t));
    const value = chain(d, (t) => tf.mul(t, rstd), (t) => tf.mul(t, w), (t) => tf.add(t, b));
    save([xIn, mean, rstd, w]);
    tf.dispose([mean, d, variance, rstd]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, mu, rs, ws] = saved;
        const xh = tf.mul(tf.sub(xs, mu), rs);
        const rows = Array.from({ length: axis }, (_, i) => i);
        const dw = tf.sum(tf.mul(dy, xh), rows);
        const db = tf.sum(dy, rows);
        // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight
        const g = tf.mul(dy, ws);
        const centred = tf.sub(tf.sub(g, tf.mean(g, axis, true)), tf.mul(xh, tf.mean(tf.mul(g, xh), axis, true)));
        return [tf.mul(centred, rs), dw, db];
      },
    };
  });
  return run(x, weight, bias) as T;
}

/**
 * BatchNorm2d: batch statistics and a running-average update in train mode, running statistics in
 * eval mode. Keys `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
 */
export class BatchNorm2d extends Module {
  readonly weight: TensorState;
  readonly bias: TensorState;
  readonly runningMean: TensorState;
  readonly runningVar: TensorState;
  readonly numBatchesTracked: CounterState;

  constructor(readonly channels: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.addParameter('weight', tf.ones([channels]));
    this.bias = this.addParameter('bias', tf.zeros([channels]));
    this.runningMean = this.addBuffer('running_mean', tf.zeros([channels]));
    this.runningVar = this.addBuffer('running_var', tf.ones([channels]));
    this.numBatchesTracked = this.addCounter('num_batches_tracked');
  }

  /** `[N, H, W, C]` → same shape. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    if (this.training) return this.forwardTraining(x);
    return tf.tidy(() => {
      const scale = tf.mul(this.weight.value, tf.rsqrt(tf.add(this.runningVar.value, this.eps)));
      return tf.add(tf.mul(tf.sub(x, this.runningMean.value), scale), this.bias.value) as tf.Tensor4D;
    });
  }

  /**
   * Batch statistics, with a hand-written gradient that keeps `x` and the per-channel mean and
   * 1/std (autodiff kept four full-size intermediates and ran ~3x the kernels). The forward runs
   * the kernels autodiff's version ran, so its values are the same.
   */
  private forwardTraining(x: tf.Tensor4D): tf.Tensor4D {
    const axes = [0, 1, 2];
    const run = tf.customGrad((...args: unknown[]) => {
      const [xIn, w, b, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
      const { mean, variance } = tf.moments(xIn, axes);
      // A checkpointed re-run (with_cp) sees the same batch again: its statistics count once.
      if (!isRecomputing()) tf.tidy(() => this.updateRunningStats(mean, variance, xIn.size / this.channels));
      const rstd = chain(variance, (t) => tf.add(t, this.eps), (t) => tf.rsqrt(t));
      const scale = tf.mul(w, rstd);
      const value = chain(xIn, (t) => tf.sub(t, mean), (t) => tf.mul(t, scale), (t) => tf.add(t, b));
      save([xIn, mean, rstd, w]);
      tf.dispose([mean, variance, rstd, scale]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, mu, rs, ws] = saved;
          const xh = tf.mul(tf.sub(xs, mu), rs);
          const dw = tf.sum(tf.mul(dy, xh), axes);
          const db = tf.sum(dy, axes);
          // dx = weight * rstd * (dy - mean(dy) - xhat * mean(dy * xhat)), means over N, H, W
          const centred = tf.sub(tf.sub(dy, tf.mean(dy, axes)), tf.mul(xh, tf.div(dw, xs.size / this.channels)));
          return [tf.mul(centred, tf.mul(ws, rs)), dw, db];
        },
      };
    });
    return run(x, this.weight.value, this.bias.value) as tf.Tensor4D;
  }

  /** Running averages of the batch statistics over `n` values per channel. */
  private updateRunningStats(mean: tf.Tensor, variance: tf.Tensor, n: number): void {
    const m = this.momentum;
    // PyTorch updates the running variance with the unbiased batch variance. The update is not on
    // the loss's path, so no gradient flows through it.
    const unbiased = tf.mul(variance, n / Math.max(n - 1, 1));
    this.runningMean.variable.assign(tf.add(tf.mul(this.runningMean.value, 1 - m), tf.mul(mean, m)));
    this.runningVar.variable.assign(tf.add(tf.mul(this.runningVar.value, 1 - m), tf.mul(unbiased, m)));
    this.numBatchesTracked.value += 1;
  }
}

/** GroupNorm over `groups` channel groups of an NHWC tensor. Keys `weight`, `bias`. */
export class GroupNorm extends Module {
  readonly weight: TensorState;
  readonly bias: TensorState;

  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    if (channels % groups !== 0) throw new Error(`GroupNorm: ${channels} channels not divisible by ${groups} groups`);
    this.weight = this.addParameter('weight', tf.ones([channels]));
    this.bias = this.addParameter('bias', tf.zeros([channels]));
  }

  /** `[N, H, W, C]` → same shape. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const g = x.reshape([n, h, w, this.groups, c / this.groups]);
      const { mean, variance } = tf.moments(g, [1, 2, 4], true);
      const xhat = tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, this.eps))).reshape([n, h, w, c]);
      return tf.add(tf.mul(xhat, this.weight.value), this.bias.value) as tf.Tensor4D;
    });
  }
}
