/**
 * The contract between the engine/CLIs and every model (MMDet `BaseDetector`, MMSeg
 * `BaseSegmentor`): `loss` for training, `predict` for inference, `train()/eval()` and the state
 * dict from {@link Module}. Entry points see only this, never a concrete segmentor or detector.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../datasets/collate.ts';
import type { Module } from '../nn/module.ts';
import type { Prediction } from '../structures/prediction.ts';

/** What a model does; picks the default evaluator and the metric tracked for `best.json`. */
export type Task = 'segmentation' | 'detection';

export interface ModelPredictOptions {
  /** Test-time augmentation as the model's `test_cfg.aug` says (flip, scales). */
  augTest?: boolean;
}

export interface Model extends Module {
  readonly task: Task;
  /** Classes the model predicts (contiguous labels `0..numClasses-1`). */
  readonly numClasses: number;
  /**
   * Named scalars of one batch: keys containing `loss` are optimised (see {@link sumLosses}), the
   * others (accuracies) are logged. Call inside `tf.variableGrads`; every other tensor is disposed.
   */
  loss(batch: Batch): Record<string, tf.Scalar>;
  /**
   * One {@link Prediction} per image of `batch`, at the image's original size; no tensor escapes.
   * Detectors answer synchronously, segmentors (whose forward may be an async engine) with a Promise:
   * callers `await` it.
   */
  predict(batch: Batch, opts?: ModelPredictOptions): Prediction[] | Promise<Prediction[]>;
}

/**
 * What evaluation needs of a model: `predict` plus the train/eval mode switch. A {@link Model}
 * is one; so is a wrapper of an inference engine that is no {@link Module} (an onnxruntime session).
 * `train`/`eval` are restated rather than picked: {@link Module}'s return `this`, which a `Pick`
 * would fix to `Model`, so nothing but a Model could implement them.
 */
export type Predictor = Pick<Model, 'task' | 'numClasses' | 'training' | 'predict'> & {
  /** Switch to training (`mode` true, the default) or inference mode; the result is not used. */
  train(mode?: boolean): unknown;
  /** Switch to inference mode; the result is not used. */
  eval(): unknown;
};

/** Whether a `loss()` output is optimised (summed) rather than only logged. */
export const isLossKey = (key: string): boolean => key.includes('loss');

/**
 * The one loss-summing rule: the sum of the entries whose key contains `loss`.
 * @throws when there is none (a model must optimise something).
 */
export function sumLosses(losses: Record<string, tf.Scalar>): tf.Scalar {
  const keys = Object.keys(losses).filter(isLossKey);
  if (keys.length === 0) throw new Error(`sumLosses: no '*loss*' output among ${Object.keys(losses).join(', ') || '(none)'}`);
  return tf.tidy(() => (keys.length === 1 ? tf.clone(losses[keys[0]]) : tf.addN(keys.map((k) => losses[k]))) as tf.Scalar);
}

/** What a model builder gets besides its validated block. */
export interface ModelBuildOptions {
  /** The config file and the block's key path (`model`), for errors. */
  file?: string;
  path: string;
  /** Informational lines (checkpoint loading). */
  log: (line: string) => void;
  /** Read the backbone's `checkpoint` (default true; false when a full checkpoint follows). */
  loadCheckpoint?: boolean;
}
