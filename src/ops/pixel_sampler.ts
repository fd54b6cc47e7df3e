/**
 * Online hard example mining for segmentation (mmseg `OHEMPixelSampler`): a 0/1 weight per pixel
 * that keeps the hard ones in the loss.
 *
 * With `thresh`: the probability each pixel gives its label is computed (softmax); the threshold is
 * `max(thresh, p_(k))`, where `p_(k)` is the k-th smallest of those probabilities over non-ignored
 * pixels (0-based, k = min(minKept * N, valid - 1)); pixels below it get weight 1. So at least about
 * `minKept` pixels per image are kept, and more where many are below `thresh`.
 * Without `thresh`: the `minKept * N` non-ignored pixels with the largest cross-entropy get weight 1.
 * Ignored pixels get 0. No gradient flows through the weights (they are computed on host values).
 */
import * as tf from '@tensorflow/tfjs';
import { labelLogProbs } from './losses.ts';

export interface OhemOptions {
  /** Probability below which a pixel is hard (mmseg `thresh`); undefined: rank by loss. */
  thresh?: number;
  /** Pixels per image kept at least (mmseg `min_kept`). */
  minKept: number;
  ignoreIndex?: number;
}

/** The value of rank `k` (0-based, ascending) of `a`; reorders `a` (quickselect). */
export function kthSmallest(a: Float32Array, k: number): number {
  let lo = 0, hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i]; a[i] = a[j]; a[j] = t;
        i++; j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/**
 * Per-pixel weights `[N, H, W]` (float32 0/1) for logits `[N, H, W, C]` and labels `[N, H, W]`
 * (int, `ignoreIndex` = ignored) of the same spatial size.
 */
export function ohemPixelWeights(logits: tf.Tensor4D, labels: tf.Tensor3D, opts: OhemOptions): tf.Tensor3D {
  const ignore = opts.ignoreIndex ?? 255;
  const [n, h, w] = logits.shape;
  if (labels.shape.join(',') !== [n, h, w].join(',')) throw new Error(`ohemPixelWeights: labels [${labels.shape}] do not match logits [${logits.shape}]`);
  const lab = labels.dataSync();
  // Score per pixel: the probability of its label (thresh mode) or minus its cross-entropy.
  const score = tf.tidy(() => {
    const { logp } = labelLogProbs(logits, labels, ignore);
    return (opts.thresh !== undefined ? tf.exp(logp) : logp).dataSync() as Float32Array;
  });
  const valid: number[] = [];
  for (let i = 0; i < lab.length; i++) if (lab[i] !== ignore) valid.push(i);
  const weights = new Float32Array(lab.length);
  if (valid.length > 0) {
    const kept = opts.minKept * n;
    const vals = Float32Array.from(valid, (i) => score[i]);
    if (opts.thresh !== undefined) {
      const threshold = Math.max(kthSmallest(vals, Math.min(kept, valid.length - 1)), opts.thresh);
      for (const i of valid) if (score[i] < threshold) weights[i] = 1;
    } else if (kept >= valid.length) {
      for (const i of valid) weights[i] = 1;
    } else if (kept > 0) {
      // The `kept` lowest log-probabilities (largest losses); ties at the boundary in index order.
      const cut = kthSmallest(vals, kept - 1);
      let below = 0;
      for (const i of valid) if (score[i] < cut) { weights[i] = 1; below++; }
      for (const i of valid) if (below < kept && score[i] === cut) { weights[i] = 1; below++; }
    }
  }
  return tf.tensor3d(weights, [n, h, w]);
}
