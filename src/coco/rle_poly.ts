/**
 * Polygon rasterisation exactly as pycocotools' maskApi.c `rleFrPoly`, to the bit.
 */
import type { Rle } from './rle.ts';

const INT_MIN = -2147483648;

/**
 * The most boundary points (on the 5x grid) a polygon may have: a perimeter of ~3.3 million pixels,
 * 200 MB of work arrays. Only coordinates far outside any image reach it (pycocotools would try
 * to allocate gigabytes there).
 */
export const MAX_POLY_POINTS = 2 ** 24;

/** C's `(int)d` on x86-64: truncation; NaN and out-of-range give INT_MIN (what `cvttsd2si` returns). */
function cInt(d: number): number {
  return d > -2147483649 && d < 2147483648 ? d | 0 : INT_MIN;
}

/**
 * Rasterizes a polygon exactly as pycocotools' `rleFrPoly`: vertices are scaled by 5 and rounded
 * (`(int)(5 * v + .5)`), every edge is walked densely on that grid, the points where the walk
 * changes column are downsampled to the pixel grid, and the sorted boundary positions become runs.
 * Bit-identical to pycocotools (x86-64 build, no fused multiply-add), degenerate polygons included.
 *
 * @param xy `[2k]` vertices `x1, y1, x2, y2, ...` in pixels (`k = floor(xy.length / 2)`; an odd last number is ignored).
 * @param h image height; @param w image width.
 * @throws when the boundary would exceed {@link MAX_POLY_POINTS} points.
 */
export function rleFromPoly(xy: ArrayLike<number>, h: number, w: number): Rle {
  const scale = 5;
  const k = Math.floor(xy.length / 2);
  const x = new Int32Array(k + 1);
  const y = new Int32Array(k + 1);
  for (let j = 0; j < k; j++) {
    x[j] = cInt(scale * xy[2 * j] + 0.5);
    y[j] = cInt(scale * xy[2 * j + 1] + 0.5);
  }
  x[k] = x[0];
  y[k] = y[0];
  // Dense points along the whole boundary, on the 5x grid.
  let n = 0;
  for (let j = 0; j < k; j++) n += Math.max(Math.abs(x[j] - x[j + 1]), Math.abs(y[j] - y[j + 1])) + 1;
  if (n > MAX_POLY_POINTS) {
    throw new Error(`polygon boundary is ${n} points on the 5x grid (a perimeter of about ${Math.round(n / 5)} pixels), more than the ${MAX_POLY_POINTS} rasterized; are its coordinates far outside the image?`);
  }
  const u = new Int32Array(n);
  const v = new Int32Array(n);
  let m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j];
    let xe = x[j + 1];
    let ys = y[j];
    let ye = y[j + 1];
    const dx = Math.abs(xe - xs);
    const dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      [xs, xe] = [xe, xs];
      [ys, ye] = [ye, ys];
    }
    if (dx >= dy) {
      const s = (ye - ys) / dx; // NaN for a repeated vertex: C's (int)NaN is INT_MIN, cInt's too
      for (let d = 0; d <= dx; d++) {
        const t = flip ? dx - d : d;
        u[m] = t + xs;
        v[m] = cInt(ys + s * t + 0.5);
        m++;
      }
    } else {
      const s = (xe - xs) / dy;
      for (let d = 0; d <= dy; d++) {
        const t = flip ? dy - d : d;
        v[m] = t + ys;
        u[m] = cInt(xs + s * t + 0.5);
        m++;
      }
    }
  }
  // Points where the boundary changes column, downsampled to pixel centers.
  const wMax = w === 0 ? 2 ** 64 - 1 : w - 1; // C's unsigned `w-1`
  const a = new Uint32Array(m + 1);
  let na = 0;
  for (let j = 1; j < m; j++) {
    const uj = u[j];
    const up = u[j - 1];
    if (uj === up) continue;
    let xd = uj < up ? uj : uj - 1;
    xd = (xd + 0.5) / scale - 0.5;
    if (Math.floor(xd) !== xd || xd < 0 || xd > wMax) continue;
    let yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0) yd = 0;
    else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    a[na++] = xd * h + yd;
  }
  // Sorted boundary positions -> runs; a repeated position (zero difference) cancels out.
  a[na++] = h * w;
  const sorted = a.subarray(0, na).sort();
  let prev = 0;
  for (let j = 0; j < na; j++) {
    const t = sorted[j];
    sorted[j] = t - prev;
    prev = t;
  }
  const b = new Uint32Array(na);
  let mb = 0;
  let j = 0;
  b[mb++] = sorted[j++];
  while (j < na) {
    if (sorted[j] > 0) b[mb++] = sorted[j++];
    else {
      j++;
      if (j < na) b[mb - 1] += sorted[j++];
    }
  }
  return { h, w, counts: b.slice(0, mb) };
}
