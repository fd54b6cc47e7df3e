/**
 * IoU of run-length masks and of boxes, as pycocotools' `rleIou` / `bbIou` (crowd GT: the
 * denominator is the detection's area), working on runs only.
 */
import { rleToBbox, stuck, type Rle } from './rle.ts';

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
