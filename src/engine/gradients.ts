/**
 * Gradients of one batch: the sum of a model's `*loss*` outputs, differentiated with respect to the
 * optimised variables. The trainer takes them from a {@link GradientSource}: this thread
 * ({@link localGradients}) or several CPU threads (`DataParallel`).
 */
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.ts';
import type { Batch } from '../datasets/collate.ts';

/** A model the trainer can train: named outputs; keys containing 'loss' are summed into the total. */
export interface TrainableModel extends Module {
  forwardTrain(batch: Batch): Record<string, tf.Scalar>;
}

/** Gradients keyed by variable name (as `tf.variableGrads`), each output's value, and the total loss. */
export interface BatchGradients {
  grads: Record<string, tf.Tensor>;
  /** Every output of `forwardTrain` (losses and e.g. accuracies), as numbers. */
  parts: Record<string, number>;
  /** Sum of the `*loss*` outputs. */
  total: number;
}

/** Where the trainer gets a batch's gradients from. */
export interface GradientSource {
  /** Gradients of `batch` at the model's current weights; the caller disposes `grads`. */
  compute(batch: Batch): Promise<BatchGradients>;
  /** Tensor count of helper threads, when there are any (logged beside this thread's). */
  readonly workerTensors?: number;
}

/** Computes the gradients of `batch` for `vars` on this thread. */
export function batchGradients(model: TrainableModel, batch: Batch, vars: tf.Variable[]): BatchGradients {
  const parts: Record<string, number> = {};
  const r = tf.variableGrads(() => {
    const out = model.forwardTrain(batch);
    let sum: tf.Scalar | null = null;
    for (const [key, v] of Object.entries(out)) {
      parts[key] = v.dataSync()[0];
      if (key.includes('loss')) sum = sum ? tf.add(sum, v) as tf.Scalar : v;
    }
    if (!sum) throw new Error(`Trainer: forwardTrain returned no '*loss*' output (keys: ${Object.keys(out).join(', ')})`);
    return sum;
  }, vars);
  const total = r.value.dataSync()[0];
  r.value.dispose();
  return { grads: r.grads, parts, total };
}

/** The single-thread source: {@link batchGradients} of the whole batch. */
export function localGradients(model: TrainableModel, vars: tf.Variable[]): GradientSource {
  return { compute: async (batch) => batchGradients(model, batch, vars) };
}
