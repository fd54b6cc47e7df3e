/**
 * Gradients of one batch: the sum of a model's `*loss*` outputs, differentiated with respect to the
 * optimised variables. The trainer takes them from a {@link GradientSource}: this thread
 * ({@link localGradients}) or several CPU threads (`DataParallel`).
 */
import * as tf from '@tensorflow/tfjs';
import { variableGradsFreeing } from '../nn/backprop.ts';
import type { Module } from '../nn/module.ts';
import type { Batch } from '../datasets/collate.ts';
import { sumLosses, type Model } from '../models/model.ts';

/** What the trainer needs of a {@link Model}: named outputs whose `*loss*` keys are summed. */
export type TrainableModel = Module & Pick<Model, 'loss'>;

/** Gradients keyed by variable name (as `tf.variableGrads`), each output's value, and the total loss. */
export interface BatchGradients {
  grads: Record<string, tf.Tensor>;
  /** Every output of `loss` (losses and e.g. accuracies), as numbers. */
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

/** Computes the gradients of `batch` for `vars` on this thread (freeing memory as backward goes). */
export function batchGradients(model: TrainableModel, batch: Batch, vars: tf.Variable[]): BatchGradients {
  const parts: Record<string, number> = {};
  const r = variableGradsFreeing(() => {
    const out = model.loss(batch);
    for (const [key, v] of Object.entries(out)) parts[key] = v.dataSync()[0];
    return sumLosses(out);
  }, vars);
  const total = r.value.dataSync()[0];
  r.value.dispose();
  return { grads: r.grads, parts, total };
}

/** The single-thread source: {@link batchGradients} of the whole batch. */
export function localGradients(model: TrainableModel, vars: tf.Variable[]): GradientSource {
  return { compute: async (batch) => batchGradients(model, batch, vars) };
}
