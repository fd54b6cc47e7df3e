/**
 * Run-length-encoded masks as typed arrays: the fast internal form of the mask API, with
 * maskApi.c's algorithms (pycocotools) ported to give the same numbers, bit for bit. Everything
 * works on the runs (area, bbox, merge, IoU), never on pixels, except the mask conversions.
 *
 * Callers convert compressed strings once (`toRle` in `mask.ts`) and keep {@link Rle}s in hot loops.
 */
import type { BoxXYWH } from './types.ts';

/**
 * A binary mask `[h, w]` as runs over its COLUMN-MAJOR flattening (pixel `(x, y)` is index
 * `x * h + y`): `counts[0]` zeros, then `counts[1]` ones, and so on alternating. The first run may
 * be 0 (the mask starts with a one); the runs add up to `h * w`.
 */
export interface Rle {
  h: number;
  w: number;
  counts: Uint32Array;
}

/** Number of ones of the mask: the sum of the odd runs. */
export function rleArea(r: Rle): number {
  const c = r.counts;
  let a = 0;
  for (let j = 1; j < c.length; j += 2) a += c[j];
  return a;
}

/**
 * Bounding box `[x, y, w, h]` of the ones, as pycocotools' `rleToBbox` (as fixed in 2021, "fix bug
 * in rleToBbox", the version in the PyPI package since; checked against 2.0.11): a run of ones that crosses a column boundary makes the box
 * span the full image height; zero-length runs of ones are skipped; no runs at all (fewer than two
 * counts) gives `[0, 0, 0, 0]`. Widths are unsigned 32-bit like the C code, so a mask whose runs
 * are all zeros but that has two or more counts gives C's wrapped widths, as pycocotools does.
 * The runs must add up to `h * w` (as every valid {@link Rle}'s do).
 */
export function rleToBbox(r: Rle): BoxXYWH {
  const { h, w, counts } = r;
  const m = counts.length - (counts.length % 2);
  if (m === 0) return [0, 0, 0, 0];
  let xs = w;
  let ys = h;
  let xe = 0;
  let ye = 0;
  let cc = 0;
  for (let j = 0; j < m; j += 2) {
    const start = cc + counts[j];
    const len = counts[j + 1];
    cc = start + len;
    if (len === 0) continue;
    const xStart = Math.floor(start / h);
    const yStart = start - xStart * h;
    let xEnd = xStart;
    let yEnd = yStart + len - 1; // the run's last pixel, in the same column unless it passes row h-1
    if (yEnd >= h) {
      xEnd = Math.floor((cc - 1) / h);
      yEnd = cc - 1 - xEnd * h;
    }
    if (xStart < xs) xs = xStart;
    if (xEnd > xe) xe = xEnd;
    if (xStart < xEnd) {
      ys = 0;
      ye = h - 1;
    } else {
      if (yStart < ys) ys = yStart;
      if (yEnd > ye) ye = yEnd;
    }
  }
  return [xs, ys, (xe - xs + 1) >>> 0, (ye - ys + 1) >>> 0];
}

/** maskApi.c's merge of two run lists into `out` (capacity `a.length + b.length + 1`); returns the run count. */
function mergeRuns(A: Uint32Array, B: Uint32Array, intersect: boolean, out: Uint32Array): number {
  const am = A.length;
  const bm = B.length;
  let ca = am > 0 ? A[0] : 0;
  let cb = bm > 0 ? B[0] : 0;
  let va = 0;
  let vb = 0;
  let v = 0;
  let a = 1;
  let b = 1;
  let cc = 0;
  let ct = 1;
  let m = 0;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    if (c === 0 && stuck(ca, a, am, cb, b, bm)) {
      throw new Error('rleMerge: the runs of the masks do not add up to the same length (pycocotools loops forever here)');
    }
    cc += c;
    ca -= c;
    if (ca === 0 && a < am) {
      ca = A[a++];
      va ^= 1;
    }
    cb -= c;
    if (cb === 0 && b < bm) {
      cb = B[b++];
      vb ^= 1;
    }
    ct = ca + cb;
    const vp = v;
    v = intersect ? va & vb : va | vb;
    if (v !== vp || ct === 0) {
      out[m++] = cc;
      cc = 0;
    }
  }
  return m;
}

/**
 * Whether maskApi.c's two-list walk is stuck (an empty current run on an exhausted list, a
 * non-empty one on the other): it happens when the lists add up to different lengths, which the
 * C code answers with an endless loop.
 */
function stuck(ca: number, a: number, am: number, cb: number, b: number, bm: number): boolean {
  return (ca === 0 && a >= am && cb > 0) || (cb === 0 && b >= bm && ca > 0);
}

/**
 * Union (or intersection) of masks of one size, as pycocotools' `rleMerge`: one mask is returned
 * as a copy of its runs unchanged; two or more give canonical runs (no zero-length runs but the
 * first). Zero-length runs past the first (user-written RLEs only) make maskApi.c's walk stop
 * early; the result is still pycocotools', and where pycocotools would loop forever this throws.
 *
 * @param rs `[n]` masks, `n >= 1`, all `h x w` (a size mismatch throws; pycocotools returns an empty `0 x 0` RLE).
 */
export function rleMerge(rs: Rle[], intersect: boolean): Rle {
  if (rs.length === 0) throw new Error('rleMerge: no RLEs to merge (needs at least one)');
  const { h, w } = rs[0];
  for (let i = 1; i < rs.length; i++) {
    if (rs[i].h !== h || rs[i].w !== w) {
      throw new Error(`rleMerge: RLE ${i} is ${rs[i].h}x${rs[i].w} but RLE 0 is ${h}x${w}; all must have one size`);
    }
  }
  let acc = rs[0].counts.slice();
  for (let i = 1; i < rs.length; i++) {
    const b = rs[i].counts;
    const out = new Uint32Array(acc.length + b.length + 1);
    acc = out.slice(0, mergeRuns(acc, b, intersect, out));
  }
  return { h, w, counts: acc };
}

/**
 * The mask of a box, as pycocotools' `rleFrBbox`: the polygon of its four corners through
 * {@link rleFromPoly}, so pixel `(x, y)` is in when its center `(x + .5, y + .5)` falls in the box
 * with its sides rounded to fifths of a pixel (a center on the left/top side is out, on the
 * right/bottom side in).
 *
 * @param bb `[x, y, w, h]` in pixels.
 */
export function rleFromBbox(bb: BoxXYWH, h: number, w: number): Rle {
  const [xs, ys] = bb;
  const xe = xs + bb[2];
  const ye = ys + bb[3];
  return rleFromPoly([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

const INT_MIN = -2147483648;

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

/**
 * What {@link rleIou} needs of masks: the runs of ones as absolute `[start, end)` pairs,
 * `iv[offs[i]..offs[i+1])` for mask i, their areas `[n]`, and their column spans
 * `[colLo[i], colHi[i])` (pycocotools' box x-range; empty for an empty mask), and whether it has
 * zero-length runs past the first (`gappy`, which maskApi.c's walk handles in its own way).
 */
interface RunIndex {
  iv: Float64Array;
  offs: Int32Array;
  areas: Float64Array;
  colLo: Float64Array;
  colHi: Float64Array;
  gappy: Uint8Array;
}

function indexRuns(rs: Rle[]): RunIndex {
  let total = 0;
  for (const r of rs) total += r.counts.length;
  const iv = new Float64Array(total + 1);
  const offs = new Int32Array(rs.length + 1);
  const areas = new Float64Array(rs.length);
  const colLo = new Float64Array(rs.length);
  const colHi = new Float64Array(rs.length);
  const gappy = new Uint8Array(rs.length);
  let p = 0;
  for (let i = 0; i < rs.length; i++) {
    const { h, counts } = rs[i];
    const p0 = p;
    let pos = 0;
    let area = 0;
    let gaps = 0;
    for (let j = 0; j + 1 < counts.length; j += 2) {
      const zeros = counts[j];
      if (zeros === 0 && j > 0) gaps++;
      pos += zeros;
      const len = counts[j + 1];
      if (len > 0) {
        iv[p++] = pos;
        iv[p++] = pos + len;
        area += len;
      } else gaps++;
      pos += len;
    }
    if (counts.length % 2 === 1 && counts.length > 1 && counts[counts.length - 1] === 0) gaps++;
    gappy[i] = gaps > 0 ? 1 : 0;
    areas[i] = area;
    offs[i + 1] = p;
    if (p > p0) {
      colLo[i] = Math.floor(iv[p0] / h);
      colHi[i] = Math.floor((iv[p - 1] - 1) / h) + 1;
    }
  }
  return { iv, offs, areas, colLo, colHi, gappy };
}

/** First interval of `iv[a..a1)` (pairs) whose end is past `pos`; `a1` if none. */
function firstEndingAfter(iv: Float64Array, a: number, a1: number, pos: number): number {
  let lo = a >> 1;
  let hi = a1 >> 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (iv[2 * mid + 1] > pos) hi = mid;
    else lo = mid + 1;
  }
  return 2 * lo;
}

/**
 * Pixels in both masks: a merge walk over two sorted interval lists `A[a..a1)` and `B[b..b1)`,
 * started (by binary search) at the first intervals that can reach the other list's first start.
 * The walk ends when either list does, so only the common span is visited.
 */
function intersection(A: Float64Array, a: number, a1: number, B: Float64Array, b: number, b1: number): number {
  if (a === a1 || b === b1) return 0;
  if (A[a] < B[b]) a = firstEndingAfter(A, a, a1, B[b]);
  else b = firstEndingAfter(B, b, b1, A[a]);
  let inter = 0;
  while (a < a1 && b < b1) {
    const as = A[a];
    const ae = A[a + 1];
    const bs = B[b];
    const be = B[b + 1];
    const lo = as > bs ? as : bs;
    const hi = ae < be ? ae : be;
    if (hi > lo) inter += hi - lo;
    if (ae < be) a += 2;
    else b += 2;
  }
  return inter;
}

/**
 * Mask IoU as pycocotools' `rleIou`, `[D, G]` row-major (`out[d * G + g]`), the same numbers to
 * the last bit. For a crowd gt the union is the dt area (the fraction of the detection covered by
 * the crowd region); no common pixel gives 0. A pair of different image sizes gives -1 where
 * pycocotools' box pre-filter lets it through (the {@link rleToBbox} boxes overlap, {@link bboxIou}
 * semantics), else 0.
 *
 * pycocotools compares the boxes first and walks the runs only where they overlap. Its boxes hold
 * every pixel of their masks, so a pair it skips has no common pixel and its IoU here is 0 as
 * well: the filter only saves time. Here the cheap part of it is kept, the column spans (exactly
 * the boxes' x-ranges, O(1) per mask), and the walk over the runs starts by binary search at the
 * common span, which costs less than computing every mask's y-range.
 *
 * @param dt `[D]` detections; @param gt `[G]` ground truths; @param iscrowd `[G]` crowd flags of `gt`.
 */
export function rleIou(dt: Rle[], gt: Rle[], iscrowd: ArrayLike<number | boolean>): Float64Array {
  const D = dt.length;
  const G = gt.length;
  if (iscrowd.length !== G) throw new Error(`rleIou: iscrowd has ${iscrowd.length} flags for ${G} ground truths`);
  const out = new Float64Array(D * G);
  if (D === 0 || G === 0) return out;
  const di = indexRuns(dt);
  const gi = indexRuns(gt);
  const { iv: dIv, offs: dOffs, areas: dAreas, colLo: dLo, colHi: dHi, gappy: dGappy } = di;
  const { iv: gIv, offs: gOffs, areas: gAreas, colLo: gLo, colHi: gHi, gappy: gGappy } = gi;
  const crowd = new Uint8Array(G);
  for (let g = 0; g < G; g++) crowd[g] = iscrowd[g] ? 1 : 0;
  for (let d = 0; d < D; d++) {
    const { h, w } = dt[d];
    const a0 = dOffs[d];
    const a1 = dOffs[d + 1];
    const da = dAreas[d];
    for (let g = 0; g < G; g++) {
      if (gt[g].h !== h || gt[g].w !== w) {
        out[d * G + g] = sizeMismatchIou(dt[d], gt[g], crowd[g]);
        continue;
      }
      if (dHi[d] <= gLo[g] || gHi[g] <= dLo[d]) continue; // no common column (or an empty mask)
      if (dGappy[d] || gGappy[g]) {
        out[d * G + g] = literalIou(dt[d].counts, gt[g].counts, crowd[g], da);
        continue;
      }
      const inter = intersection(dIv, a0, a1, gIv, gOffs[g], gOffs[g + 1]);
      if (inter > 0) out[d * G + g] = inter / (crowd[g] ? da : da + gAreas[g] - inter);
    }
  }
  return out;
}

/**
 * maskApi.c's run walk for one pair, literally. Used for masks with zero-length runs past the
 * first: there the C loop stops as soon as both current runs are empty at once, before the end,
 * so its IoU is not the pixels' (only user-written uncompressed RLEs have such runs).
 */
function literalIou(A: Uint32Array, B: Uint32Array, crowd: number, areaA: number): number {
  const ka = A.length;
  const kb = B.length;
  let ca = ka > 0 ? A[0] : 0;
  let cb = kb > 0 ? B[0] : 0;
  let va = 0;
  let vb = 0;
  let a = 1;
  let b = 1;
  let inter = 0;
  let union = 0;
  let ct = 1;
  while (ct > 0) {
    const c = ca < cb ? ca : cb;
    if (c === 0 && stuck(ca, a, ka, cb, b, kb)) {
      throw new Error('rleIou: the runs of the masks do not add up to the same length (pycocotools loops forever here)');
    }
    if (va || vb) {
      union += c;
      if (va && vb) inter += c;
    }
    ca -= c;
    if (ca === 0 && a < ka) {
      ca = A[a++];
      va ^= 1;
    }
    cb -= c;
    if (cb === 0 && b < kb) {
      cb = B[b++];
      vb ^= 1;
    }
    ct = ca + cb;
  }
  if (inter === 0) return 0;
  return inter / (crowd ? areaA : union);
}

/** pycocotools' IoU of masks of different sizes: -1 where their boxes overlap, else 0. */
function sizeMismatchIou(dt: Rle, gt: Rle, crowd: number): number {
  const boxes = bboxIou(Float64Array.from(rleToBbox(dt)), Float64Array.from(rleToBbox(gt)), [crowd]);
  return boxes[0] > 0 ? -1 : 0;
}

/**
 * Box IoU as pycocotools' `bbIou`, `[D, G]` row-major (`out[d * G + g]`): boxes that do not
 * overlap with positive width and height give 0; for a crowd gt the union is the dt box area.
 *
 * @param dt `[D * 4]` packed xywh; @param gt `[G * 4]` packed xywh; @param iscrowd `[G]` crowd flags of `gt`.
 */
export function bboxIou(dt: Float64Array, gt: Float64Array, iscrowd: ArrayLike<number | boolean>): Float64Array {
  const D = dt.length >> 2;
  const G = gt.length >> 2;
  if (dt.length !== 4 * D || gt.length !== 4 * G) throw new Error(`bboxIou: box arrays must hold 4 numbers a box (got ${dt.length} and ${gt.length})`);
  if (iscrowd.length !== G) throw new Error(`bboxIou: iscrowd has ${iscrowd.length} flags for ${G} ground truths`);
  const out = new Float64Array(D * G);
  for (let g = 0; g < G; g++) {
    const gx = gt[4 * g];
    const gy = gt[4 * g + 1];
    const gw = gt[4 * g + 2];
    const gh = gt[4 * g + 3];
    const gx2 = gw + gx;
    const gy2 = gh + gy;
    const ga = gw * gh;
    const crowd = !!iscrowd[g];
    for (let d = 0; d < D; d++) {
      const dx = dt[4 * d];
      const dy = dt[4 * d + 1];
      const dw = dt[4 * d + 2];
      const dh = dt[4 * d + 3];
      const dx2 = dw + dx;
      const w = (dx2 < gx2 ? dx2 : gx2) - (dx > gx ? dx : gx);
      if (w <= 0) continue;
      const dy2 = dh + dy;
      const h = (dy2 < gy2 ? dy2 : gy2) - (dy > gy ? dy : gy);
      if (h <= 0) continue;
      const da = dw * dh;
      const i = w * h;
      out[d * G + g] = i / (crowd ? da : da + ga - i);
    }
  }
  return out;
}

/**
 * Runs of a ROW-MAJOR binary mask (non-zero = 1), as pycocotools' `encode` of the same mask in
 * Fortran order. Scans rows (contiguous memory): a run boundary sits at pixel `(x, y)` when it
 * differs from `(x, y - 1)`, or for `y = 0` from the last pixel of column `x - 1`; the boundaries
 * are then ordered column-major with a counting sort over the columns.
 *
 * @param mask `[h * w]` row-major bytes.
 */
export function rleFromMask(mask: Uint8Array, h: number, w: number): Rle {
  const n = h * w;
  if (mask.length !== n) throw new Error(`rleFromMask: mask has ${mask.length} bytes, ${h}x${w} needs ${n}`);
  if (n === 0) return { h, w, counts: Uint32Array.of(0) };
  let bx = new Int32Array(1024);
  let by = new Int32Array(1024);
  let nb = 0;
  const perColumn = new Int32Array(w + 1);
  const push = (x: number, y: number): void => {
    if (nb === bx.length) {
      const gx = new Int32Array(2 * nb);
      const gy = new Int32Array(2 * nb);
      gx.set(bx);
      gy.set(by);
      bx = gx;
      by = gy;
    }
    bx[nb] = x;
    by[nb++] = y;
    perColumn[x + 1]++;
  };
  const last = (h - 1) * w;
  for (let x = 0; x < w; x++) {
    const prev = x === 0 ? false : mask[last + x - 1] !== 0;
    if ((mask[x] !== 0) !== prev) push(x, 0);
  }
  // Rows y >= 1 against the row above, 4 bytes at a time (rows padded to a multiple of 4 bytes
  // when needed); only words that differ are looked at byte by byte.
  const stride = (w + 3) & ~3;
  let buf = mask;
  if (stride !== w || mask.byteOffset % 4 !== 0) {
    buf = new Uint8Array(stride * h);
    for (let y = 0; y < h; y++) buf.set(mask.subarray(y * w, y * w + w), y * stride);
  }
  const words = new Uint32Array(buf.buffer, buf.byteOffset, (stride * h) >> 2);
  const ww = stride >> 2;
  for (let y = 1; y < h; y++) {
    const row = y * ww;
    for (let k = 0; k < ww; k++) {
      if (words[row + k] === words[row - ww + k]) continue;
      const x1 = Math.min(4 * k + 4, w);
      for (let x = 4 * k; x < x1; x++) {
        if ((buf[y * stride + x] === 0) !== (buf[(y - 1) * stride + x] === 0)) push(x, y);
      }
    }
  }
  for (let x = 0; x < w; x++) perColumn[x + 1] += perColumn[x];
  const pos = new Float64Array(nb);
  for (let i = 0; i < nb; i++) pos[perColumn[bx[i]]++] = bx[i] * h + by[i];
  const counts = new Uint32Array(nb + 1);
  let prev = 0;
  for (let i = 0; i < nb; i++) {
    counts[i] = pos[i] - prev;
    prev = pos[i];
  }
  counts[nb] = n - prev;
  return { h, w, counts };
}

/**
 * The ROW-MAJOR binary mask `[h * w]` (bytes 0/1) of `r`. Throws when the runs add up to more than
 * `h * w` (pycocotools raises too); runs that add up to less leave the rest 0.
 */
export function rleToMask(r: Rle): Uint8Array {
  const { h, w, counts } = r;
  const n = h * w;
  const out = new Uint8Array(n);
  let pos = 0;
  for (let j = 0; j < counts.length; j++) {
    const len = counts[j];
    if (pos + len > n) throw new Error(`rleToMask: the runs add up to more than ${h}x${w} = ${n} pixels`);
    if (j & 1 && len > 0) {
      let x = Math.floor(pos / h);
      let yy = pos - x * h;
      for (let t = 0; t < len; t++) {
        out[yy * w + x] = 1;
        if (++yy === h) {
          yy = 0;
          x++;
        }
      }
    }
    pos += len;
  }
  return out;
}
