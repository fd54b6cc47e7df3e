/**
 * Run-length-encoded masks as typed arrays: the fast internal form of the mask API, with
 * maskApi.c's algorithms (pycocotools) ported to give the same numbers, bit for bit. Everything
 * works on the runs (area, bbox, merge, IoU), never on pixels, except the mask conversions.
 *
 * Callers convert compressed strings once (`toRle` in `mask.ts`) and keep {@link Rle}s in hot loops.
 */
import { rleFromPoly } from './rle_poly.ts';
import type { BoxXYWH } from './types.ts';

export { rleFromPoly } from './rle_poly.ts';

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
export function stuck(ca: number, a: number, am: number, cb: number, b: number, bm: number): boolean {
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
 * The most pixels a decoded mask may have (one byte each: 2 GiB). RLEs may describe up to 2^32
 * pixels, but a mask that large is an image size gone wrong, not something to allocate.
 */
export const MAX_MASK_PIXELS = 2 ** 31;

/**
 * The ROW-MAJOR binary mask `[h * w]` (bytes 0/1) of `r`. Throws when the runs add up to more than
 * `h * w` (pycocotools raises too), or when `h * w` exceeds {@link MAX_MASK_PIXELS}; runs that add
 * up to less leave the rest 0.
 */
export function rleToMask(r: Rle): Uint8Array {
  const { h, w, counts } = r;
  const n = h * w;
  if (n > MAX_MASK_PIXELS) throw new Error(`cannot decode a ${h}x${w} mask: ${n} pixels, more than the ${MAX_MASK_PIXELS} (2^31) a mask may have`);
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
