/**
 * PhotoMetricDistortion (MMDet/MMSeg `PhotoMetricDistortion`), on RGB images in float32.
 */
import { num, obj, optional } from '../../config/schema.ts';
import { typeSpec } from '../../config/lookup.ts';
import { pair, type Sample, type Transform, type TransformContext } from './types.ts';

/** Config of {@link PhotoMetricDistortion}. */
export interface PhotoMetricDistortionConfig {
  /** Brightness: add a value uniform in `[-brightnessDelta, brightnessDelta)` (default 32). */
  brightnessDelta?: number;
  /** Contrast: multiply by a value uniform in `contrastRange` (default `[0.5, 1.5]`). */
  contrastRange?: [number, number];
  /** Saturation: multiply S by a value uniform in `saturationRange` (default `[0.5, 1.5]`). */
  saturationRange?: [number, number];
  /** Hue: add a value uniform in `[-hueDelta, hueDelta)` to H in OpenCV's `[0, 180)` units (default 18). */
  hueDelta?: number;
  /** Probability of each step (default 0.5 each). */
  brightnessProb?: number;
  contrastProb?: number;
  saturationProb?: number;
  hueProb?: number;
  /** Probability of a random channel permutation at the end (MMDet; default 0.5; MMSeg has none: set 0). */
  swapProb?: number;
}

const prob = () => optional(num({ min: 0, max: 1 }));

/** `{type: PhotoMetricDistortion, ...}` in a config (MMDet's keys, plus the probabilities). */
export const PHOTO_METRIC_DISTORTION_SCHEMA = obj({
  brightness_delta: optional(num({ min: 0 })),
  contrast_range: optional(pair(num())),
  saturation_range: optional(pair(num())),
  hue_delta: optional(num({ min: 0 })),
  brightness_prob: prob(),
  contrast_prob: prob(),
  saturation_prob: prob(),
  hue_prob: prob(),
  swap_prob: prob(),
});

export const PHOTO_METRIC_DISTORTION_SPEC = typeSpec(PHOTO_METRIC_DISTORTION_SCHEMA, (c) => new PhotoMetricDistortion({
  brightnessDelta: c.brightness_delta, contrastRange: c.contrast_range, saturationRange: c.saturation_range, hueDelta: c.hue_delta,
  brightnessProb: c.brightness_prob, contrastProb: c.contrast_prob, saturationProb: c.saturation_prob, hueProb: c.hue_prob, swapProb: c.swap_prob,
}));

/**
 * In MMDet's order: brightness; contrast first if the random mode is 1; convert to HSV; saturation
 * (S clipped to [0, 1]); hue (wrapped mod 180); back to RGB; contrast last if the mode is 0; random
 * channel swap. Each step is applied with its probability. Works in float32 on 0-255 values and clips
 * the result to [0, 255]; the output image is always float32 (no HSV round trip when neither
 * saturation nor hue is applied, so with all probabilities 0 it is the identity up to the type).
 * Hue follows OpenCV's HSV convention with H in [0, 180) (as MMSeg's uint8 path; MMDet's float path
 * uses degrees [0, 360) with the same delta 18).
 */
export class PhotoMetricDistortion implements Transform {
  readonly name = 'PhotoMetricDistortion';
  readonly brightnessDelta: number;
  readonly contrastRange: [number, number];
  readonly saturationRange: [number, number];
  readonly hueDelta: number;
  readonly probs: { brightness: number; contrast: number; saturation: number; hue: number; swap: number };

  constructor(cfg: PhotoMetricDistortionConfig = {}) {
    this.brightnessDelta = cfg.brightnessDelta ?? 32;
    this.contrastRange = cfg.contrastRange ?? [0.5, 1.5];
    this.saturationRange = cfg.saturationRange ?? [0.5, 1.5];
    this.hueDelta = cfg.hueDelta ?? 18;
    this.probs = {
      brightness: cfg.brightnessProb ?? 0.5,
      contrast: cfg.contrastProb ?? 0.5,
      saturation: cfg.saturationProb ?? 0.5,
      hue: cfg.hueProb ?? 0.5,
      swap: cfg.swapProb ?? 0.5,
    };
  }

  apply(s: Sample, ctx: TransformContext): Sample {
    const rng = ctx.rng;
    const u = (lo: number, hi: number) => lo + rng.uniform() * (hi - lo);
    const img = Float32Array.from(s.img.data);
    const n = img.length;
    if (rng.uniform() < this.probs.brightness) {
      const d = u(-this.brightnessDelta, this.brightnessDelta);
      for (let i = 0; i < n; i++) img[i] += d;
    }
    const mode = rng.uniform() < 0.5 ? 0 : 1;
    const contrast = () => {
      if (rng.uniform() < this.probs.contrast) {
        const a = u(this.contrastRange[0], this.contrastRange[1]);
        for (let i = 0; i < n; i++) img[i] *= a;
      }
    };
    if (mode === 1) contrast();
    const doSat = rng.uniform() < this.probs.saturation;
    const sat = doSat ? u(this.saturationRange[0], this.saturationRange[1]) : 1;
    const doHue = rng.uniform() < this.probs.hue;
    const hue = doHue ? u(-this.hueDelta, this.hueDelta) : 0;
    if (doSat || doHue) {
      for (let i = 0; i < n; i += 3) {
        const [h, sv, v] = rgbToHsv(img[i], img[i + 1], img[i + 2]);
        let h2 = (h + hue) % 180;
        if (h2 < 0) h2 += 180;
        const s2 = Math.min(Math.max(sv * sat, 0), 1);
        const [r, g, b] = hsvToRgb(h2, s2, v);
        img[i] = r; img[i + 1] = g; img[i + 2] = b;
      }
    }
    if (mode === 0) contrast();
    for (let i = 0; i < n; i++) img[i] = Math.min(Math.max(img[i], 0), 255);
    if (rng.uniform() < this.probs.swap) {
      const perm = [0, 1, 2];
      for (let i = 2; i > 0; i--) {
        const j = Math.floor(rng.uniform() * (i + 1));
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      for (let i = 0; i < n; i += 3) {
        const a = img[i + perm[0]], b = img[i + perm[1]], c = img[i + perm[2]];
        img[i] = a; img[i + 1] = b; img[i + 2] = c;
      }
    }
    s.img = { ...s.img, data: img };
    return s;
  }
}

/** OpenCV's float RGB -> HSV with H in [0, 180), S in [0, 1], V = max(r, g, b). */
export function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const v = Math.max(r, g, b);
  const mn = Math.min(r, g, b);
  const diff = v - mn;
  const s = v > 0 ? diff / v : 0;
  let h = 0;
  if (diff > 0) {
    if (v === r) h = (60 * (g - b)) / diff;
    else if (v === g) h = 120 + (60 * (b - r)) / diff;
    else h = 240 + (60 * (r - g)) / diff;
    if (h < 0) h += 360;
  }
  return [h / 2, s, v];
}

/** Inverse of {@link rgbToHsv}. */
export function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const hh = ((h * 2) / 60) % 6;
  const i = Math.floor(hh);
  const f = hh - i;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (i) {
    case 0: return [v, t, p];
    case 1: return [q, v, p];
    case 2: return [p, v, t];
    case 3: return [p, q, v];
    case 4: return [t, p, v];
    default: return [v, p, q];
  }
}
