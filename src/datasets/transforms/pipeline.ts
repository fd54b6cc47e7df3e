/**
 * Builds a pipeline from a config list of MMDet-style `{type, ...}` entries with MMDet's
 * snake_case keys: loading steps (`LoadImageFromFile`, `LoadAnnotations`) at its head, then
 * transforms. Every entry is validated by the schema beside its class; errors are ConfigErrors
 * naming the file and key path (`data.train.pipeline.3.ratio_range`).
 */
import { ConfigError, formatValue, where } from '../../config/errors.ts';
import { childPath, lookupType, typeSpec, type ConfigAt, type TypeSpec } from '../../config/lookup.ts';
import { bool, obj, optional, refine, type Schema } from '../../config/schema.ts';
import { NORMALIZE_SPEC } from './normalize.ts';
import { PAD_SPEC } from './pad.ts';
import { PHOTO_METRIC_DISTORTION_SPEC } from './photometric_distortion.ts';
import { RANDOM_CROP_SPEC } from './random_crop.ts';
import { RANDOM_FLIP_SPEC } from './random_flip.ts';
import { RESIZE_SPEC } from './resize.ts';
import { definedOnly, type Sample, type Transform, type TransformContext } from './types.ts';

/** One pipeline entry. */
export interface TransformConfig {
  type: string;
  [key: string]: unknown;
}

/** Transform type → schema and constructor. */
export const TRANSFORMS: Readonly<Record<string, TypeSpec<Transform>>> = {
  Resize: RESIZE_SPEC,
  RandomFlip: RANDOM_FLIP_SPEC,
  RandomCrop: RANDOM_CROP_SPEC,
  PhotoMetricDistortion: PHOTO_METRIC_DISTORTION_SPEC,
  Normalize: NORMALIZE_SPEC,
  Pad: PAD_SPEC,
};

/** Options of the loading steps a dataset performs before its pipeline. */
export interface LoadSteps {
  image: { autoOrient?: boolean };
  annotations: { withMask?: boolean; poly2mask?: boolean };
}

/** `{type: LoadImageFromFile, ...}` in a config. */
export const LOAD_IMAGE_SCHEMA = obj({ auto_orient: optional(bool()) });

const alwaysTrue = (): Schema<boolean | undefined> =>
  optional(refine(bool(), (v) => (v ? undefined : 'false is not supported; boxes and labels are always loaded')));

/** `{type: LoadAnnotations, ...}` in a config (MMDet's keys; seg datasets always load their label maps). */
export const LOAD_ANNOTATIONS_SCHEMA = obj({
  with_bbox: alwaysTrue(),
  with_label: alwaysTrue(),
  with_mask: optional(bool()),
  with_seg: optional(bool()),
  poly2mask: optional(bool()),
});

const loadImageSpec = typeSpec(LOAD_IMAGE_SCHEMA, (c): Partial<LoadSteps> => ({ image: definedOnly({ autoOrient: c.auto_orient }) }));

/** Loading step type → schema and the options it sets. */
export const LOAD_STEPS: Readonly<Record<string, TypeSpec<Partial<LoadSteps>>>> = {
  LoadImage: loadImageSpec,
  LoadImageFromFile: loadImageSpec,
  LoadAnnotations: typeSpec(LOAD_ANNOTATIONS_SCHEMA, (c) => ({ annotations: definedOnly({ withMask: c.with_mask, poly2mask: c.poly2mask }) })),
};

/** A built pipeline: the options of the loading steps, and the transforms. */
export interface Pipeline {
  load: LoadSteps;
  transforms: Transform[];
}

/**
 * Builds the pipeline `cfg`, located at `at` (default `pipeline`) for messages. Loading entries
 * must come first: datasets load images and annotations themselves (async, in libuv threads),
 * honouring these entries' options; the rest is the synchronous transform pipeline.
 * @throws ConfigError for an unknown type (listing the known ones), an unknown key (listing the
 *   allowed ones), a bad value, a loading step after a transform, or a constraint a transform's
 *   constructor rejects.
 */
export function buildPipeline(cfg: unknown, at: ConfigAt = { path: 'pipeline' }): Pipeline {
  const { file } = at;
  if (!Array.isArray(cfg)) {
    throw new ConfigError(`${where(file, at.path)}: expected a list of {type, ...} entries, got ${formatValue(cfg)}`,
      { file, path: at.path, value: cfg, allowed: 'a list of {type, ...} entries' });
  }
  const known = { ...LOAD_STEPS, ...TRANSFORMS };
  const load: LoadSteps = { image: {}, annotations: {} };
  const transforms: Transform[] = [];
  cfg.forEach((entry: unknown, i) => {
    const path = childPath(at.path, i);
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new ConfigError(`${where(file, path)}: expected a dict {type, ...}, got ${formatValue(entry)}`, { file, path, value: entry, allowed: 'a dict {type, ...}' });
    }
    const { type, ...rest } = entry as Record<string, unknown>;
    lookupType(known, type, file, childPath(path, 'type'), 'pipeline step type');
    const name = type as string;
    if (Object.hasOwn(LOAD_STEPS, name)) {
      if (transforms.length > 0) {
        throw new ConfigError(`${where(file, path)}: ${name}: loading steps must come first, before any transform`, { file, path, value: name });
      }
      const steps = LOAD_STEPS[name].build(rest, { file, path });
      Object.assign(load.image, steps.image);
      Object.assign(load.annotations, steps.annotations);
      return;
    }
    try {
      transforms.push(TRANSFORMS[name].build(rest, { file, path }));
    } catch (e) {
      // The schema's errors already name the key; a constructor's constraint gets the entry's place.
      if (e instanceof ConfigError || !(e instanceof Error)) throw e;
      throw new ConfigError(`${where(file, path)}: ${e.message}`, { file, path, value: entry });
    }
  });
  return { load, transforms };
}

/** A pipeline option of a dataset: config entries, or a pipeline built by {@link buildPipeline}. */
export type PipelineOption = readonly TransformConfig[] | Pipeline;

/** `pipeline` as a built pipeline. */
export function resolvePipeline(pipeline: PipelineOption, at?: ConfigAt): Pipeline {
  return 'transforms' in pipeline ? pipeline : buildPipeline(pipeline, at);
}

/** The `pipeline` key of a dataset config: validates and builds it, with its key path in errors. */
export const PIPELINE_SCHEMA: Schema<Pipeline> = {
  kind: 'list',
  expected: 'a list of {type, ...} entries',
  check: (v, path, file) => buildPipeline(v, { file, path }),
};

/** Runs `transforms` in order; `null` as soon as one drops the sample. */
export function runPipeline(transforms: Transform[], s: Sample, ctx: TransformContext): Sample | null {
  let cur: Sample | null = s;
  for (const t of transforms) {
    cur = t.apply(cur, ctx);
    if (cur === null) return null;
  }
  return cur;
}
