/**
 * The log-probability of each row's label under a softmax, fused on cpu/wasm memory (see host.ts).
 * As a kernel chain (logSoftmax, one-hot, multiply, sum) it ran ~10 kernels over the full-size
 * logits, among them two single-threaded `Exp` passes, in the forward and again in the backward.
 */
import * as tf from '@tensorflow/tfjs';
import { runOnHost } from './host.ts';
import { nativeAddon } from './native.ts';

/**
 * `log softmax(logits)[p, labels[p]]` with its gradient `dlogits[p, c] = dy[p] ([c = label] - softmax[p, c])`;
 * 0 and no gradient on rows labelled `ignoreIndex`.
 * Stable form `x_y - max - log Σ exp(x - max)`, the sums in float64 (compiled with the native addon).
 * @param logits `[P, C]` float32
 * @param labels `[P]` int32 in `[0, C)` or `ignoreIndex`
 * @returns `[P]`
 */
export function labelLogSoftmax(logits: tf.Tensor2D, labels: tf.Tensor1D, ignoreIndex = -1): tf.Tensor1D {
  const [rows, c] = logits.shape;
  const lib = nativeAddon();
  const run = tf.customGrad((...args: unknown[]) => {
    const [x, save] = args as [tf.Tensor2D, tf.GradSaveFunc];
    const [logp, probs] = runOnHost([x, labels], [[rows], [rows, c]], ([xv, yv], [lv, pv]) => {
      if (lib) {
        const bad = lib.labelLogSoftmax(xv as Float32Array, yv as Int32Array, lv, pv, ignoreIndex);
        if (bad >= 0) throw new Error(`labelLogSoftmax: label ${yv[bad]} at row ${bad} is outside [0, ${c})`);
        return;
      }
      for (let r = 0, o = 0; r < rows; r++, o += c) {
        const y = yv[r];
        if (y !== ignoreIndex && !(y >= 0 && y < c)) throw new Error(`labelLogSoftmax: label ${y} at row ${r} is outside [0, ${c})`);
        let m = -Infinity;
        for (let k = 0; k < c; k++) if (xv[o + k] > m) m = xv[o + k];
        let s = 0;
        for (let k = 0; k < c; k++) {
          const e = Math.exp(xv[o + k] - m);
          pv[o + k] = e;
          s += e;
        }
        for (let k = 0; k < c; k++) pv[o + k] /= s;
        lv[r] = y === ignoreIndex ? 0 : xv[o + y] - m - Math.log(s);
      }
    });
    // Saved clones: ours are freed now rather than at the caller's tidy, and the labels outlive it.
    save([probs, labels]);
    probs.dispose();
    return {
      value: logp,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => runOnHost([dy, saved[0], saved[1]], [[rows, c]], ([gv, pv, yv], [dxv]) => {
        if (lib) return lib.labelLogSoftmaxGrad(gv as Float32Array, pv as Float32Array, yv as Int32Array, dxv, ignoreIndex);
        for (let r = 0, o = 0; r < rows; r++, o += c) {
          const g = yv[r] === ignoreIndex ? 0 : gv[r];
          for (let k = 0; k < c; k++) dxv[o + k] = -g * pv[o + k];
          if (g !== 0) dxv[o + yv[r]] += g;
        }
      })[0],
    };
  });
  return run(logits) as tf.Tensor1D;
}
