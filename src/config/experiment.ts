/**
 * The top-level experiment schema: the keys the engine and the CLIs read. Blocks owned by
 * other builders (the model beyond its backbone/head basics, dataset blocks, pipelines, test
 * augmentation) are open or `any()` here and validated by those builders.
 */
import { ConfigError, where } from './errors.ts';
import { any, int, list, nul, num, obj, oneOf, optional, refine, str, validate, type Infer } from './schema.ts';

const positiveInt = int({ min: 1 });

/** The model block: its builder (src/models/build.ts, one `type:` table) validates the rest. */
const model = obj({ type: str() }, { open: true });

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
  type: str({ enum: ['AdamW'] }),
  lr: num({ min: 0 }),
  weight_decay: num({ min: 0 }),
  betas: optional(list(num({ min: 0, max: 1 }), { len: 2 })),
  eps: optional(num({ min: 0 })),
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
  /** The metric tracked for `best.json` (default: the evaluator's, e.g. mIoU or bbox_mAP). */
  best_metric: optional(str()),
});

/** The schema of a whole experiment config (after `_base_` merging and overrides). */
export const experimentSchema = obj({
  model,
  data,
  optimizer,
  schedule,
  train,
  /** The evaluator: validated by src/evaluation/build.ts (default by the model's task). */
  val_evaluator: optional(any()),
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
  if (typeof cfg === 'object' && cfg !== null && Object.hasOwn(cfg, 'test')) {
    // The pre-detection layout; say where it went rather than only "unknown key".
    throw new ConfigError(`${where(file, 'test')}: moved to model.test_cfg (MMSeg/MMDet layout: model.train_cfg and model.test_cfg)`,
      { file, path: 'test', value: (cfg as Record<string, unknown>).test, allowed: 'model.test_cfg' });
  }
  return validate(experimentSchema, cfg, '', file);
}
