/**
 * Per-channel ops on `[..., C]` tensors through the native addon: a bias add, a per-channel scale
 * (Conv2Former's layer scale) and the sums over all but the channel axis that their gradients
 * need. tfjs runs a broadcast add/multiply and a reduction over leading axes as general kernels
 * (~0.2 ms each on a [1,14,14,288] map on wasm, the reduction with a transpose first).
 */
import * as tf from '@tensorflow/tfjs';
import { runOnHost } from './host.ts';
import { hostAddon, type NativeAddon } from './native.ts';

/** Whether `v` is a `[C]` vector over `x`'s last axis (both float32). */
export function isChannelVector(x: tf.Tensor, v: tf.Tensor): boolean {
  return v.rank === 1 && x.rank >= 1 && v.shape[0] === x.shape[x.rank - 1] && x.dtype === 'float32' && v.dtype === 'float32';
}

/** `x + v` (op 0) or `x * v` (op 1) with `v` `[C]` broadcast over `x` `[..., C]`; no gradient of its own. */
export function channelOp(lib: NativeAddon, op: 0 | 1, x: tf.Tensor, v: tf.Tensor): tf.Tensor {
  return runOnHost([x, v], [x.shape], ([xv, vv], [out]) => lib.channelOp(op, xv as Float32Array, vv as Float32Array, out))[0];
}

/** `Σ x[..., c]` over all axes but the last: `[..., C]` → `[C]`. */
export function sumToChannels(lib: NativeAddon, x: tf.Tensor): tf.Tensor1D {
  const c = x.shape[x.rank - 1];
  return runOnHost([x], [[c]], ([xv], [out]) => lib.channelSum(xv as Float32Array, out))[0] as tf.Tensor1D;
}

/**
 * `x * gamma` with `gamma` `[C]` over `x` `[..., C]`, differentiable in both (the gradient keeps
 * `x` and `gamma`, as tfjs's Multiply does). Without the addon: `tf.mul`.
 */
export function scaleChannels<T extends tf.Tensor>(x: T, gamma: tf.Tensor): T {
  const lib = hostAddon();
  if (!lib || !isChannelVector(x, gamma)) return tf.mul(x, gamma);
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, g, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xIn, g]);
    return {
      value: channelOp(lib, 1, xIn, g),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, gs] = saved;
        const c = gs.shape[0];
        const dGamma = runOnHost([dy, xs], [[c]], ([dv, xv], [out]) => lib.channelDot(dv as Float32Array, xv as Float32Array, out))[0];
        return [channelOp(lib, 1, dy, gs), dGamma];
      },
    };
  });
  return run(x, gamma) as T;
}
