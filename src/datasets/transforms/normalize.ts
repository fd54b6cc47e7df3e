/**
 * Normalize (MMCV `Normalize`).
 */
import { bool, list, num, obj, optional, type Schema } from '../../config/schema.ts';
import { typeSpec } from '../../config/lookup.ts';
import { positive, type Sample, type Transform } from './types.ts';

/** Config of {@link Normalize}. */
export interface NormalizeConfig {
  /** Per-channel mean (default ImageNet's, in 0-255 RGB). */
  mean?: [number, number, number];
  /** Per-channel std. */
  std?: [number, number, number];
  /** Swap channels 0 and 2 (BGR -> RGB) before normalising. Images are loaded as RGB, so default false. */
  toRgb?: boolean;
}

const rgb = (item: Schema<number>) => list(item, { len: 3 }) as Schema<[number, number, number]>;

/** `{type: Normalize, ...}` in a config (MMCV's keys). */
export const NORMALIZE_SCHEMA = obj({
  mean: optional(rgb(num())),
  std: optional(rgb(positive())),
  to_rgb: optional(bool()),
});

export const NORMALIZE_SPEC = typeSpec(NORMALIZE_SCHEMA, (c) => new Normalize({ mean: c.mean, std: c.std, toRgb: c.to_rgb }));

/** `(img - mean) / std` per channel into a new float32 image. */
export class Normalize implements Transform {
  readonly name = 'Normalize';
  readonly mean: [number, number, number];
  readonly std: [number, number, number];
  readonly toRgb: boolean;

  constructor(cfg: NormalizeConfig = {}) {
    this.mean = cfg.mean ?? [123.675, 116.28, 103.53];
    this.std = cfg.std ?? [58.395, 57.12, 57.375];
    this.toRgb = cfg.toRgb ?? false;
    if (this.mean.length !== 3 || this.std.length !== 3 || this.std.some((v) => !(v > 0))) {
      throw new Error('Normalize: mean and std must have 3 values, std > 0');
    }
  }

  apply(s: Sample): Sample {
    const src = s.img.data;
    const out = new Float32Array(src.length);
    const [m0, m1, m2] = this.mean;
    const [i0, i1, i2] = this.std.map((v) => 1 / v);
    const a = this.toRgb ? 2 : 0, c = this.toRgb ? 0 : 2;
    for (let i = 0; i < src.length; i += 3) {
      out[i] = (src[i + a] - m0) * i0;
      out[i + 1] = (src[i + 1] - m1) * i1;
      out[i + 2] = (src[i + c] - m2) * i2;
    }
    s.img = { ...s.img, data: out };
    return s;
  }
}
