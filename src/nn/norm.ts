/**
 * Normalisation layers on NHWC tensors: channel LayerNorm, BatchNorm2d, GroupNorm.
 */
import * as tf from '@tensorflow/tfjs';
import { Module, type CounterState, type TensorState } from './module.ts';
import { isRecomputing } from './recompute.ts';
import { chain } from './frugal.ts';
import { hostKernelsAvailable } from '../kernels/host.ts';
import { batchNormBackward, batchNormForward, fusedNormPays, layerNormBackward, layerNormForward, runningStatsUpdate } from '../kernels/norm.ts';

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

/**
 * Gradients of `y = xhat * w + b`, `xhat = (x - mean) * rstd`, with the statistics taken over
 * `statAxes` and the affine parameters shared over `affineAxes`:
 * `dx = rstd (g - mean(g) - xhat mean(g xhat))` (means over `statAxes`, `g = dy w`),
 * `dw = sum(dy xhat)`, `db = sum(dy)` (sums over `affineAxes`).
 * @param mean, rstd broadcastable to `x`
 * @returns `[dx, dw, db]`
 */
function normalizedAffineGrads(dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor, rstd: tf.Tensor, w: tf.Tensor,
  statAxes: number[], affineAxes: number[]): tf.Tensor[] {
  const xh = tf.mul(tf.sub(x, mean), rstd);
  const dw = tf.sum(tf.mul(dy, xh), affineAxes);
  const db = tf.sum(dy, affineAxes);
  const g = tf.mul(dy, w);
  const centred = tf.sub(tf.sub(g, tf.mean(g, statAxes, true)), tf.mul(xh, tf.mean(tf.mul(g, xh), statAxes, true)));
  return [tf.mul(centred, rstd), dw, db];
}

/** What a normalisation's forward leaves for its gradient. */
interface NormForward {
  value: tf.Tensor;
  mean: tf.Tensor;
  rstd: tf.Tensor;
  /** Freed as soon as the forward returns (they would otherwise live to the caller's tidy). */
  temporaries: tf.Tensor[];
}

/** `[dx, dw, db]` from `dy` and what the forward saved. */
type NormBackward = (dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor, rstd: tf.Tensor, w: tf.Tensor) => tf.Tensor[];

/**
 * Runs `forward` (a normalisation followed by `* w + b`) with `backward` as its gradient, keeping
 * only `x`, `w` and the statistics for it.
 */
function withNormGradient<T extends tf.Tensor>(x: T, weight: tf.Tensor, bias: tf.Tensor,
  forward: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => NormForward, backward: NormBackward): T {
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, w, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const { value, mean, rstd, temporaries } = forward(xIn, w, b);
    save([xIn, mean, rstd, w]);
    tf.dispose([mean, rstd, ...temporaries]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, mu, rs, ws] = saved;
        return backward(dy, xs, mu, rs, ws);
      },
    };
  });
  return run(x, weight, bias) as T;
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
  if (hostKernelsAvailable() && fusedNormPays('layer', x.shape)) {
    return withNormGradient(x, weight, bias, (xIn, w, b) => {
      const { y, mean, rstd } = layerNormForward(xIn, w, b, eps);
      return { value: y, mean, rstd, temporaries: [] };
    }, layerNormBackward);
  }
  const axis = x.rank - 1;
  const rows = Array.from({ length: axis }, (_, i) => i);
  return withNormGradient(x, weight, bias, (xIn, w, b) => {
    const mean = tf.mean(xIn, axis, true);
    const d = tf.sub(xIn, mean);
    const variance = meanOfSquares(d, axis);
    const rstd = chain(variance, (t) => tf.add(t, eps), (t) => tf.rsqrt(t));
    const value = chain(d, (t) => tf.mul(t, rstd), (t) => tf.mul(t, w), (t) => tf.add(t, b));
    return { value, mean, rstd, temporaries: [d, variance] };
  }, (dy, xs, mu, rs, ws) => normalizedAffineGrads(dy, xs, mu, rs, ws, [axis], rows));
}

/**
 * BatchNorm2d: batch statistics and a running-average update in train mode, running statistics in
 * eval mode. Keys `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`.
 */
/**
 * Sums per-channel statistics across processes (distributed training's SyncBN): `sumSync(buf)`
 * replaces `buf` by its element-wise sum over every process, blocking (a forward is synchronous).
 */
export interface StatReducer {
  sumSync(buf: Float64Array): void;
}

export class BatchNorm2d extends Module {
  /**
   * SyncBN: when set, training-mode statistics (and their gradient terms) are over the global
   * batch of every process (PyTorch `SyncBatchNorm`); `weight`/`bias` gradients stay this
   * process's, to be averaged with the others' as every gradient is.
   */
  sync: StatReducer | null = null;
  /** The config asked for SyncBN here (`norm_cfg: {type: SyncBN}`): synced when training is distributed. */
  syncRequested = false;
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
    // A checkpointed re-run (with_cp) sees the same batch again: its statistics count once.
    const track = (mean: tf.Tensor, variance: tf.Tensor, n: number) => {
      if (!isRecomputing()) tf.tidy(() => this.updateRunningStats(mean, variance, n));
    };
    if (this.sync) return this.forwardSynced(x, this.sync, track);
    if (hostKernelsAvailable() && fusedNormPays('batch', x.shape)) {
      return withNormGradient(x, this.weight.value, this.bias.value, (xIn, w, b) => {
        const { y, mean, variance, rstd } = batchNormForward(xIn, w, b, this.eps);
        track(mean, variance, xIn.size / this.channels);
        return { value: y, mean, rstd, temporaries: [variance] };
      }, batchNormBackward);
    }
    const axes = [0, 1, 2];
    return withNormGradient(x, this.weight.value, this.bias.value, (xIn, w, b) => {
      const { mean, variance } = tf.moments(xIn, axes);
      track(mean, variance, xIn.size / this.channels);
      const rstd = chain(variance, (t) => tf.add(t, this.eps), (t) => tf.rsqrt(t));
      const scale = tf.mul(w, rstd);
      const value = chain(xIn, (t) => tf.sub(t, mean), (t) => tf.mul(t, scale), (t) => tf.add(t, b));
      return { value, mean, rstd, temporaries: [variance, scale] };
    }, (dy, xs, mu, rs, ws) => normalizedAffineGrads(dy, xs, mu, rs, ws, axes, axes));
  }

  /**
   * Statistics over every process's batch: local per-channel sums, counts and (backward) gradient
   * sums are summed by `sync`; `dx` uses the global means, `dw`/`db` the local sums.
   */
  private forwardSynced(x: tf.Tensor4D, sync: StatReducer, track: (mean: tf.Tensor, variance: tf.Tensor, n: number) => void): tf.Tensor4D {
    const c = this.channels;
    const axes = [0, 1, 2];
    /** Sums `a` and `b` (per channel) and this process's row count over all processes. */
    const globalSums = (a: tf.Tensor, b: tf.Tensor, rows: number): { a: Float64Array; b: Float64Array; n: number } => {
      const buf = new Float64Array(2 * c + 1);
      buf.set(a.dataSync(), 0);
      buf.set(b.dataSync(), c);
      buf[2 * c] = rows;
      sync.sumSync(buf);
      return { a: buf.subarray(0, c), b: buf.subarray(c, 2 * c), n: buf[2 * c] };
    };
    return withNormGradient(x, this.weight.value, this.bias.value, (xIn, w, b) => {
      const [s, ss] = tf.tidy(() => [tf.sum(xIn, axes), tf.sum(tf.square(xIn), axes)]);
      const g = globalSums(s, ss, xIn.size / c);
      tf.dispose([s, ss]);
      const meanV = new Float32Array(c), varV = new Float32Array(c);
      for (let k = 0; k < c; k++) {
        meanV[k] = g.a[k] / g.n;
        varV[k] = Math.max(g.b[k] / g.n - (g.a[k] / g.n) ** 2, 0);
      }
      const mean = tf.tensor1d(meanV);
      const variance = tf.tensor1d(varV);
      track(mean, variance, g.n);
      const rstd = chain(variance, (t) => tf.add(t, this.eps), (t) => tf.rsqrt(t));
      const scale = tf.mul(w, rstd);
      const value = chain(xIn, (t) => tf.sub(t, mean), (t) => tf.mul(t, scale), (t) => tf.add(t, b));
      return { value, mean, rstd, temporaries: [variance, scale] };
    }, (dy, xs, mu, rs, ws) => tf.tidy(() => {
      const xh = tf.mul(tf.sub(xs, mu), rs);
      const db = tf.sum(dy, axes);
      const dw = tf.sum(tf.mul(dy, xh), axes);
      const g = globalSums(db, dw, xs.size / c);
      const meanDy = tf.tensor1d(Float32Array.from(g.a, (v) => v / g.n));
      const meanDyXh = tf.tensor1d(Float32Array.from(g.b, (v) => v / g.n));
      const dx = tf.mul(tf.mul(tf.sub(tf.sub(dy, meanDy), tf.mul(xh, meanDyXh)), rs), ws);
      return [dx, dw, db];
    }));
  }

  /** Running averages of the batch statistics over `n` values per channel. */
  private updateRunningStats(mean: tf.Tensor, variance: tf.Tensor, n: number): void {
    // The update is not on the loss's path, so no gradient flows through it.
    const [rm, rv] = runningStatsUpdate(this.runningMean.value, this.runningVar.value, mean, variance, n, this.momentum);
    this.runningMean.variable.assign(rm);
    this.runningVar.variable.assign(rv);
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
