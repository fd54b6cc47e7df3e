/**
 * Typed sample record and transform interface of the data pipeline (MMDetection/MMSegmentation
 * semantics, detectron2-style typed fields). Everything is plain typed arrays; images are HWC
 * interleaved; the loader collates to tensors later.
 */
import { decode, frPoly } from '../../coco/mask.ts';
import type { Rng } from '../../nn/random.ts';

/** An HWC interleaved image: uint8 after loading, float32 after PhotoMetricDistortion/Normalize. */
export interface ImageData {
  data: Uint8Array | Float32Array;
  height: number;
  width: number;
  channels: 3;
}

/** Instance masks as polygons: per instance a list of flat polygons `[x0, y0, x1, y1, ...]` (COCO). */
export interface PolygonMasks {
  kind: 'polygons';
  height: number;
  width: number;
  polys: number[][][];
}

/** Instance masks as bitmaps: per instance `height * width` row-major bytes of 0/1. */
export interface BitmapMasks {
  kind: 'bitmaps';
  height: number;
  width: number;
  masks: Uint8Array[];
}

export type InstanceMasks = PolygonMasks | BitmapMasks;

/** One sample flowing through the pipeline. */
export interface Sample {
  img: ImageData;
  imgPath?: string;
  imageId?: number;
  /** Shape `[h, w]` of the image as loaded. */
  oriShape: [number, number];
  /** Shape `[h, w]` of the image after the geometric transforms (before padding). */
  imgShape: [number, number];
  /** Shape `[h, w]` after Pad. */
  padShape?: [number, number];
  /** Cumulative `[sx, sy]` of all resizes so far (output size / loaded size per axis). */
  scaleFactor: [number, number];
  /** Whether the sample was flipped. */
  flip: boolean;
  flipDirection?: FlipDirection;
  /** `N * 4` boxes `x1, y1, x2, y2` in pixels of the current image. */
  gtBboxes?: Float32Array;
  gtLabels?: Int32Array;
  gtMasks?: InstanceMasks;
  /** `M * 4` ignored (crowd) boxes. */
  gtBboxesIgnore?: Float32Array;
  /** `h * w` row-major semantic labels. */
  gtSegMap?: Uint8Array;
}

export type FlipDirection = 'horizontal' | 'vertical' | 'diagonal';

/** Context of one `apply`: the random stream of the pipeline. */
export interface TransformContext {
  rng: Rng;
}

/** A data transform. `apply` may mutate and return `s`; `null` drops the sample. */
export interface Transform {
  readonly name: string;
  apply(s: Sample, ctx: TransformContext): Sample | null;
}

/** A new sample from a loaded image (no annotations), with identity geometry. */
export function makeSample(img: ImageData, extra: Partial<Sample> = {}): Sample {
  return {
    img,
    oriShape: [img.height, img.width],
    imgShape: [img.height, img.width],
    scaleFactor: [1, 1],
    flip: false,
    ...extra,
  };
}

/** Number of instances of `m`. */
export function numMasks(m: InstanceMasks): number {
  return m.kind === 'polygons' ? m.polys.length : m.masks.length;
}

/**
 * Bitmaps of `m` (bitmaps are returned as they are). Each instance's polygons are rasterised with
 * pycocotools' `frPoly` and unioned; polygons of fewer than 3 points are skipped.
 */
export function masksToBitmaps(m: InstanceMasks): BitmapMasks {
  if (m.kind === 'bitmaps') return m;
  const { height: h, width: w } = m;
  const masks = m.polys.map((polys) => {
    const out = new Uint8Array(h * w);
    for (const p of polys) {
      if (p.length < 6 || h === 0 || w === 0) continue;
      const bits = decode(frPoly(p, h, w));
      for (let i = 0; i < bits.length; i++) out[i] |= bits[i];
    }
    return out;
  });
  return { kind: 'bitmaps', height: h, width: w, masks };
}

/**
 * `N * 4` boxes `x1, y1, x2, y2` of the masks (MMDet's `get_bboxes`): for polygons the extremes of
 * the coordinates; for bitmaps `[xmin, ymin, xmax + 1, ymax + 1]` of the set pixels. Empty masks give
 * zeros.
 */
export function maskBoundingBoxes(m: InstanceMasks): Float32Array {
  const n = numMasks(m);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
    if (m.kind === 'polygons') {
      for (const p of m.polys[i]) {
        for (let k = 0; k + 1 < p.length; k += 2) {
          x1 = Math.min(x1, p[k]); x2 = Math.max(x2, p[k]);
          y1 = Math.min(y1, p[k + 1]); y2 = Math.max(y2, p[k + 1]);
        }
      }
    } else {
      const bits = m.masks[i];
      const w = m.width;
      for (let y = 0; y < m.height; y++) {
        const row = y * w;
        for (let x = 0; x < w; x++) {
          if (bits[row + x]) {
            if (x < x1) x1 = x;
            if (x + 1 > x2) x2 = x + 1;
            if (y < y1) y1 = y;
            y2 = y + 1;
          }
        }
      }
    }
    if (x1 <= x2 && y1 <= y2) out.set([x1, y1, x2, y2], i * 4);
  }
  return out;
}

/** A zeroed array of the same kind as `a`. */
export function allocLike<T extends Uint8Array | Float32Array>(a: T, n: number): T {
  return (a instanceof Float32Array ? new Float32Array(n) : new Uint8Array(n)) as T;
}

/** Keeps the instances `keep` (indices) of the per-instance fields of `s`. */
export function selectInstances(s: Sample, keep: number[]): void {
  if (s.gtBboxes) {
    const b = new Float32Array(keep.length * 4);
    keep.forEach((k, i) => b.set(s.gtBboxes!.subarray(k * 4, k * 4 + 4), i * 4));
    s.gtBboxes = b;
  }
  if (s.gtLabels) s.gtLabels = Int32Array.from(keep, (k) => s.gtLabels![k]);
  if (s.gtMasks) {
    const m = s.gtMasks;
    s.gtMasks = m.kind === 'polygons'
      ? { ...m, polys: keep.map((k) => m.polys[k]) }
      : { ...m, masks: keep.map((k) => m.masks[k]) };
  }
}

/**
 * Checks a transform config against its allowed keys (`type` excepted), naming the bad key and the
 * allowed ones.
 */
export function checkKeys(name: string, cfg: object, allowed: readonly string[]): void {
  for (const k of Object.keys(cfg)) {
    if (k === 'type') continue;
    if (!allowed.includes(k)) {
      throw new Error(`${name}: unknown config key '${k}'; allowed keys: ${allowed.length ? allowed.join(', ') : '(none)'}`);
    }
  }
}
