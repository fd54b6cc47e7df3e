/**
 * Pad (MMCV `Pad`): pads the bottom and right.
 */
import { int, num, obj, optional } from '../../config/schema.ts';
import { typeSpec } from '../../config/lookup.ts';
import { allocLike, pair, type Sample, type Transform } from './types.ts';
import { type InstanceMasks } from '../../structures/masks.ts';

/** Config of {@link Pad}; exactly one of `size` and `sizeDivisor`. */
export interface PadConfig {
  /** Pad each side up to a multiple of this (e.g. 32). */
  sizeDivisor?: number;
  /** Pad to exactly `[h, w]` (must not be smaller than the image). */
  size?: [number, number];
  /** Image fill value (default 0). */
  padVal?: number;
  /** Seg map fill value (default 255, the ignore index). */
  segPadVal?: number;
}

/** `{type: Pad, ...}` in a config (MMCV's keys); exactly one of `size` and `size_divisor`. */
export const PAD_SCHEMA = obj({
  size_divisor: optional(int({ min: 1 })),
  size: optional(pair(int({ min: 1 }))),
  pad_val: optional(num()),
  seg_pad_val: optional(num()),
});

export const PAD_SPEC = typeSpec(PAD_SCHEMA, (c) => new Pad({ sizeDivisor: c.size_divisor, size: c.size, padVal: c.pad_val, segPadVal: c.seg_pad_val }));

/** Pads an HWC array of `c` channels from `w x h` to `pw x ph` (bottom/right) with `val`. */
export function padArray<T extends Uint8Array | Float32Array>(a: T, w: number, h: number, c: number, pw: number, ph: number, val: number): T {
  const out = allocLike(a, pw * ph * c);
  if (val !== 0) out.fill(val);
  for (let y = 0; y < h; y++) out.set(a.subarray(y * w * c, (y + 1) * w * c), y * pw * c);
  return out;
}

/** Pads masks with 0 (polygons only get the new size). */
export function padMasks(m: InstanceMasks, pw: number, ph: number): InstanceMasks {
  if (m.kind === 'polygons') return { ...m, width: pw, height: ph };
  return { kind: 'bitmaps', width: pw, height: ph, masks: m.masks.map((b) => padArray(b, m.width, m.height, 1, pw, ph, 0)) };
}

/**
 * Pads the image (with `padVal`), the masks (with 0) and the seg map (with `segPadVal`) at the
 * bottom/right to `size` or to multiples of `sizeDivisor`; sets `padShape`. `imgShape` and the
 * boxes are unchanged.
 */
export class Pad implements Transform {
  readonly name = 'Pad';
  readonly sizeDivisor?: number;
  readonly size?: [number, number];
  readonly padVal: number;
  readonly segPadVal: number;

  constructor(cfg: PadConfig) {
    if ((cfg.size === undefined) === (cfg.sizeDivisor === undefined)) throw new Error('Pad: give exactly one of size and size_divisor');
    if (cfg.sizeDivisor !== undefined && !(Number.isInteger(cfg.sizeDivisor) && cfg.sizeDivisor > 0)) {
      throw new Error(`Pad: size_divisor must be a positive integer, got ${cfg.sizeDivisor}`);
    }
    this.sizeDivisor = cfg.sizeDivisor;
    this.size = cfg.size;
    this.padVal = cfg.padVal ?? 0;
    this.segPadVal = cfg.segPadVal ?? 255;
  }

  apply(s: Sample): Sample {
    const { width: w, height: h } = s.img;
    let ph: number, pw: number;
    if (this.size) {
      [ph, pw] = this.size;
      if (ph < h || pw < w) throw new Error(`Pad: image ${h}x${w} is larger than the pad size ${ph}x${pw}`);
    } else {
      const d = this.sizeDivisor!;
      ph = Math.ceil(h / d) * d;
      pw = Math.ceil(w / d) * d;
    }
    if (ph !== h || pw !== w) {
      s.img = { ...s.img, data: padArray(s.img.data, w, h, 3, pw, ph, this.padVal), width: pw, height: ph };
      if (s.gtMasks) s.gtMasks = padMasks(s.gtMasks, pw, ph);
      if (s.gtSegMap) s.gtSegMap = padArray(s.gtSegMap, w, h, 1, pw, ph, this.segPadVal);
    }
    s.padShape = [ph, pw];
    return s;
  }
}
