/**
 * Activation checkpointing (PyTorch's `torch.utils.checkpoint`, MMDetection's `with_cp`): run a
 * block without keeping its intermediate tensors and recompute them during the backward pass.
 *
 * Why: tfjs keeps every intermediate of the forward pass AND every intermediate gradient until the
 * whole backward pass ends. For Conv2Former-T that is ~2.8 GB at 224x224 and would be ~20x more
 * at 800x1333, past the wasm backend's 4 GB heap. With each block checkpointed, only the blocks'
 * inputs stay alive; one block at a time is re-run under its own gradient tape and differentiated
 * by `gradientsFreeing`, which frees memory as it goes. Costs one extra forward.
 */
import * as tf from '@tensorflow/tfjs';
import { gradientsFreeing } from './backprop.ts';
import { globalRng } from './random.ts';

let recomputeDepth = 0;

/**
 * True while a checkpointed block is being re-run in the backward pass. Side effects of a forward
 * pass that must happen once per step (BatchNorm's running statistics) check it.
 */
export function isRecomputing(): boolean {
  return recomputeDepth > 0;
}

/**
 * `fn(x)` with the gradients of `x` and of `params` computed by re-running `fn` in the backward
 * pass. `fn` must be a pure function of `x`, `params` and the JS generator `globalRng` (DropPath):
 * the generator's state is replayed for the recomputation, so the same paths are dropped.
 * Stateful layers skip their state updates during the re-run ({@link isRecomputing}).
 * @param fn the block, e.g. `[N, H, W, C]` → `[N, H, W, C]`
 * @param x its input
 * @param params the trainable variables `fn` reads (frozen ones need not be listed)
 */
export function recomputeInBackward<T extends tf.Tensor>(fn: (x: T) => T, x: T, params: tf.Variable[]): T {
  const rngAtForward = globalRng.getState();
  const run = tf.customGrad((...args: unknown[]) => {
    const input = args[0] as T;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save([input]);
    return {
      value: fn(input),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const rngNow = globalRng.getState();
        globalRng.setState(rngAtForward);
        recomputeDepth++;
        try {
          const xs = [saved[0], ...params];
          const { value, grads } = gradientsFreeing(() => fn(saved[0] as T), xs, dy as tf.Tensor);
          value.dispose();
          return grads.map((g, i) => g ?? tf.zerosLike(xs[i]));
        } finally {
          recomputeDepth--;
          globalRng.setState(rngNow);
        }
      },
    };
  });
  return run(x, ...params) as T;
}
