/**
 * Typed sample record and transform interface of the data pipeline (MMDetection/MMSegmentation
 * semantics, detectron2-style typed fields). Everything is plain typed arrays; images are HWC
 * interleaved; the loader collates to tensors later.
 */
import type { InstanceMasks } from '../../structures/masks.ts';
import type { Rng } from '../../nn/random.ts';
import { ConfigError, formatValue, where } from '../../config/errors.ts';
import { list, num, type Schema } from '../../config/schema.ts';

/** An HWC interleaved image: uint8 after loading, float32 after PhotoMetricDistortion/Normalize. */
export interface ImageData {
  data: Uint8Array | Float32Array;
  height: number;
  width: number;
  channels: 3;
}

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

/** A list of exactly two `item`s, typed as a pair (`[w, h]`, `[lo, hi]`). */
export function pair<T>(item: Schema<T>): Schema<[T, T]> {
  return list(item, { len: 2 }) as Schema<[T, T]>;
}

/** A number > 0. */
export function positive(): Schema<number> {
  const n = num();
  return {
    kind: 'number',
    expected: 'a number > 0',
    check(v, path, file) {
      if (typeof v === 'number' && v > 0) return n.check(v, path, file); // finite
      throw new ConfigError(`${where(file, path)}: expected a number > 0, got ${formatValue(v)}`, { file, path, value: v, allowed: 'a number > 0' });
    },
  };
}

/** `o` without its undefined members, so spreading it over defaults keeps them. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
