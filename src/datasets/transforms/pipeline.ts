/**
 * Builds a transform pipeline from a config list (MMDet-style `{type, ...}` entries). Keys may be
 * written as in MMDet's YAML/Python configs (`keep_ratio`, `size_divisor`) or in camelCase.
 */
import { Normalize, NORMALIZE_KEYS } from './normalize.ts';
import { Pad, PAD_KEYS } from './pad.ts';
import { PhotoMetricDistortion, PHOTO_METRIC_DISTORTION_KEYS } from './photometric_distortion.ts';
import { RandomCrop, RANDOM_CROP_KEYS } from './random_crop.ts';
import { RandomFlip, RANDOM_FLIP_KEYS } from './random_flip.ts';
import { Resize, RESIZE_KEYS } from './resize.ts';
import type { Sample, Transform, TransformContext } from './types.ts';

/** One pipeline entry. */
export interface TransformConfig {
  type: string;
  [key: string]: unknown;
}

interface Entry {
  keys: readonly string[];
  make: (cfg: Record<string, unknown>) => Transform;
}

/** Transform type -> allowed keys and constructor. */
export const TRANSFORMS: Readonly<Record<string, Entry>> = {
  Resize: { keys: RESIZE_KEYS, make: (c) => new Resize(c as never) },
  RandomFlip: { keys: RANDOM_FLIP_KEYS, make: (c) => new RandomFlip(c as never) },
  RandomCrop: { keys: RANDOM_CROP_KEYS, make: (c) => new RandomCrop(c as never) },
  PhotoMetricDistortion: { keys: PHOTO_METRIC_DISTORTION_KEYS, make: (c) => new PhotoMetricDistortion(c as never) },
  Normalize: { keys: NORMALIZE_KEYS, make: (c) => new Normalize(c as never) },
  Pad: { keys: PAD_KEYS, make: (c) => new Pad(c as never) },
};

/**
 * The transforms of `cfg`, in order. An unknown `type` fails listing the known types; an unknown
 * key fails naming it and the allowed keys (of the entry at that index).
 */
export function buildPipeline(cfg: TransformConfig[]): Transform[] {
  if (!Array.isArray(cfg)) throw new Error('buildPipeline: config must be a list of {type, ...}');
  return cfg.map((c, i) => {
    if (typeof c !== 'object' || c === null || typeof c.type !== 'string') {
      throw new Error(`buildPipeline: entry ${i} has no string 'type'`);
    }
    const entry = Object.hasOwn(TRANSFORMS, c.type) ? TRANSFORMS[c.type] : undefined;
    if (!entry) {
      throw new Error(`buildPipeline: unknown transform type '${c.type}' (entry ${i}); known types: ${Object.keys(TRANSFORMS).join(', ')}`);
    }
    const { type: _t, ...given } = c;
    const rest: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(given)) {
      const key = snakeToCamel(k);
      if (!entry.keys.includes(key)) {
        throw new Error(`buildPipeline: entry ${i} (${c.type}): unknown key '${k}'; allowed keys: ${entry.keys.map(camelToSnake).join(', ')}`);
      }
      rest[key] = v;
    }
    return entry.make(rest);
  });
}

/** Options of the loading steps a dataset performs before its pipeline. */
export interface LoadSteps {
  image: { autoOrient?: boolean };
  annotations: { withMask?: boolean; poly2mask?: boolean };
}

const LOAD_KEYS: Readonly<Record<string, readonly string[]>> = {
  LoadImage: ['autoOrient'],
  LoadImageFromFile: ['autoOrient'],
  LoadAnnotations: ['withBbox', 'withLabel', 'withMask', 'withSeg', 'poly2mask'],
};

/**
 * Takes MMDet-style loading entries (`LoadImage`/`LoadImageFromFile`, `LoadAnnotations`) off the
 * head of a pipeline: datasets load images and annotations themselves (async, in libuv threads),
 * honouring these entries' options; the rest is the synchronous transform pipeline. A loading
 * entry after a transform is an error, as are unknown keys.
 */
export function splitLoadSteps(cfg: TransformConfig[]): { load: LoadSteps; rest: TransformConfig[] } {
  const load: LoadSteps = { image: {}, annotations: {} };
  let i = 0;
  for (; i < cfg.length && Object.hasOwn(LOAD_KEYS, cfg[i]?.type); i++) {
    const { type, ...given } = cfg[i];
    for (const [k, v] of Object.entries(given)) {
      const key = snakeToCamel(k);
      if (!LOAD_KEYS[type].includes(key)) {
        throw new Error(`pipeline entry ${i} (${type}): unknown key '${k}'; allowed keys: ${LOAD_KEYS[type].map(camelToSnake).join(', ') || '(none)'}`);
      }
      if (typeof v !== 'boolean') throw new Error(`pipeline entry ${i} (${type}): '${k}' must be true or false, got ${JSON.stringify(v)}`);
      if ((key === 'withBbox' || key === 'withLabel') && !v) throw new Error(`pipeline entry ${i} (${type}): '${k}: false' is not supported; boxes and labels are always loaded`);
      if (type === 'LoadAnnotations') (load.annotations as Record<string, boolean>)[key] = v;
      else (load.image as Record<string, boolean>)[key] = v;
    }
  }
  const rest = cfg.slice(i);
  const late = rest.findIndex((c) => Object.hasOwn(LOAD_KEYS, c?.type));
  if (late >= 0) throw new Error(`pipeline entry ${i + late} (${rest[late].type}): loading steps must come first, before any transform`);
  return { load, rest };
}

/** `keep_ratio` → `keepRatio`. */
export function snakeToCamel(k: string): string {
  return k.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
}

/** `keepRatio` → `keep_ratio`. */
export function camelToSnake(k: string): string {
  return k.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`);
}

/** Runs `transforms` in order; `null` as soon as one drops the sample. */
export function runPipeline(transforms: Transform[], s: Sample, ctx: TransformContext): Sample | null {
  let cur: Sample | null = s;
  for (const t of transforms) {
    cur = t.apply(cur, ctx);
    if (cur === null) return null;
  }
  return cur;
}
