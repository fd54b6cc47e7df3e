/**
 * The top-level experiment schema: the keys the engine and the CLIs read. Blocks owned by
 * other builders (the model beyond its backbone/head basics, dataset blocks, pipelines, test
 * augmentation) are open or `any()` here and validated by those builders.
 */
import { any, int, list, nul, num, obj, oneOf, optional, refine, str, validate, type Infer } from './schema.ts';

/** The official Conv2Former variant names (see src/backbone/conv2former.ts). */
export const BACKBONE_VARIANTS = ['n', 't', 's', 'b', 'l'] as const;

const positiveInt = int({ min: 1 });
const pair = list(positiveInt, { len: 2 });

/** A custom Conv2Former: four stages. */
const customVariant = obj({
  dims: list(positiveInt, { len: 4 }),
  depths: list(positiveInt, { len: 4 }),
  kernel_size: optional(positiveInt),
});

/** Backbone: the shared keys are checked; its other options belong to the model builder. */
const backbone = obj(
  {
    type: str(),
    variant: optional(oneOf(str({ enum: BACKBONE_VARIANTS }), customVariant)),
    drop_path_rate: optional(num({ min: 0, max: 1 })),
    checkpoint: optional(oneOf(str(), nul())),
  },
  { open: true },
);

const model = obj(
  {
    type: str(),
    backbone: optional(backbone),
    decode_head: optional(obj({ num_classes: positiveInt }, { open: true })),
  },
  { open: true },
);

/** A dataset block: the dataset builder validates it; only its `type` is required here. */
const dataset = obj({ type: str() }, { open: true });

const data = obj({
  batch_size: positiveInt,
  num_workers: optional(int({ min: 0 })),
  train: dataset,
  val: dataset,
  test: optional(dataset),
});

const optimizer = obj({
  type: str({ enum: ['AdamW', 'SGD'] }),
  lr: num({ min: 0 }),
  weight_decay: num({ min: 0 }),
  betas: optional(list(num({ min: 0, max: 1 }), { len: 2 })),
  eps: optional(num({ min: 0 })),
  momentum: optional(num({ min: 0, max: 1 })),
  paramwise_cfg: optional(
    obj({
      layer_decay_rate: optional(num({ min: 0, max: 1 })),
      decay_type: optional(str({ enum: ['stage_wise', 'layer_wise'] })),
      num_layers: optional(positiveInt),
    }),
  ),
});

const schedule = refine(
  obj({
    max_iters: positiveInt,
    warmup_iters: int({ min: 0 }),
    warmup_ratio: optional(num({ min: 0, max: 1 })),
    policy: str({ enum: ['poly', 'step', 'cosine'] }),
    power: optional(num({ min: 0 })),
    min_lr: optional(num({ min: 0 })),
    steps: optional(list(int({ min: 0 }))),
    gamma: optional(num({ min: 0 })),
  }),
  // A step schedule without steps would silently never decay.
  (s) => (s.policy === 'step' && !s.steps?.length ? "policy 'step' needs 'steps' (the iterations at which lr is multiplied by gamma)" : undefined),
);

const train = obj({
  eval_interval: positiveInt,
  checkpoint_interval: positiveInt,
  log_interval: positiveInt,
  grad_clip: optional(oneOf(num({ min: 0 }), nul())),
  accumulate: optional(positiveInt),
  data_parallel: optional(positiveInt),
  seed: optional(int()),
});

const test = refine(
  obj({
    mode: str({ enum: ['whole', 'slide'] }),
    crop_size: optional(pair),
    stride: optional(pair),
    aug: optional(any()),
  }),
  // Sliding-window inference cannot guess its window.
  (t) => (t.mode === 'slide' && (!t.crop_size || !t.stride) ? "mode 'slide' needs 'crop_size' and 'stride'" : undefined),
);

/** The schema of a whole experiment config (after `_base_` merging and overrides). */
export const experimentSchema = obj({
  model,
  data,
  optimizer,
  schedule,
  train,
  test: optional(test),
  work_dir: optional(str()),
});

/** A validated experiment config. */
export type ExperimentConfig = Infer<typeof experimentSchema>;

/**
 * Validates a merged config against {@link experimentSchema}.
 * @param file the config file, for messages (`configs/x.yaml: schedule.max_iters: ...`).
 * @throws ConfigError naming the key path, the bad value and what is allowed.
 */
export function validateExperimentConfig(cfg: unknown, file?: string): ExperimentConfig {
  return validate(experimentSchema, cfg, '', file);
}
