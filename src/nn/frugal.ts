/**
 * Element-wise ops whose gradients keep less of the forward pass alive, and `chain`, which frees
 * each intermediate of a sequence of ops as soon as the next exists.
 *
 * tfjs's `Add` saves both inputs for its gradient (it only reads their shapes) and `Relu` saves its
 * input (the output tells the same). Under a tape each saved tensor stays allocated until the
 * backward pass reaches it: for a 256-channel FPN level at 200x336, 69 MB apiece. These versions
 * compute the same values and the same gradients with the same kernels, saving only what the
 * gradient reads.
 */
import * as tf from '@tensorflow/tfjs';
import { channelOp, isChannelVector, sumToChannels } from '../kernels/channel.ts';
import { hostAddon } from '../kernels/native.ts';

/** `dy` summed over the axes `shape` was broadcast along, as tfjs's own `Add` gradient does. */
function unbroadcast(dy: tf.Tensor, shape: number[]): tf.Tensor {
  const lib = hostAddon();
  const c = dy.shape[dy.rank - 1];
  // A bias [C] (or [1, ..., 1, C]) over [..., C]: one pass of the native kernel.
  if (lib && dy.dtype === 'float32' && dy.rank > 1 && shape[shape.length - 1] === c && shape.slice(0, -1).every((d) => d === 1)) {
    return tf.reshape(sumToChannels(lib, dy), shape);
  }
  const axes = tf.backend_util.getReductionAxes(shape, dy.shape);
  return tf.reshape(axes.length > 0 ? tf.sum(dy, axes) : dy, shape);
}

/**
 * `a + b` with broadcasting (e.g. a bias `[C]` onto `[N, H, W, C]`); its gradient saves nothing.
 * @returns the broadcast shape of `a` and `b`
 */
export function addSavingNothing<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  const aShape = a.shape, bShape = b.shape;
  const run = tf.customGrad((...args: unknown[]) => {
    const [x, y] = args as [tf.Tensor, tf.Tensor];
    const lib = hostAddon();
    const value = lib && isChannelVector(x, y) ? channelOp(lib, 0, x, y) : tf.add(x, y);
    return { value, gradFunc: (dy: tf.Tensor) => [unbroadcast(dy, aShape), unbroadcast(dy, bShape)] };
  });
  return run(a, b) as T;
}

/** `max(x, 0)`, any shape; its gradient keeps the output (often saved by the next layer anyway). */
export function reluSavingOutput<T extends tf.Tensor>(x: T): T {
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const y = tf.relu(xIn);
    save([y]);
    return { value: y, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.step(saved[0])) };
  });
  return run(x) as T;
}

/**
 * `steps` applied one after the other to `x`, each intermediate freed as soon as the next exists:
 * at most two full-size temporaries alive, where a tidy would keep them all to its end.
 */
export function chain(x: tf.Tensor, ...steps: ((t: tf.Tensor) => tf.Tensor)[]): tf.Tensor {
  let t = x;
  for (const step of steps) {
    const next = step(t);
    if (t !== x) t.dispose();
    t = next;
  }
  return t;
}
