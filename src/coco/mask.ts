/**
 * pycocotools' `mask` API (`encode`, `decode`, `merge`, `area`, `toBbox`, `frPyObjects`, `iou`)
 * on the JSON types of COCO files, with the same results, plus `segmentationToRle` (what
 * `COCO.annToRLE` does). Masks here are ROW-MAJOR `[h, w]` bytes (pycocotools' are Fortran-order
 * numpy arrays); RLEs are column-major as in COCO files.
 *
 * Unlike pycocotools, malformed input is refused with an error saying what was given: polygons of
 * fewer than 3 points, non-finite coordinates, negative box sizes, counts that do not add up to
 * `h * w`, RLEs of different sizes in `merge`/`iou`. Hot loops should convert once with
 * {@link toRle} and use `rle.ts` directly.
 */
import { formatValue } from '../util/format_value.ts';
import { rleArea, rleFromBbox, rleFromMask, rleFromPoly, rleMerge, rleToBbox, rleToMask, type Rle } from './rle.ts';
import { bboxIou, rleIou } from './rle_iou.ts';
import { rleCountsFromString, rleCountsToString } from './rle_string.ts';
import type { BoxXYWH, CompressedRLE, Polygons, Segmentation, UncompressedRLE } from './types.ts';

function checkSize(h: number, w: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h * w > 0xffffffff) {
    throw new Error(`${what}: image size must be non-negative integers h, w with h * w < 2^32, got h=${formatValue(h)}, w=${formatValue(w)}`);
  }
}

function isRleObject(v: unknown): v is CompressedRLE | UncompressedRLE {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && 'counts' in v && 'size' in v;
}

/**
 * The runs of a compressed or uncompressed RLE. Checks the size (`[h, w]`, non-negative integers),
 * the counts (a valid string, or integers in `[0, 2^32)`) and that they add up to `h * w`.
 */
export function toRle(r: CompressedRLE | UncompressedRLE): Rle {
  if (!isRleObject(r)) throw new Error(`RLE must be an object {size: [h, w], counts}, got ${formatValue(r)}`);
  const size: unknown = r.size;
  if (!Array.isArray(size) || size.length !== 2) throw new Error(`RLE size must be [h, w], got ${formatValue(size)}`);
  const [h, w] = size as [number, number];
  checkSize(h, w, 'RLE');
  let counts: Uint32Array;
  if (typeof r.counts === 'string') counts = rleCountsFromString(r.counts);
  else if (Array.isArray(r.counts)) {
    const src = r.counts as unknown[];
    counts = new Uint32Array(src.length);
    for (let i = 0; i < src.length; i++) {
      const c = src[i];
      if (typeof c !== 'number' || c >>> 0 !== c) throw new Error(`uncompressed RLE counts[${i}] = ${formatValue(c)} is not an integer in [0, 2^32)`);
      counts[i] = c;
    }
  } else throw new Error(`RLE counts must be a string or an array of run lengths, got ${formatValue(r.counts)}`);
  let sum = 0;
  for (let i = 0; i < counts.length; i++) sum += counts[i];
  if (sum !== h * w) throw new Error(`RLE runs add up to ${sum} pixels but size ${h}x${w} has ${h * w}`);
  return { h, w, counts };
}

/** The compressed (string) RLE of runs. */
export function fromRle(r: Rle): CompressedRLE {
  return { size: [r.h, r.w], counts: rleCountsToString(r.counts) };
}

/**
 * RLE of a binary mask, identical to pycocotools `encode(np.asfortranarray(mask))` for masks of
 * one non-zero value (0/1, 0/255; pycocotools also starts a run where two non-zero values meet).
 *
 * @param mask `[h * w]` ROW-MAJOR bytes, non-zero = 1.
 */
export function encode(mask: Uint8Array, h: number, w: number): CompressedRLE {
  checkSize(h, w, 'encode');
  if (mask.length !== h * w) throw new Error(`encode: mask has ${mask.length} bytes but ${h}x${w} needs ${h * w}`);
  return fromRle(rleFromMask(mask, h, w));
}

/** The binary mask of an RLE: `[h * w]` ROW-MAJOR bytes of 0/1. */
export function decode(rle: CompressedRLE | UncompressedRLE): Uint8Array {
  return rleToMask(toRle(rle));
}

/** Union (or, with `intersect`, intersection) of RLEs of one size, as pycocotools `merge`. */
export function merge(rles: CompressedRLE[], intersect = false): CompressedRLE {
  if (rles.length === 0) throw new Error('merge: no RLEs given');
  return fromRle(rleMerge(rles.map(toRle), intersect));
}

/** Number of mask pixels, as pycocotools `area`. */
export function area(rle: CompressedRLE | UncompressedRLE): number {
  return rleArea(toRle(rle));
}

/** Bounding box `[x, y, w, h]` of the mask, as pycocotools `toBbox` (see {@link rleToBbox} for its quirks). */
export function toBbox(rle: CompressedRLE | UncompressedRLE): BoxXYWH {
  return rleToBbox(toRle(rle));
}

function checkPolygon(poly: unknown, what: string): asserts poly is number[] {
  if (!Array.isArray(poly)) throw new Error(`${what} must be an array [x1, y1, x2, y2, ...], got ${formatValue(poly)}`);
  if (poly.length < 6 || poly.length % 2 !== 0) {
    const pts = poly.length % 2 === 0 ? `${poly.length / 2} points` : 'an odd count';
    throw new Error(`${what} has ${poly.length} numbers (${pts}): ${formatValue(poly)}; a polygon needs an even count of at least 6 (3 points)`);
  }
  for (let i = 0; i < poly.length; i++) {
    const v = poly[i];
    // Beyond +-2^31/5 maskApi.c's int conversion is undefined.
    if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) >= 429496729) {
      throw new Error(`${what}: coordinate ${i} is ${formatValue(v)}; coordinates must be finite numbers of magnitude below 429496729`);
    }
  }
}

function checkBox(bb: unknown, what: string): asserts bb is BoxXYWH {
  if (!Array.isArray(bb) || bb.length !== 4 || !bb.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new Error(`${what} must be 4 finite numbers [x, y, w, h], got ${formatValue(bb)}`);
  }
  if (bb[2] < 0 || bb[3] < 0) throw new Error(`${what} has a negative size: ${formatValue(bb)}`);
}

/**
 * RLE of a polygon, as pycocotools `frPoly` (bit-identical; see {@link rleFromPoly}).
 *
 * @param poly `[x1, y1, x2, y2, ...]`, at least 3 points.
 */
export function frPoly(poly: number[], h: number, w: number): CompressedRLE {
  checkSize(h, w, 'frPoly');
  checkPolygon(poly, 'frPoly: polygon');
  return fromRle(rleFromPoly(poly, h, w));
}

/** RLE of a box `[x, y, w, h]`, as pycocotools `frBbox`. */
export function frBbox(bb: BoxXYWH, h: number, w: number): CompressedRLE {
  checkSize(h, w, 'frBbox');
  checkBox(bb, 'frBbox: box');
  return fromRle(rleFromBbox(bb, h, w));
}

/** Compressed form of an uncompressed RLE (its own `size` is used), as pycocotools `frUncompressedRLE`. */
export function frUncompressedRLE(u: UncompressedRLE): CompressedRLE {
  return fromRle(toRle(u));
}

/** One RLE object of `frPyObjects`: uncompressed ones are compressed, compressed ones are checked and copied. */
function frRleObject(r: CompressedRLE | UncompressedRLE): CompressedRLE {
  const runs = toRle(r);
  return typeof r.counts === 'string' ? { size: [runs.h, runs.w], counts: r.counts } : fromRle(runs);
}

/**
 * pycocotools `frPyObjects`: the RLEs of segmentation-like objects, dispatched like pycocotools:
 * a list whose first item has 4 numbers is a list of boxes; a list of longer number lists is a
 * list of polygons; a list of `{size, counts}` objects a list of RLEs (all give a list); one
 * `{size, counts}` object, one flat box (4 numbers) or one flat polygon gives one RLE. The `size`
 * of an RLE object wins over `h, w`, as in pycocotools.
 */
export function frPyObjects(seg: Polygons | BoxXYWH[] | UncompressedRLE[], h: number, w: number): CompressedRLE[];
export function frPyObjects(seg: UncompressedRLE | CompressedRLE | number[], h: number, w: number): CompressedRLE;
export function frPyObjects(
  seg: Polygons | BoxXYWH[] | UncompressedRLE | UncompressedRLE[] | CompressedRLE,
  h: number,
  w: number,
): CompressedRLE | CompressedRLE[];
export function frPyObjects(seg: unknown, h: number, w: number): CompressedRLE | CompressedRLE[] {
  if (isRleObject(seg)) return frRleObject(seg);
  if (!Array.isArray(seg)) throw new Error(`frPyObjects: expected polygons, boxes or RLE objects, got ${formatValue(seg)}`);
  if (seg.length === 0) return [];
  const first: unknown = seg[0];
  if (typeof first === 'number') {
    if (seg.length === 4) return frBbox(seg as BoxXYWH, h, w);
    return frPoly(seg as number[], h, w);
  }
  if (Array.isArray(first)) {
    if (first.length === 4) return seg.map((b, i) => (checkBox(b, `frPyObjects: box ${i}`), frBbox(b, h, w)));
    return seg.map((p, i) => (checkPolygon(p, `frPyObjects: polygon ${i}`), frPoly(p, h, w)));
  }
  if (isRleObject(first)) {
    return seg.map((r, i) => {
      if (!isRleObject(r)) throw new Error(`frPyObjects: item ${i} is not an RLE object like item 0: ${formatValue(r)}`);
      return frRleObject(r);
    });
  }
  throw new Error(`frPyObjects: expected polygons, boxes or RLE objects, got a list starting with ${formatValue(first)}`);
}

/**
 * The compressed RLE of an annotation's segmentation, as pycocotools `COCO.annToRLE`: polygons are
 * rasterized (`h x w`) and merged into one mask; an uncompressed RLE is compressed (its own size);
 * a compressed RLE is returned as it is. An empty polygon list, or a polygon of fewer than 3 points
 * (pycocotools would take a 4-number polygon for a box) is an error.
 */
export function segmentationToRle(seg: Segmentation, h: number, w: number): CompressedRLE {
  if (Array.isArray(seg)) {
    if (seg.length === 0) throw new Error('segmentation is an empty polygon list');
    checkSize(h, w, 'segmentation');
    const runs = seg.map((p, i) => {
      checkPolygon(p, `polygon ${i} of the segmentation`);
      return rleFromPoly(p, h, w);
    });
    return fromRle(rleMerge(runs, false));
  }
  if (!isRleObject(seg)) throw new Error(`segmentation must be polygons or an RLE {size, counts}, got ${formatValue(seg)}`);
  if (typeof seg.counts === 'string') return seg as CompressedRLE;
  return frUncompressedRLE(seg as UncompressedRLE);
}

function isBox(v: unknown): boolean {
  return Array.isArray(v) && v.length === 4;
}

/**
 * IoU of every detection against every ground truth, as pycocotools `iou`: `[D][G]`, of boxes
 * (`[x, y, w, h]` each) or of RLEs (both sides the same kind). For a crowd ground truth the union
 * is the detection's area. Empty `dt` or `gt` gives `[]`, as pycocotools.
 *
 * @param iscrowd `[G]` crowd flags of `gt`.
 */
export function iou(
  dt: CompressedRLE[] | BoxXYWH[],
  gt: CompressedRLE[] | BoxXYWH[],
  iscrowd: ArrayLike<number | boolean>,
): number[][] {
  const D = dt.length;
  const G = gt.length;
  if (D === 0 || G === 0) return [];
  if (iscrowd.length !== G) throw new Error(`iou: iscrowd has ${iscrowd.length} flags for ${G} ground truths`);
  const boxes = isBox(dt[0]);
  const kind = (xs: unknown[], name: string): void => {
    xs.forEach((x, i) => {
      if (boxes ? !isBox(x) : !isRleObject(x)) {
        throw new Error(`iou: ${name}[${i}] is ${formatValue(x)} but dt[0] is ${boxes ? 'a box' : 'an RLE'}; dt and gt must all be boxes or all RLEs`);
      }
    });
  };
  kind(dt, 'dt');
  kind(gt, 'gt');
  let flat: Float64Array;
  if (boxes) {
    const pack = (bs: BoxXYWH[], name: string): Float64Array => {
      const out = new Float64Array(bs.length * 4);
      bs.forEach((b, i) => {
        checkBox(b, `iou: ${name}[${i}]`);
        out.set(b, 4 * i);
      });
      return out;
    };
    flat = bboxIou(pack(dt as BoxXYWH[], 'dt'), pack(gt as BoxXYWH[], 'gt'), iscrowd);
  } else {
    const d = (dt as CompressedRLE[]).map(toRle);
    const g = (gt as CompressedRLE[]).map(toRle);
    const { h, w } = d[0];
    [...d, ...g].forEach((r, i) => {
      if (r.h !== h || r.w !== w) {
        const name = i < D ? `dt[${i}]` : `gt[${i - D}]`;
        throw new Error(`iou: ${name} is ${r.h}x${r.w} but dt[0] is ${h}x${w}; all RLEs must have one size`);
      }
    });
    flat = rleIou(d, g, iscrowd);
  }
  const rows: number[][] = [];
  for (let i = 0; i < D; i++) rows.push(Array.from(flat.subarray(i * G, (i + 1) * G)));
  return rows;
}
