/**
 * One table of model types (MMDet/MMSeg `model.type`), each with its schema and builder beside its
 * class. `buildModel` validates the whole `model:` block first (an unknown type lists the known ones;
 * an unknown key, a bad value or a `test_cfg` key of another task names its full key path and the
 * file), then builds.
 */
import { byType, validate, type Schema, type TypedBlock } from '../config/schema.ts';
import { buildEncoderDecoder, encoderDecoderSchema } from './encoder_decoder_config.ts';
import { buildMaskRCNN, cascadeMaskRcnnSchema, maskRcnnSchema } from './mask_rcnn_config.ts';
import type { Model, ModelBuildOptions, Task } from './model.ts';

interface ModelEntry<B> {
  task: Task;
  schema: Schema<B>;
  build: (block: B, opts: ModelBuildOptions) => Promise<Model>;
}

/** Checks that a table entry's builder takes what its schema produces. */
const entry = <B>(e: ModelEntry<B>): ModelEntry<B> => e;

/** Model type → task, schema, builder. */
export const MODELS = {
  EncoderDecoder: entry({ task: 'segmentation', schema: encoderDecoderSchema, build: buildEncoderDecoder }),
  MaskRCNN: entry({ task: 'detection', schema: maskRcnnSchema, build: buildMaskRCNN }),
  CascadeMaskRCNN: entry({ task: 'detection', schema: cascadeMaskRcnnSchema, build: buildMaskRCNN }),
};

type Schemas = { [K in keyof typeof MODELS]: (typeof MODELS)[K]['schema'] };
const modelSchema = byType('model type', Object.fromEntries(Object.entries(MODELS).map(([k, v]) => [k, v.schema])) as Schemas);

/** A validated `model:` block. */
export type ModelBlock = TypedBlock<Schemas>;

/**
 * Validates a `model:` block.
 * @param file the config file, for messages; `path` the block's key path (default `model`).
 * @throws ConfigError naming the file, the full key path, the bad value and what is allowed.
 */
export function validateModelConfig(block: unknown, file?: string, path = 'model'): ModelBlock {
  return validate(modelSchema, block, path, file);
}

/** Validates and builds the model of a `model:` block. */
export async function buildModel(block: unknown, opts: Partial<ModelBuildOptions> = {}): Promise<Model> {
  return buildValidatedModel(validateModelConfig(block, opts.file, opts.path ?? 'model'), opts);
}

/** Builds the model of a block {@link validateModelConfig} returned (CLIs validate before loading data). */
export async function buildValidatedModel(m: ModelBlock, opts: Partial<ModelBuildOptions> = {}): Promise<Model> {
  // The table's entries take their own block; `m.type` picked the entry whose schema produced `m`.
  const build = MODELS[m.type].build as (b: ModelBlock, o: ModelBuildOptions) => Promise<Model>;
  return build(m, { file: opts.file, path: opts.path ?? 'model', log: opts.log ?? ((l) => console.log(l)), loadCheckpoint: opts.loadCheckpoint });
}
