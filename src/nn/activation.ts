/**
 * Activations. GELU is the exact erf form (PyTorch's default), with a hand-written gradient so that
 * backprop keeps two saved tensors (x, Φ(x)) instead of the five intermediates of the autodiffed formula.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module.ts';
import { chain } from './frugal.ts';
import { hostAddon } from '../kernels/native.ts';
import { geluNative } from '../kernels/gelu.ts';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Φ(x) = 0.5 (1 + erf(x / √2)), elementwise. */
function normalCdf(x: tf.Tensor): tf.Tensor {
  return chain(x, (t) => tf.mul(t, SQRT1_2), (t) => tf.erf(t), (t) => tf.add(1, t), (t) => tf.mul(0.5, t));
}

/** Exact GELU: `0.5 x (1 + erf(x / √2))`, any shape. */
export function gelu<T extends tf.Tensor>(x: T): T {
  const lib = hostAddon();
  if (lib && x.dtype === 'float32') return geluNative(lib, x);
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const cdf = normalCdf(xIn);
    // Φ(x) is saved with x: the gradient needs it, and recomputing it cost an Erf pass (a
    // single-threaded kernel on wasm) per GELU. Same values as recomputed, one more saved tensor.
    save([xIn, cdf]);
    const value = tf.mul(xIn, cdf);
    cdf.dispose();
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, cdfB] = saved;
        // d/dx [x Φ(x)] = Φ(x) + x φ(x)
        const xPhi = chain(xs, (t) => tf.square(t), (t) => tf.mul(-0.5, t), (t) => tf.exp(t), (t) => tf.mul(INV_SQRT_2PI, t), (t) => tf.mul(xs, t));
        const slope = tf.add(cdfB, xPhi);
        xPhi.dispose();
        const dx = tf.mul(dy, slope);
        slope.dispose();
        return [dx];
      },
    };
  });
  return run(x) as T;
}

/** `nn.GELU()` as a module, so Sequential indices match PyTorch's. */
export class GELU extends Module {
  forward<T extends tf.Tensor>(x: T): T {
    return gelu(x);
  }
}

/** `nn.ReLU()` as a module. */
export class ReLU extends Module {
  forward<T extends tf.Tensor>(x: T): T {
    return tf.relu(x);
  }
}
