/**
 * RandomCrop for detection (MMDet `RandomCrop`, `crop_type='absolute'`) and segmentation (MMSeg
 * `RandomCrop` with `cat_max_ratio`).
 */
import { bool, int, num, obj, optional } from '../../config/schema.ts';
import { typeSpec } from '../../config/lookup.ts';
import { allocLike, pair, selectInstances, type Sample, type Transform, type TransformContext } from './types.ts';
import { type InstanceMasks } from '../../structures/masks.ts';

/** Config of {@link RandomCrop}. */
export interface RandomCropConfig {
  /** Crop `[h, w]`; each side is capped at the image's. */
  cropSize: [number, number];
  /**
   * Segmentation: up to 10 re-draws of the crop until no class (other than `ignoreIndex`) covers
   * `catMaxRatio` or more of the crop's labelled pixels and at least 2 classes are present (MMSeg;
   * the last draw is used as it is). Only with `gtSegMap`; `undefined` or `>= 1` disables it.
   */
  catMaxRatio?: number;
  /** Label ignored by `catMaxRatio` (default 255). */
  ignoreIndex?: number;
  /** Keep a sample whose crop holds no instance (default false: the sample is dropped, `null`). */
  allowNegativeCrop?: boolean;
  /** Clip boxes to the crop (default true). */
  bboxClip?: boolean;
}

/** `{type: RandomCrop, ...}` in a config (MMDet/MMSeg keys). */
export const RANDOM_CROP_SCHEMA = obj({
  crop_size: pair(int({ min: 1 })),
  cat_max_ratio: optional(num()),
  ignore_index: optional(int()),
  allow_negative_crop: optional(bool()),
  bbox_clip: optional(bool()),
});

export const RANDOM_CROP_SPEC = typeSpec(RANDOM_CROP_SCHEMA, (c) => new RandomCrop({
  cropSize: c.crop_size, catMaxRatio: c.cat_max_ratio, ignoreIndex: c.ignore_index, allowNegativeCrop: c.allow_negative_crop, bboxClip: c.bbox_clip,
}));

/** A crop window: top-left `(x0, y0)` and size `w x h`. */
export interface CropBox { x0: number; y0: number; w: number; h: number }

/** Crops an HWC array of `c` channels (`w x h` source) to `box`. */
export function cropArray<T extends Uint8Array | Float32Array>(a: T, w: number, c: number, box: CropBox): T {
  const out = allocLike(a, box.w * box.h * c);
  for (let y = 0; y < box.h; y++) {
    const src = ((box.y0 + y) * w + box.x0) * c;
    out.set(a.subarray(src, src + box.w * c), y * box.w * c);
  }
  return out;
}

/**
 * Sutherland–Hodgman clipping of a flat polygon `[x0, y0, ...]` to the rectangle
 * `[0, w] x [0, h]`. May return fewer than 3 points (the polygon is outside).
 */
export function clipPolygon(p: number[], w: number, h: number): number[] {
  let pts: [number, number][] = [];
  for (let k = 0; k + 1 < p.length; k += 2) pts.push([p[k], p[k + 1]]);
  // Each edge: inside test and intersection with the boundary line.
  const edges: Array<[(q: [number, number]) => boolean, (a: [number, number], b: [number, number]) => [number, number]]> = [
    [(q) => q[0] >= 0, (a, b) => { const t = (0 - a[0]) / (b[0] - a[0]); return [0, a[1] + t * (b[1] - a[1])]; }],
    [(q) => q[0] <= w, (a, b) => { const t = (w - a[0]) / (b[0] - a[0]); return [w, a[1] + t * (b[1] - a[1])]; }],
    [(q) => q[1] >= 0, (a, b) => { const t = (0 - a[1]) / (b[1] - a[1]); return [a[0] + t * (b[0] - a[0]), 0]; }],
    [(q) => q[1] <= h, (a, b) => { const t = (h - a[1]) / (b[1] - a[1]); return [a[0] + t * (b[0] - a[0]), h]; }],
  ];
  for (const [inside, cut] of edges) {
    if (pts.length === 0) break;
    const out: [number, number][] = [];
    for (let i = 0; i < pts.length; i++) {
      const cur = pts[i], prev = pts[(i + pts.length - 1) % pts.length];
      const ci = inside(cur), pi = inside(prev);
      if (ci) {
        if (!pi) out.push(cut(prev, cur));
        out.push(cur);
      } else if (pi) out.push(cut(prev, cur));
    }
    pts = out;
  }
  return pts.flat();
}

/**
 * Crops masks to `box`. Polygons are shifted and clipped to the crop with Sutherland–Hodgman
 * (polygons left with fewer than 3 points are removed, so an instance may end with no polygon);
 * bitmaps are cropped.
 */
export function cropMasks(m: InstanceMasks, box: CropBox): InstanceMasks {
  if (m.kind === 'polygons') {
    const polys = m.polys.map((inst) =>
      inst
        .map((p) => clipPolygon(p.map((v, k) => (k % 2 === 0 ? v - box.x0 : v - box.y0)), box.w, box.h))
        .filter((p) => p.length >= 6),
    );
    return { kind: 'polygons', width: box.w, height: box.h, polys };
  }
  return { kind: 'bitmaps', width: box.w, height: box.h, masks: m.masks.map((b) => cropArray(b, m.width, 1, box)) };
}

function shiftBoxes(b: Float32Array, box: CropBox, clip: boolean): Float32Array {
  const out = new Float32Array(b.length);
  for (let i = 0; i < b.length; i += 4) {
    let x1 = b[i] - box.x0, y1 = b[i + 1] - box.y0, x2 = b[i + 2] - box.x0, y2 = b[i + 3] - box.y0;
    if (clip) {
      x1 = Math.min(Math.max(x1, 0), box.w); x2 = Math.min(Math.max(x2, 0), box.w);
      y1 = Math.min(Math.max(y1, 0), box.h); y2 = Math.min(Math.max(y2, 0), box.h);
    }
    out[i] = x1; out[i + 1] = y1; out[i + 2] = x2; out[i + 3] = y2;
  }
  return out;
}

/** Indices of boxes with `x2 > x1 && y2 > y1`. */
function validBoxes(b: Float32Array): number[] {
  const keep: number[] = [];
  for (let i = 0; i < b.length / 4; i++) if (b[i * 4 + 2] > b[i * 4] && b[i * 4 + 3] > b[i * 4 + 1]) keep.push(i);
  return keep;
}

/**
 * Crops a random `cropSize` window (offsets uniform over the valid range, y drawn before x) from
 * the image, masks and seg map. Boxes are shifted (and clipped with `bboxClip`); instances whose
 * box is then empty are dropped with their labels and masks, and the sample is dropped (`null`)
 * when none is left and the sample had boxes, unless `allowNegativeCrop`. Ignored boxes are shifted,
 * clipped and filtered the same way, without dropping the sample. With `catMaxRatio` and a seg map
 * the window is chosen as in MMSeg (see {@link RandomCropConfig.catMaxRatio}).
 */
export class RandomCrop implements Transform {
  readonly name = 'RandomCrop';
  readonly cropSize: [number, number];
  readonly catMaxRatio?: number;
  readonly ignoreIndex: number;
  readonly allowNegativeCrop: boolean;
  readonly bboxClip: boolean;

  constructor(cfg: RandomCropConfig) {
    const cs = cfg.cropSize;
    if (!Array.isArray(cs) || cs.length !== 2 || !cs.every((v) => Number.isInteger(v) && v > 0)) {
      throw new Error(`RandomCrop: cropSize must be [h, w] of positive integers, got ${JSON.stringify(cs)}`);
    }
    this.cropSize = cs;
    this.catMaxRatio = cfg.catMaxRatio;
    this.ignoreIndex = cfg.ignoreIndex ?? 255;
    this.allowNegativeCrop = cfg.allowNegativeCrop ?? false;
    this.bboxClip = cfg.bboxClip ?? true;
  }

  /** One random window of the `w x h` image. */
  randomBox(w: number, h: number, ctx: TransformContext): CropBox {
    const ch = Math.min(this.cropSize[0], h), cw = Math.min(this.cropSize[1], w);
    const y0 = Math.floor(ctx.rng.uniform() * (h - ch + 1));
    const x0 = Math.floor(ctx.rng.uniform() * (w - cw + 1));
    return { x0, y0, w: cw, h: ch };
  }

  /** Whether the crop of the seg map passes MMSeg's `cat_max_ratio` test. */
  private catOk(seg: Uint8Array, w: number, box: CropBox): boolean {
    const counts = new Float64Array(256);
    for (let y = 0; y < box.h; y++) {
      const r = (box.y0 + y) * w + box.x0;
      for (let x = 0; x < box.w; x++) counts[seg[r + x]]++;
    }
    if (this.ignoreIndex >= 0 && this.ignoreIndex < 256) counts[this.ignoreIndex] = 0;
    let n = 0, sum = 0, max = 0;
    for (const c of counts) if (c > 0) { n++; sum += c; max = Math.max(max, c); }
    return n > 1 && max / sum < this.catMaxRatio!;
  }

  apply(s: Sample, ctx: TransformContext): Sample | null {
    const { width: w, height: h } = s.img;
    let box = this.randomBox(w, h, ctx);
    if (this.catMaxRatio !== undefined && this.catMaxRatio < 1 && s.gtSegMap) {
      for (let i = 0; i < 10; i++) {
        if (this.catOk(s.gtSegMap, w, box)) break;
        box = this.randomBox(w, h, ctx);
      }
    }
    return cropSample(s, box, this.bboxClip, this.allowNegativeCrop);
  }
}

/** Crops every field of `s` to `box` (see {@link RandomCrop}); `null` when no instance is left. */
export function cropSample(s: Sample, box: CropBox, bboxClip = true, allowNegativeCrop = false): Sample | null {
  const w = s.img.width;
  if (s.gtBboxes) {
    const b = shiftBoxes(s.gtBboxes, box, bboxClip);
    const keep = validBoxes(b);
    if (keep.length === 0 && !allowNegativeCrop) return null;
    s.gtBboxes = b;
    if (s.gtMasks) s.gtMasks = cropMasks(s.gtMasks, box);
    selectInstances(s, keep);
  } else if (s.gtMasks) s.gtMasks = cropMasks(s.gtMasks, box);
  if (s.gtBboxesIgnore) {
    const b = shiftBoxes(s.gtBboxesIgnore, box, bboxClip);
    const keep = validBoxes(b);
    const out = new Float32Array(keep.length * 4);
    keep.forEach((k, i) => out.set(b.subarray(k * 4, k * 4 + 4), i * 4));
    s.gtBboxesIgnore = out;
  }
  s.img = { ...s.img, data: cropArray(s.img.data, w, 3, box), width: box.w, height: box.h };
  if (s.gtSegMap) s.gtSegMap = cropArray(s.gtSegMap, w, 1, box);
  s.imgShape = [box.h, box.w];
  return s;
}
