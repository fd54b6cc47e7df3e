/**
 * Exact GELU `x Φ(x)` in one pass forward and one backward, through the native addon on cpu/wasm
 * memory: as a kernel chain it ran five kernels forward and seven backward over the MLP's widest
 * tensors. The addon computes the chain's float32 operations in the chain's order (see
 * native/src/kernels.c), so with the native Erf/Exp the values are the same.
 */
import * as tf from '@tensorflow/tfjs';
import { runOnHost } from './host.ts';
import type { NativeAddon } from './native.ts';

/**
 * @param x any shape, float32
 * @returns `x Φ(x)`, with the gradient `dy (Φ(x) + x φ(x))` from the saved x and Φ(x)
 */
export function geluNative<T extends tf.Tensor>(lib: NativeAddon, x: T): T {
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const [y, cdf] = runOnHost([xIn], [xIn.shape, xIn.shape], ([xv], [yv, pv]) => lib.gelu(xv as Float32Array, yv, pv));
    save([xIn, cdf]);
    cdf.dispose();
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        runOnHost([dy, saved[0], saved[1]], [dy.shape], ([gv, xv, pv], [dxv]) => lib.geluGrad(gv as Float32Array, xv as Float32Array, pv as Float32Array, dxv))[0],
    };
  });
  return run(x) as T;
}
