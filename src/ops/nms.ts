/**
 * Non-maximum suppression with torchvision semantics, in float32 arithmetic like its CPU kernel:
 * boxes are visited by score, descending (stable: ties keep index order); a kept box suppresses
 * every later box whose IoU with it is strictly greater than `iouThr`.
 */
import { assertBoxes } from './boxes.ts';

const f32 = Math.fround;

function checkScores(boxes: Float32Array, scores: Float32Array, fn: string): void {
  assertBoxes(boxes, fn);
  if (scores.length * 4 !== boxes.length) {
    throw new Error(`${fn}: expected one score per box (${boxes.length / 4}), got ${scores.length}`);
  }
}

/** Indices `0..n-1` ordered by score descending, ties by index ascending. */
function orderByScore(scores: Float32Array, subset?: Int32Array): Int32Array {
  const order = subset ? Int32Array.from(subset) : Int32Array.from({ length: scores.length }, (_, i) => i);
  return order.sort((i, j) => scores[j] - scores[i] || i - j);
}

/** Greedy NMS over `order` (already sorted); returns the kept indices in that order. */
function nmsSorted(boxes: Float32Array, order: Int32Array, iouThr: number): Int32Array {
  const n = order.length;
  // Gather the boxes in visiting order so the inner loop reads memory contiguously.
  const x1 = new Float32Array(n), y1 = new Float32Array(n), x2 = new Float32Array(n), y2 = new Float32Array(n);
  const area = new Float32Array(n);
  for (let k = 0; k < n; k++) {
    const o = 4 * order[k];
    x1[k] = boxes[o]; y1[k] = boxes[o + 1]; x2[k] = boxes[o + 2]; y2[k] = boxes[o + 3];
    area[k] = f32(f32(x2[k] - x1[k]) * f32(y2[k] - y1[k]));
  }
  const suppressed = new Uint8Array(n);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    if (suppressed[i]) continue;
    keep.push(order[i]);
    const ix1 = x1[i], iy1 = y1[i], ix2 = x2[i], iy2 = y2[i], iarea = area[i];
    for (let j = i + 1; j < n; j++) {
      if (suppressed[j]) continue;
      const w = f32(Math.min(ix2, x2[j]) - Math.max(ix1, x1[j]));
      if (w <= 0) continue; // no overlap: IoU 0 never exceeds a threshold >= 0
      const h = f32(Math.min(iy2, y2[j]) - Math.max(iy1, y1[j]));
      if (h <= 0) continue;
      const inter = f32(w * h);
      const iou = f32(inter / f32(f32(iarea + area[j]) - inter));
      if (iou > iouThr) suppressed[j] = 1;
    }
  }
  return Int32Array.from(keep);
}

/**
 * torchvision `nms`: `boxes` `[N*4]` xyxy, `scores` `[N]` -> kept indices `[K]` sorted by score
 * descending. O(N^2) worst case.
 */
export function nms(boxes: Float32Array, scores: Float32Array, iouThr: number): Int32Array {
  checkScores(boxes, scores, 'nms');
  return nmsSorted(boxes, orderByScore(scores), iouThr);
}

/**
 * torchvision `batched_nms`: NMS run independently per category `idxs` `[N]` (boxes of different
 * categories never suppress each other) -> kept indices `[K]` sorted by score descending (ties by
 * index). Done by grouping per category, which equals torchvision's coordinate-offset trick without
 * its float rounding of offset coordinates.
 */
export function batchedNms(boxes: Float32Array, scores: Float32Array, idxs: Int32Array, iouThr: number): Int32Array {
  checkScores(boxes, scores, 'batchedNms');
  if (idxs.length !== scores.length) {
    throw new Error(`batchedNms: expected one category index per box (${scores.length}), got ${idxs.length}`);
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < idxs.length; i++) {
    const g = groups.get(idxs[i]);
    if (g) g.push(i);
    else groups.set(idxs[i], [i]);
  }
  const kept: number[] = [];
  for (const members of groups.values()) {
    for (const k of nmsSorted(boxes, orderByScore(scores, Int32Array.from(members)), iouThr)) kept.push(k);
  }
  return orderByScore(scores, Int32Array.from(kept));
}
