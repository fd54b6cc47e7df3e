/**
 * RandomFlip (MMCV `RandomFlip` with a single direction).
 */
import { num, obj, optional, str } from '../../config/schema.ts';
import { typeSpec } from '../../config/lookup.ts';
import { allocLike, type FlipDirection, type Sample, type Transform, type TransformContext } from './types.ts';
import { type InstanceMasks } from '../../structures/masks.ts';

/** Config of {@link RandomFlip}. */
export interface RandomFlipConfig {
  /** Probability of flipping (default 0.5). */
  prob?: number;
  /** `'horizontal'` (default), `'vertical'` or `'diagonal'` (both). */
  direction?: FlipDirection;
}

/** `{type: RandomFlip, ...}` in a config. */
export const RANDOM_FLIP_SCHEMA = obj({
  prob: optional(num({ min: 0, max: 1 })),
  direction: optional(str({ enum: ['horizontal', 'vertical', 'diagonal'] as const })),
});

export const RANDOM_FLIP_SPEC = typeSpec(RANDOM_FLIP_SCHEMA, (c) => new RandomFlip({ prob: c.prob, direction: c.direction }));

/** Flips an HWC array of `c` channels. */
export function flipArray<T extends Uint8Array | Float32Array>(a: T, w: number, h: number, c: number, dir: FlipDirection): T {
  const out = allocLike(a, a.length);
  const fx = dir !== 'vertical', fy = dir !== 'horizontal';
  for (let y = 0; y < h; y++) {
    const sy = fy ? h - 1 - y : y;
    for (let x = 0; x < w; x++) {
      const sx = fx ? w - 1 - x : x;
      const o = (y * w + x) * c, i = (sy * w + sx) * c;
      for (let k = 0; k < c; k++) out[o + k] = a[i + k];
    }
  }
  return out;
}

/** Flips `N * 4` xyxy boxes in a `w x h` image (`x1' = w - x2`, `x2' = w - x1`; likewise y). */
export function flipBoxes(b: Float32Array, w: number, h: number, dir: FlipDirection): Float32Array {
  const out = b.slice();
  for (let i = 0; i < b.length; i += 4) {
    if (dir !== 'vertical') { out[i] = w - b[i + 2]; out[i + 2] = w - b[i]; }
    if (dir !== 'horizontal') { out[i + 1] = h - b[i + 3]; out[i + 3] = h - b[i + 1]; }
  }
  return out;
}

/** Flips masks: polygon coordinates `x' = w - x` (`y' = h - y`), bitmaps mirrored. */
export function flipMasks(m: InstanceMasks, dir: FlipDirection): InstanceMasks {
  const { width: w, height: h } = m;
  if (m.kind === 'polygons') {
    const fx = dir !== 'vertical', fy = dir !== 'horizontal';
    return {
      ...m,
      polys: m.polys.map((inst) => inst.map((p) => p.map((v, k) => (k % 2 === 0 ? (fx ? w - v : v) : fy ? h - v : v)))),
    };
  }
  return { ...m, masks: m.masks.map((b) => flipArray(b, w, h, 1, dir)) };
}

/**
 * With probability `prob` flips the image, boxes, ignored boxes, masks and seg map in `direction`;
 * sets `flip` and `flipDirection`. Draws one uniform per sample.
 */
export class RandomFlip implements Transform {
  readonly name = 'RandomFlip';
  readonly prob: number;
  readonly direction: FlipDirection;

  constructor(cfg: RandomFlipConfig = {}) {
    this.prob = cfg.prob ?? 0.5;
    this.direction = cfg.direction ?? 'horizontal';
    if (!(this.prob >= 0 && this.prob <= 1)) throw new Error(`RandomFlip: prob must be in [0, 1], got ${this.prob}`);
    if (!['horizontal', 'vertical', 'diagonal'].includes(this.direction)) {
      throw new Error(`RandomFlip: direction must be horizontal, vertical or diagonal, got ${String(this.direction)}`);
    }
  }

  apply(s: Sample, ctx: TransformContext): Sample {
    const doFlip = ctx.rng.uniform() < this.prob;
    if (!doFlip) return s;
    return flipSample(s, this.direction);
  }
}

/** Flips every field of `s` (see {@link RandomFlip}). */
export function flipSample(s: Sample, dir: FlipDirection): Sample {
  const { width: w, height: h } = s.img;
  s.img = { ...s.img, data: flipArray(s.img.data, w, h, 3, dir) };
  if (s.gtBboxes) s.gtBboxes = flipBoxes(s.gtBboxes, w, h, dir);
  if (s.gtBboxesIgnore) s.gtBboxesIgnore = flipBoxes(s.gtBboxesIgnore, w, h, dir);
  if (s.gtMasks) s.gtMasks = flipMasks(s.gtMasks, dir);
  if (s.gtSegMap) s.gtSegMap = flipArray(s.gtSegMap, w, h, 1, dir);
  s.flip = true;
  s.flipDirection = dir;
  return s;
}
