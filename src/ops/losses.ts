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
import { hostKernelsAvailable, runOnHost } from '../kernels/host.ts';
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
 * Log-probability each pixel's logits `[..., C]` give its label `[...]`, flattened to `[P]` (0 on
 * pixels labelled `ignoreIndex`, with no gradient there), and the non-ignored mask as float32 0/1
 * (the caller disposes or tidies).
 */
export function labelLogProbs(logits: tf.Tensor, labels: tf.Tensor, ignoreIndex: number): { logp: tf.Tensor1D; valid: tf.Tensor1D } {
  const c = logits.shape[logits.rank - 1];
  const flatLabels = labels.reshape([-1]).toInt() as tf.Tensor1D;
  const flat = logits.reshape([-1, c]) as tf.Tensor2D;
  if (hostKernelsAvailable()) {
    // One pass each over the labels and the logits instead of ~10 kernels (comparisons against a
    // broadcast scalar are slow on wasm: 0.35 ms for 65k labels).
    const valid = runOnHost([flatLabels], [[flatLabels.size]], ([y], [v]) => {
      for (let i = 0; i < y.length; i++) v[i] = y[i] === ignoreIndex ? 0 : 1;
    })[0] as tf.Tensor1D;
    return { logp: labelLogSoftmax(flat, flatLabels, ignoreIndex), valid };
  }
  const valid = tf.notEqual(flatLabels, ignoreIndex).toFloat() as tf.Tensor1D;
  const safe = safeLabels(flatLabels, ignoreIndex);
  return { logp: tf.mul(tf.sum(tf.mul(tf.logSoftmax(flat, -1), tf.oneHot(safe, c)), -1), valid) as tf.Tensor1D, valid };
}

/** Labels with `ignoreIndex` replaced by 0 (indices for gathers). */
function safeLabels(flatLabels: tf.Tensor1D, ignoreIndex: number): tf.Tensor1D {
  return tf.where(tf.notEqual(flatLabels, ignoreIndex), flatLabels, tf.zerosLike(flatLabels)) as tf.Tensor1D;
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
    const { logp, valid } = labelLogProbs(logits, labels, ignoreIndex);
    let nll = tf.neg(logp); // 0 on ignored pixels
    if (opts.classWeights) {
      if (opts.classWeights.length !== c) throw new Error(`crossEntropy: ${opts.classWeights.length} class weights for ${c} classes`);
      nll = tf.mul(nll, tf.gather(tf.tensor1d(opts.classWeights), safeLabels(labels.reshape([-1]).toInt() as tf.Tensor1D, ignoreIndex)));
    }
    if (opts.pixelWeights) {
      if (opts.pixelWeights.shape.join(',') !== labels.shape.join(',')) throw new Error(`crossEntropy: pixel weights [${opts.pixelWeights.shape}] do not match labels [${labels.shape}]`);
      nll = tf.mul(nll, opts.pixelWeights.reshape([-1]));
    }
    const total = tf.sum(nll);
    const denom = avgNonIgnore ? tf.add(tf.sum(valid), F32_EPS) : tf.scalar(labels.size);
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
    const flat = logits.reshape([-1, c]);
    const lab = labels.reshape([-1]).toInt();
    if (hostKernelsAvailable()) {
      // One pass instead of argMax, three comparisons and two sums over the full-size logits. Ties
      // go to the first maximum, as argMax; float32 arithmetic as the kernels' (exact counts, one
      // float32 division).
      return runOnHost([flat, lab], [[]], ([x, y], [out]) => {
        let correct = 0, n = 0;
        for (let r = 0, o = 0; r < y.length; r++, o += c) {
          if (y[r] === ignoreIndex) continue;
          n++;
          let best = 0;
          for (let k = 1; k < c; k++) if (x[o + k] > x[o + best]) best = k;
          if (best === y[r]) correct++;
        }
        out[0] = n > 0 ? Math.fround(Math.fround(correct * 100) / n) : 0;
      })[0] as tf.Scalar;
    }
    const pred = tf.argMax(flat, -1).toInt();
    const valid = tf.notEqual(lab, ignoreIndex).toFloat();
    const correct = tf.mul(tf.equal(pred, lab).toFloat(), valid);
    const n = tf.sum(valid);
    return tf.where(tf.greater(n, 0), tf.div(tf.mul(tf.sum(correct), 100), tf.maximum(n, 1)), tf.scalar(0)) as tf.Scalar;
  });
}
