/**
 * Detection losses with MMDetection 2.x semantics (mmdet/models/losses).
 *
 * Every loss is element-wise, then reduced as `weight_reduce_loss(loss, weight, 'mean', avg_factor)`:
 * multiplied by `weights` when given, then `sum / (avgFactor + eps)` (eps = float32 eps, MMDet ≥ 2.25)
 * when `avgFactor` is given, else the mean over all elements. Empty inputs give 0 (MMDet's
 * `pred.sum() * 0` guard) instead of NaN. `weights` either match the loss element-wise or hold one
 * value per row (`[N]`, broadcast over the other axes). All losses are differentiable w.r.t. their
 * first argument on every backend; loss weights (`loss_weight`) are the caller's.
 */
import * as tf from '@tensorflow/tfjs';

/** A per-element or per-row weight: a tensor or a Float32Array. */
export type LossWeights = tf.Tensor | Float32Array;

const F32_EPS = 1.1920928955078125e-7;

function asTensor(x: tf.Tensor | Float32Array | Int32Array, shape: number[], what: string, fn: string): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  if (x instanceof tf.Tensor) {
    if (x.size !== size) throw new Error(`${fn}: expected ${what} of ${size} elements [${shape}], got [${x.shape}]`);
    return x.shape.join(',') === shape.join(',') ? x : x.reshape(shape);
  }
  if (x.length !== size) throw new Error(`${fn}: expected ${what} of ${size} elements [${shape}], got length ${x.length}`);
  return tf.tensor(x, shape, x instanceof Int32Array ? 'int32' : 'float32');
}

/**
 * MMDet `weight_reduce_loss` with reduction 'mean'.
 * @param loss element-wise loss `[N, ...]`.
 * @param weights `[N, ...]` like `loss`, or `[N]` per row.
 * @param avgFactor divide the weighted sum by this (plus float32 eps) instead of taking the mean.
 */
export function weightReduceLoss(loss: tf.Tensor, weights?: LossWeights, avgFactor?: number): tf.Scalar {
  return tf.tidy(() => {
    let l = loss;
    if (weights !== undefined) {
      const n = weights instanceof tf.Tensor ? weights.size : weights.length;
      const rowShape = [loss.shape[0] ?? 1, ...loss.shape.slice(1).map(() => 1)];
      const shape = n === loss.size ? loss.shape : rowShape;
      l = tf.mul(l, asTensor(weights, shape, 'weights', 'weightReduceLoss'));
    }
    if (l.size === 0) {
      // tfjs-wasm's Sum of an empty tensor reads stale memory: sum a lone 0, staying on the tape.
      return tf.sum(tf.concat([l.reshape([-1]), tf.zeros([1])])) as tf.Scalar;
    }
    if (avgFactor !== undefined) return tf.div(tf.sum(l), avgFactor + F32_EPS) as tf.Scalar;
    return tf.mean(l) as tf.Scalar;
  });
}

/**
 * `binary_cross_entropy_with_logits` (stable form `max(x, 0) - x*t + log(1 + exp(-|x|))`), reduced.
 * @param logits any shape, e.g. RPN objectness `[N]` or `[N, K]`.
 * @param targets same number of elements, in [0, 1].
 */
export function sigmoidBCE(logits: tf.Tensor, targets: tf.Tensor | Float32Array, weights?: LossWeights, avgFactor?: number): tf.Scalar {
  return tf.tidy(() => weightReduceLoss(bceWithLogits(logits, asTensor(targets, logits.shape, 'targets', 'sigmoidBCE')), weights, avgFactor));
}

function bceWithLogits(x: tf.Tensor, t: tf.Tensor): tf.Tensor {
  return tf.add(tf.sub(tf.relu(x), tf.mul(x, t)), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
}

/**
 * Softmax cross-entropy (`F.cross_entropy(reduction='none')`), reduced.
 * @param logits `[N, C]`.
 * @param labels `[N]` int in `[0, C)`; a label outside it (e.g. torch's ignore index -100) contributes 0.
 * @param weights `[N]` per-sample.
 */
export function softmaxCE(logits: tf.Tensor2D, labels: Int32Array | tf.Tensor1D, weights?: LossWeights, avgFactor?: number): tf.Scalar {
  return tf.tidy(() => {
    if (logits.rank !== 2) throw new Error(`softmaxCE: expected logits [N, C], got [${logits.shape}]`);
    const [n, c] = logits.shape;
    const lab = asTensor(labels, [n], 'labels', 'softmaxCE').toInt() as tf.Tensor1D;
    const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits, -1), tf.oneHot(lab, c)), -1));
    return weightReduceLoss(nll, weights, avgFactor);
  });
}

/** `|pred - target|`, reduced. `pred` any shape (e.g. box deltas `[N, 4]`), `target` the same number of elements. */
export function l1Loss(pred: tf.Tensor, target: tf.Tensor | Float32Array, weights?: LossWeights, avgFactor?: number): tf.Scalar {
  return tf.tidy(() => weightReduceLoss(tf.abs(tf.sub(pred, asTensor(target, pred.shape, 'target', 'l1Loss'))), weights, avgFactor));
}

/**
 * A box-regression loss chosen by config: MMDetection's `L1Loss` or `SmoothL1Loss` (with its beta)
 * on deltas, or `GIoULoss` on decoded boxes (a head's `reg_decoded_bbox: true`).
 */
export type BoxLossSpec = { type: 'L1Loss' } | { type: 'SmoothL1Loss'; beta: number } | { type: 'GIoULoss' };

/**
 * {@link l1Loss}, {@link smoothL1Loss} or {@link giouLoss} as `spec` says; same arguments (for GIoU,
 * `pred`/`target` are xyxy boxes `[N, 4]` and `weights` `[N, 4]` or `[N]`).
 */
export function boxLoss(spec: BoxLossSpec, pred: tf.Tensor, target: tf.Tensor | Float32Array, weights?: LossWeights, avgFactor?: number): tf.Scalar {
  if (spec.type === 'GIoULoss') return giouLoss(pred as tf.Tensor2D, target, weights, avgFactor);
  return spec.type === 'L1Loss' ? l1Loss(pred, target, weights, avgFactor) : smoothL1Loss(pred, target, spec.beta, weights, avgFactor);
}

/**
 * MMDet `GIoULoss`: `1 - GIoU(pred, target)` per box pair, reduced. `GIoU = IoU - (C - U) / C`
 * with `U` the union and `C` the smallest enclosing box's area, both plus `eps` (1e-6), so the
 * value and its gradient stay finite for degenerate (zero-area or inverted) boxes.
 * @param pred `[N, 4]` xyxy boxes (differentiable)
 * @param target `[N, 4]` xyxy boxes
 * @param weights `[N, 4]` (averaged over the 4 coordinates, as MMDet) or `[N]`
 */
export function giouLoss(pred: tf.Tensor2D, target: tf.Tensor | Float32Array, weights?: LossWeights, avgFactor?: number, eps = 1e-6): tf.Scalar {
  return tf.tidy(() => {
    if (pred.rank !== 2 || pred.shape[1] !== 4) throw new Error(`giouLoss: expected boxes [N, 4], got [${pred.shape}]`);
    const n = pred.shape[0];
    const t = asTensor(target, [n, 4], 'target', 'giouLoss');
    const [px1, py1, px2, py2] = tf.unstack(pred, 1);
    const [tx1, ty1, tx2, ty2] = tf.unstack(t, 1);
    const area = (x1: tf.Tensor, y1: tf.Tensor, x2: tf.Tensor, y2: tf.Tensor) => tf.mul(tf.sub(x2, x1), tf.sub(y2, y1));
    const overlap = tf.mul(tf.relu(tf.sub(tf.minimum(px2, tx2), tf.maximum(px1, tx1))), tf.relu(tf.sub(tf.minimum(py2, ty2), tf.maximum(py1, ty1))));
    const union = tf.add(tf.sub(tf.add(area(px1, py1, px2, py2), area(tx1, ty1, tx2, ty2)), overlap), eps);
    const enclose = tf.add(tf.mul(tf.relu(tf.sub(tf.maximum(px2, tx2), tf.minimum(px1, tx1))), tf.relu(tf.sub(tf.maximum(py2, ty2), tf.minimum(py1, ty1)))), eps);
    const giou = tf.sub(tf.div(overlap, union), tf.div(tf.sub(enclose, union), enclose));
    let w: LossWeights | undefined = weights;
    const size = w === undefined ? 0 : w instanceof tf.Tensor ? w.size : w.length;
    if (w !== undefined && size === 4 * n) w = tf.mean(asTensor(w, [n, 4], 'weights', 'giouLoss'), 1);
    return weightReduceLoss(tf.sub(1, giou), w, avgFactor);
  });
}

/**
 * Smooth L1 (`d < beta ? 0.5 d² / beta : d - 0.5 beta`, `d = |pred - target|`), reduced.
 * @param beta > 0 (MMDet default 1.0).
 */
export function smoothL1Loss(pred: tf.Tensor, target: tf.Tensor | Float32Array, beta: number, weights?: LossWeights, avgFactor?: number): tf.Scalar {
  if (!(beta > 0)) throw new Error(`smoothL1Loss: expected beta > 0, got ${beta}`);
  return tf.tidy(() => {
    const d = tf.abs(tf.sub(pred, asTensor(target, pred.shape, 'target', 'smoothL1Loss')));
    // = 0.5 m² / beta + (d - m) with m = min(d, beta): no comparison on the tape (tfjs has no Less gradient).
    const m = tf.minimum(d, beta);
    const loss = tf.add(tf.div(tf.mul(tf.square(m), 0.5), beta), tf.sub(d, m));
    return weightReduceLoss(loss, weights, avgFactor);
  });
}

/**
 * MMDet `mask_cross_entropy`: BCE with logits of each positive's own-class mask, mean over all pixels.
 * @param maskLogits `[P, h, w]` (the label's channel already selected).
 * @param targets `[P, h, w]` 0/1 (e.g. `maskTargets`' Float32Array).
 * @param numMasks divide the sum by `numMasks * h * w` instead of `P * h * w` (a batch-wide count of
 *   positives over the processes, see ops/batch_counts.ts).
 */
export function maskBCE(maskLogits: tf.Tensor3D, targets: tf.Tensor3D | Float32Array, numMasks?: number): tf.Scalar {
  return tf.tidy(() => {
    if (maskLogits.rank !== 3) throw new Error(`maskBCE: expected mask logits [P, h, w], got [${maskLogits.shape}]`);
    const loss = bceWithLogits(maskLogits, asTensor(targets, maskLogits.shape, 'targets', 'maskBCE'));
    if (numMasks === undefined || loss.size === 0) return weightReduceLoss(loss);
    const [, h, w] = maskLogits.shape;
    return tf.div(tf.sum(loss), numMasks * h * w) as tf.Scalar;
  });
}

/**
 * MMDet `accuracy` (top-1): percent of rows whose argmax equals the label; 0 for no rows. No gradient.
 * @param logits `[N, C]`.
 * @param labels `[N]` int.
 * @param numRows the percentage's denominator instead of `N` (a batch-wide share, see ops/batch_counts.ts).
 */
export function accuracy(logits: tf.Tensor2D, labels: Int32Array | tf.Tensor1D, numRows?: number): tf.Scalar {
  return tf.tidy(() => {
    if (logits.rank !== 2) throw new Error(`accuracy: expected logits [N, C], got [${logits.shape}]`);
    const n = logits.shape[0];
    if (n === 0) return tf.scalar(0);
    const lab = asTensor(labels, [n], 'labels', 'accuracy').toInt();
    const correct = tf.sum(tf.equal(tf.argMax(logits, -1).toInt(), lab).toFloat());
    return tf.mul(correct, 100 / (numRows ?? n)) as tf.Scalar;
  });
}
