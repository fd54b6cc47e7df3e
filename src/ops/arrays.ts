/**
 * Small helpers over the flat typed arrays the detection heads pass between stages (`[N * 4]`
 * boxes, per-image lists) and for reading a tensor back once.
 */
import type * as tf from '@tensorflow/tfjs';

/** `[K * 4]` rows `idx` of the `[N * 4]` boxes. */
export function pickBoxes(boxes: Float32Array, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * 4);
  for (let k = 0; k < idx.length; k++) out.set(boxes.subarray(idx[k] * 4, idx[k] * 4 + 4), k * 4);
  return out;
}

/** Indices of the `k` largest scores, best first, ties by index (all when `k >= n`). */
export function topK(scores: Float32Array, k: number): Int32Array {
  const idx = Int32Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((p, q) => scores[q] - scores[p] || p - q);
  return k < idx.length ? idx.slice(0, k) : idx;
}

type Flat = Float32Array | Int32Array | Uint8Array;

/** One array of the parts, end to end (of the first part's kind; Float32Array when empty). */
export function concatArrays<T extends Flat>(parts: readonly T[]): T {
  const len = parts.reduce((s, p) => s + p.length, 0);
  const Ctor = (parts[0]?.constructor ?? Float32Array) as new (n: number) => T;
  const out = new Ctor(len);
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

/** The values of `t`, which is disposed. */
export function readOnce(t: tf.Tensor): Float32Array {
  const v = t.dataSync() as Float32Array;
  t.dispose();
  return v;
}
