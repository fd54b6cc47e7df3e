/**
 * Activations. GELU is the exact erf form (PyTorch's default), with a hand-written gradient so that
 * backprop keeps one saved tensor instead of the five intermediates of the autodiffed formula.
 */
import * as tf from '@tensorflow/tfjs';
import { Module } from './module.ts';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** Exact GELU: `0.5 x (1 + erf(x / √2))`, any shape. */
export function gelu<T extends tf.Tensor>(x: T): T {
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([xIn]);
    const cdf = tf.tidy(() => tf.mul(0.5, tf.add(1, tf.erf(tf.mul(xIn, SQRT1_2)))));
    return {
      value: tf.mul(xIn, cdf),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const xs = saved[0];
        // d/dx [x Φ(x)] = Φ(x) + x φ(x)
        const phi = tf.mul(INV_SQRT_2PI, tf.exp(tf.mul(-0.5, tf.square(xs))));
        const cdfB = tf.mul(0.5, tf.add(1, tf.erf(tf.mul(xs, SQRT1_2))));
        return [tf.mul(dy, tf.add(cdfB, tf.mul(xs, phi)))];
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
