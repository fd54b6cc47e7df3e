/**
 * Box math on flat typed arrays (no tfjs): areas, pairwise IoU/IoF, clipping and rescaling.
 * Boxes are xyxy absolute pixels, `[N*4]` float32, with MMDetection 2.x conventions (no `+1`).
 */

/** Asserts that `b` holds whole boxes; `what` names the argument in the message. */
export function assertBoxes(b: Float32Array, what: string): void {
  if (b.length % 4 !== 0) throw new Error(`${what}: expected a flat [N*4] xyxy array, got length ${b.length}`);
}

/** Areas `(x2 - x1) * (y2 - y1)` of `b` `[N*4]` xyxy -> `[N]`. */
export function boxArea(b: Float32Array): Float32Array {
  assertBoxes(b, 'boxArea');
  const n = b.length / 4;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
  return out;
}

/**
 * Pairwise overlaps of `a` `[N*4]` and `b` `[M*4]` (xyxy) -> `[N*M]` row-major (row i: box a[i]).
 * `'iou'`: inter / union; `'iof'`: inter / area(a). As MMDet `bbox_overlaps`, the denominator is
 * clamped to at least 1e-6, so degenerate boxes give 0 instead of NaN.
 */
export function boxIoU(a: Float32Array, b: Float32Array, mode: 'iou' | 'iof' = 'iou'): Float32Array {
  assertBoxes(a, 'boxIoU(a)');
  assertBoxes(b, 'boxIoU(b)');
  if (mode !== 'iou' && mode !== 'iof') throw new Error(`boxIoU: expected mode 'iou' or 'iof', got '${String(mode)}'`);
  const n = a.length / 4, m = b.length / 4;
  const out = new Float32Array(n * m);
  const areaB = new Float64Array(m);
  for (let j = 0; j < m; j++) areaB[j] = (b[4 * j + 2] - b[4 * j]) * (b[4 * j + 3] - b[4 * j + 1]);
  const eps = 1e-6;
  for (let i = 0; i < n; i++) {
    const ax1 = a[4 * i], ay1 = a[4 * i + 1], ax2 = a[4 * i + 2], ay2 = a[4 * i + 3];
    const areaA = (ax2 - ax1) * (ay2 - ay1);
    const row = i * m;
    for (let j = 0; j < m; j++) {
      const w = Math.min(ax2, b[4 * j + 2]) - Math.max(ax1, b[4 * j]);
      if (w <= 0) continue;
      const h = Math.min(ay2, b[4 * j + 3]) - Math.max(ay1, b[4 * j + 1]);
      if (h <= 0) continue;
      const inter = w * h;
      const denom = mode === 'iou' ? areaA + areaB[j] - inter : areaA;
      out[row + j] = inter / Math.max(denom, eps);
    }
  }
  return out;
}

/** Clips `b` `[N*4]` xyxy to the image `[h, w]` (x in [0, w], y in [0, h]); returns a new array. */
export function clipBoxes(b: Float32Array, [h, w]: readonly [number, number]): Float32Array {
  assertBoxes(b, 'clipBoxes');
  const out = new Float32Array(b.length);
  for (let i = 0; i < b.length; i += 4) {
    out[i] = Math.min(Math.max(b[i], 0), w);
    out[i + 1] = Math.min(Math.max(b[i + 1], 0), h);
    out[i + 2] = Math.min(Math.max(b[i + 2], 0), w);
    out[i + 3] = Math.min(Math.max(b[i + 3], 0), h);
  }
  return out;
}

/**
 * Maps `b` `[N*4]` xyxy from the resized image back to the original one: x / sx, y / sy
 * (`[sx, sy]` is the resize scale factor, as MMDet's `scale_factor` w, h). Returns a new array.
 */
export function rescaleBoxes(b: Float32Array, [sx, sy]: readonly [number, number]): Float32Array {
  assertBoxes(b, 'rescaleBoxes');
  if (!(sx > 0) || !(sy > 0)) throw new Error(`rescaleBoxes: expected positive scale factors, got [${sx}, ${sy}]`);
  const out = new Float32Array(b.length);
  for (let i = 0; i < b.length; i += 4) {
    out[i] = b[i] / sx;
    out[i + 1] = b[i + 1] / sy;
    out[i + 2] = b[i + 2] / sx;
    out[i + 3] = b[i + 3] / sy;
  }
  return out;
}
