/**
 * What the trainer and its hooks need from an optimiser: a settable base lr, the variables it
 * updates, one step from gradients, and a serialisable state for checkpoints. `AdamW` implements it.
 */
import type * as tf from '@tensorflow/tfjs';
import type { TensorDict } from '../io/tensor_data.ts';

/** Serialisable optimiser state: the step count and named buffers (e.g. `exp_avg.<param>`). */
export interface OptimizerState {
  stepCount: number;
  tensors: TensorDict;
}

export interface Optimizer {
  /** Current base learning rate; the trainer sets it before each step from the lr schedule. */
  lr: number;
  /** The variables this optimiser updates (what gradients are taken with respect to). */
  readonly variables: tf.Variable[];
  /** One update from gradients keyed by variable name (what `tf.variableGrads` returns); the caller disposes them. */
  step(grads: Record<string, tf.Tensor>): void;
  /** Copies the state out (for a checkpoint). */
  state(): OptimizerState;
  /** Restores what {@link Optimizer.state} returned; throws naming a missing or mis-shaped buffer. */
  loadState(state: OptimizerState): void;
}
