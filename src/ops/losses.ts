/**
 * Segmentation losses and metrics with MMSegmentation semantics.
 *
 * `crossEntropy` follows mmseg 1.x `CrossEntropyLoss(use_sigmoid=False)`:
 *   per-pixel loss = classWeight[y] * (-log_softmax(logits)[y]), 0 on pixels with y == ignoreIndex;
 *   reduction 'mean' with
 *     - `avgNonIgnore: false` (MMSeg 1.x DEFAULT, `avg_non_ignore=False`): sum / (N*H*W), i.e. the mean
 *       over ALL pixels, ignored ones counting as 0;
 *     - `avgNonIgnore: true`: sum / (#non-ignored pixels + float32 eps), mmseg's `avg_factor`.
 *   Per-pixel weights (the OHEM sampler's) multiply the loss before that reduction, as mmseg's `weight`.
 *   Class weights are NOT renormalised (unlike torch's `reduction='mean'` with `weight`), as in mmseg.
 *   The result is multiplied by `lossWeight` (default 1).
 * Log-softmax is the numerically stable `x - max - log(sum(exp(x - max)))` (tf.logSoftmax).
 */
import * as tf from '@tensorflow/tfjs';
import { hostKernelsAvailable } from '../kernels/host.ts';
import { labelLogSoftmax } from '../kernels/softmax.ts';

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  classWeights?: number[];
  /** Divide by the number of non-ignored pixels instead of all pixels (mmseg default: false). */
  avgNonIgnore?: boolean;
  lossWeight?: number;
  /** Per-pixel weights shaped like `labels` (mmseg `weight`, e.g. from the OHEM sampler). */
  pixelWeights?: tf.Tensor;
}

const F32_EPS = 1.1920928955078125e-7;

/**
 * Log-probability each pixel's logits `[..., C]` give its label `[...]`, flattened to `[P]`, with the
 * non-ignored mask and the labels with ignored ones replaced by 0 (the caller disposes or tidies).
 */
export function labelLogProbs(logits: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): { logp: tf.Tensor1D; valid: tf.Tensor1D; safe: tf.Tensor1D } {
  const c = logits.shape[logits.rank - 1];
  const flatLabels = labels.reshape([-1]).toInt();
  const valid = tf.notEqual(flatLabels, ignoreIndex) as tf.Tensor1D;
  const safe = tf.where(valid, flatLabels, tf.zerosLike(flatLabels)) as tf.Tensor1D;
  const flat = logits.reshape([-1, c]) as tf.Tensor2D;
  const logp = hostKernelsAvailable()
    ? labelLogSoftmax(flat, safe)
    : tf.sum(tf.mul(tf.logSoftmax(flat, -1), tf.oneHot(safe, c)), -1) as tf.Tensor1D;
  return { logp, valid, safe };
}

/** logits `[..., C]` float, labels `[...]` int32 → scalar loss. */
export function crossEntropy(logits: tf.Tensor, labels: tf.Tensor, opts: CrossEntropyOptions = {}): tf.Scalar {
  const ignoreIndex = opts.ignoreIndex ?? 255;
  const avgNonIgnore = opts.avgNonIgnore ?? false;
  const lossWeight = opts.lossWeight ?? 1;
  return tf.tidy(() => {
    const c = logits.shape[logits.rank - 1];
    if (labels.shape.join(',') !== logits.shape.slice(0, -1).join(',')) {
      throw new Error(`crossEntropy: labels [${labels.shape}] do not match logits [${logits.shape}]`);
    }
    const { logp, valid, safe } = labelLogProbs(logits, labels, ignoreIndex);
    let nll = tf.neg(logp);
    const validF = valid.toFloat();
    nll = tf.mul(nll, validF);
    if (opts.classWeights) {
      if (opts.classWeights.length !== c) throw new Error(`crossEntropy: ${opts.classWeights.length} class weights for ${c} classes`);
      nll = tf.mul(nll, tf.gather(tf.tensor1d(opts.classWeights), safe));
    }
    if (opts.pixelWeights) {
      if (opts.pixelWeights.shape.join(',') !== labels.shape.join(',')) throw new Error(`crossEntropy: pixel weights [${opts.pixelWeights.shape}] do not match labels [${labels.shape}]`);
      nll = tf.mul(nll, opts.pixelWeights.reshape([-1]));
    }
    const total = tf.sum(nll);
    const denom = avgNonIgnore ? tf.add(tf.sum(validF), F32_EPS) : tf.scalar(labels.size);
    return tf.mul(tf.div(total, denom), lossWeight) as tf.Scalar;
  });
}

/**
 * Top-1 pixel accuracy in percent over pixels whose label is not `ignoreIndex` (mmseg `accuracy`);
 * 0 when every pixel is ignored. No gradient path.
 */
export function accuracy(logits: tf.Tensor, labels: tf.Tensor, ignoreIndex = 255): tf.Scalar {
  return tf.tidy(() => {
    const c = logits.shape[logits.rank - 1];
    const pred = tf.argMax(logits.reshape([-1, c]), -1).toInt();
    const lab = labels.reshape([-1]).toInt();
    const valid = tf.notEqual(lab, ignoreIndex).toFloat();
    const correct = tf.mul(tf.equal(pred, lab).toFloat(), valid);
    const n = tf.sum(valid);
    return tf.where(tf.greater(n, 0), tf.div(tf.mul(tf.sum(correct), 100), tf.maximum(n, 1)), tf.scalar(0)) as tf.Scalar;
  });
}
