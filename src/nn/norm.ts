/**
 * Normalisation layers on NHWC tensors: channel LayerNorm, BatchNorm2d, GroupNorm.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type CounterState, type TensorState } from './module.ts';
import { isRecomputing } from './recompute.ts';

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
    return tf.tidy(() => {
      const axis = x.rank - 1;
      const { mean, variance } = tf.moments(x, axis, true);
      const xhat = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(xhat, this.weight.value), this.bias.value) as T;
    });
  }
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
    return tf.tidy(() => {
      let mean: tf.Tensor;
      let variance: tf.Tensor;
      if (this.training) {
        ({ mean, variance } = tf.moments(x, [0, 1, 2]));
        // A checkpointed re-run (with_cp) sees the same batch again: its statistics count once.
        if (!isRecomputing()) this.updateRunningStats(mean, variance, x.size / this.channels);
      } else {
        mean = this.runningMean.value;
        variance = this.runningVar.value;
      }
      const scale = tf.mul(this.weight.value, tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(tf.sub(x, mean), scale), this.bias.value) as tf.Tensor4D;
    });
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
