/**
 * Resize (MMCV `Resize` / MMDet 2.x `Resize` with `multiscale_mode='value'` and `ratio_range`).
 */
import { bool, list, obj, oneOf, optional } from '../../config/schema.ts';
import { typeSpec } from '../../config/lookup.ts';
import { allocLike, pair, positive, type ImageData, type Sample, type Transform, type TransformContext } from './types.ts';
import { type InstanceMasks } from '../../structures/masks.ts';

/** Config of {@link Resize}. */
export interface ResizeConfig {
  /** Target `[w, h]`, or a list of them of which one is chosen uniformly at random per sample. */
  scale: [number, number] | [number, number][];
  /**
   * Keep the aspect ratio (MMCV `rescale`): factor `min(max(scale)/long_edge, min(scale)/short_edge)`,
   * new size `int(w * f + 0.5) x int(h * f + 0.5)`. Otherwise resize to exactly `scale`.
   */
  keepRatio?: boolean;
  /** With a single scale: multiply it by a ratio uniform in `[lo, hi)` (`int(w * r), int(h * r)`). */
  ratioRange?: [number, number];
}

/** `{type: Resize, ...}` in a config (MMDet's keys). */
export const RESIZE_SCHEMA = obj({
  scale: oneOf(pair(positive()), list(pair(positive()))),
  keep_ratio: optional(bool()),
  ratio_range: optional(pair(positive())),
});

export const RESIZE_SPEC = typeSpec(RESIZE_SCHEMA, (c) => new Resize({ scale: c.scale, keepRatio: c.keep_ratio, ratioRange: c.ratio_range }));

/**
 * The scales of MMDet's 3x multi-scale recipe: `[longMax, s]` for short sides `s` from `range[0]` to
 * `range[1]` by `step` (`[1333, 480], [1333, 512], ..., [1333, 800]` by default).
 */
export function multiScaleShortSide(range: [number, number] = [480, 800], step = 32, longMax = 1333): [number, number][] {
  const out: [number, number][] = [];
  for (let s = range[0]; s <= range[1]; s += step) out.push([longMax, s]);
  return out;
}

/** MMCV `rescale_size`: output `[w, h]` of keep-ratio resizing `[w, h]` to `scale`. */
export function rescaleSize(w: number, h: number, scale: [number, number]): [number, number] {
  const longMax = Math.max(scale[0], scale[1]);
  const shortMax = Math.min(scale[0], scale[1]);
  const f = Math.min(longMax / Math.max(h, w), shortMax / Math.min(h, w));
  return [Math.trunc(w * f + 0.5), Math.trunc(h * f + 0.5)];
}

/**
 * Bilinear resize with cv2.INTER_LINEAR's half-pixel centres (`src = (dst + 0.5) * in/out - 0.5`,
 * clamped to the border). uint8 results are rounded and saturated (cv2 uses 11-bit fixed point
 * weights, so results may differ from cv2 by 1).
 */
export function resizeImageBilinear(img: ImageData, outW: number, outH: number): ImageData {
  const { width: inW, height: inH, data } = img;
  const C = 3;
  const out = allocLike(data, outW * outH * C);
  const isU8 = data instanceof Uint8Array;
  const x0s = new Int32Array(outW), x1s = new Int32Array(outW), fxs = new Float64Array(outW);
  const sx = inW / outW, sy = inH / outH;
  for (let x = 0; x < outW; x++) {
    const [a, b, f] = coord(x, sx, inW);
    x0s[x] = a; x1s[x] = b; fxs[x] = f;
  }
  for (let y = 0; y < outH; y++) {
    const [y0, y1, fy] = coord(y, sy, inH);
    const gy = 1 - fy;
    const r0 = y0 * inW * C, r1 = y1 * inW * C;
    let o = y * outW * C;
    // Channels unrolled; a convex combination of uint8 values stays in [0, 255], so rounding is
    // (v + 0.5) | 0 (= Math.round there) with no clamping. This loop is the data pipeline's hot spot.
    for (let x = 0; x < outW; x++, o += C) {
      const fx = fxs[x], gx = 1 - fx;
      const a = r0 + x0s[x] * C, b = r0 + x1s[x] * C, c = r1 + x0s[x] * C, d = r1 + x1s[x] * C;
      const v0 = (data[a] * gx + data[b] * fx) * gy + (data[c] * gx + data[d] * fx) * fy;
      const v1 = (data[a + 1] * gx + data[b + 1] * fx) * gy + (data[c + 1] * gx + data[d + 1] * fx) * fy;
      const v2 = (data[a + 2] * gx + data[b + 2] * fx) * gy + (data[c + 2] * gx + data[d + 2] * fx) * fy;
      if (isU8) {
        out[o] = (v0 + 0.5) | 0; out[o + 1] = (v1 + 0.5) | 0; out[o + 2] = (v2 + 0.5) | 0;
      } else {
        out[o] = v0; out[o + 1] = v1; out[o + 2] = v2;
      }
    }
  }
  return { data: out, width: outW, height: outH, channels: 3 };
}

function coord(d: number, scale: number, n: number): [number, number, number] {
  const s = (d + 0.5) * scale - 0.5;
  let i = Math.floor(s);
  let f = s - i;
  if (i < 0) { i = 0; f = 0; }
  if (i >= n - 1) { i = n - 1; f = 0; }
  return [i, Math.min(i + 1, n - 1), f];
}

/** Nearest-neighbour resize of a `h * w` single-channel map, as cv2.INTER_NEAREST (`src = floor(dst * in/out)`). */
export function resizeNearest(map: Uint8Array, inW: number, inH: number, outW: number, outH: number): Uint8Array {
  const out = new Uint8Array(outW * outH);
  const xs = new Int32Array(outW);
  for (let x = 0; x < outW; x++) xs[x] = Math.min(Math.floor((x * inW) / outW), inW - 1);
  for (let y = 0; y < outH; y++) {
    const sy = Math.min(Math.floor((y * inH) / outH), inH - 1) * inW;
    const o = y * outW;
    for (let x = 0; x < outW; x++) out[o + x] = map[sy + xs[x]];
  }
  return out;
}

/** Resizes masks to `outW x outH`: polygon coordinates scaled per axis, bitmaps nearest-neighbour. */
export function resizeMasks(m: InstanceMasks, outW: number, outH: number): InstanceMasks {
  if (m.kind === 'polygons') {
    const fx = outW / m.width, fy = outH / m.height;
    return {
      kind: 'polygons', width: outW, height: outH,
      polys: m.polys.map((inst) => inst.map((p) => p.map((v, k) => (k % 2 === 0 ? v * fx : v * fy)))),
    };
  }
  return { kind: 'bitmaps', width: outW, height: outH, masks: m.masks.map((b) => resizeNearest(b, m.width, m.height, outW, outH)) };
}

function scaleClipBoxes(b: Float32Array, fx: number, fy: number, w: number, h: number): Float32Array {
  const out = new Float32Array(b.length);
  for (let i = 0; i < b.length; i += 4) {
    out[i] = Math.min(Math.max(b[i] * fx, 0), w);
    out[i + 1] = Math.min(Math.max(b[i + 1] * fy, 0), h);
    out[i + 2] = Math.min(Math.max(b[i + 2] * fx, 0), w);
    out[i + 3] = Math.min(Math.max(b[i + 3] * fy, 0), h);
  }
  return out;
}

/**
 * Resizes the image (bilinear), boxes (scaled by the actual per-axis factors `w_new/w_old`,
 * `h_new/h_old`, then clipped to the image), masks (polygons scaled, bitmaps nearest) and the seg
 * map (nearest). `scaleFactor` is multiplied by the factors, so it stays relative to `oriShape`.
 */
export class Resize implements Transform {
  readonly name = 'Resize';
  readonly scales: [number, number][];
  readonly keepRatio: boolean;
  readonly ratioRange?: [number, number];

  constructor(cfg: ResizeConfig) {
    const sc = cfg.scale;
    if (!Array.isArray(sc) || sc.length === 0) throw new Error('Resize: scale must be [w, h] or a non-empty list of [w, h]');
    this.scales = (Array.isArray(sc[0]) ? sc : [sc]) as [number, number][];
    for (const s of this.scales) {
      if (!Array.isArray(s) || s.length !== 2 || !(s[0] > 0) || !(s[1] > 0)) throw new Error(`Resize: bad scale ${JSON.stringify(s)}, expected [w, h] > 0`);
    }
    this.keepRatio = cfg.keepRatio ?? true;
    this.ratioRange = cfg.ratioRange;
    if (this.ratioRange) {
      if (this.scales.length !== 1) throw new Error('Resize: ratio_range needs a single scale');
      const [lo, hi] = this.ratioRange;
      if (!(lo > 0) || !(lo <= hi)) throw new Error(`Resize: ratio_range must be [lo, hi] with 0 < lo <= hi, got ${JSON.stringify(this.ratioRange)}`);
    }
  }

  /** The target scale `[w, h]` for one sample (random among `scales`, or by `ratioRange`). */
  chooseScale(rng: TransformContext['rng']): [number, number] {
    if (this.ratioRange) {
      const [lo, hi] = this.ratioRange;
      const r = lo + rng.uniform() * (hi - lo);
      const [w, h] = this.scales[0];
      return [Math.trunc(w * r), Math.trunc(h * r)];
    }
    if (this.scales.length === 1) return this.scales[0];
    return this.scales[Math.min(Math.floor(rng.uniform() * this.scales.length), this.scales.length - 1)];
  }

  apply(s: Sample, ctx: TransformContext): Sample {
    const scale = this.chooseScale(ctx.rng);
    const { width: w, height: h } = s.img;
    const [nw, nh] = this.keepRatio ? rescaleSize(w, h, scale) : [scale[0], scale[1]];
    return resizeSampleTo(s, nw, nh);
  }
}

/** Resizes every field of `s` to `nw x nh` (see {@link Resize}). */
export function resizeSampleTo(s: Sample, nw: number, nh: number): Sample {
  const { width: w, height: h } = s.img;
  const fx = nw / w, fy = nh / h;
  s.img = nw === w && nh === h ? s.img : resizeImageBilinear(s.img, nw, nh);
  if (s.gtBboxes) s.gtBboxes = scaleClipBoxes(s.gtBboxes, fx, fy, nw, nh);
  if (s.gtBboxesIgnore) s.gtBboxesIgnore = scaleClipBoxes(s.gtBboxesIgnore, fx, fy, nw, nh);
  if (s.gtMasks) s.gtMasks = resizeMasks(s.gtMasks, nw, nh);
  if (s.gtSegMap) s.gtSegMap = resizeNearest(s.gtSegMap, w, h, nw, nh);
  s.imgShape = [nh, nw];
  s.scaleFactor = [s.scaleFactor[0] * fx, s.scaleFactor[1] * fy];
  return s;
}
