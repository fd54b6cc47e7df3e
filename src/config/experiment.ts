/**
 * The top-level experiment schema: the keys the engine and the CLIs read. Blocks owned by
 * other builders (the model beyond its backbone/head basics, dataset blocks, pipelines, test
 * augmentation) are open or `any()` here and validated by those builders.
 */
import { ConfigError, where } from './errors.ts';
import { any, bool, int, list, nul, num, obj, oneOf, optional, refine, str, validate, type Infer } from './schema.ts';

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

/**
 * `schedule:` length by iterations (`max_iters`) or epochs (`max_epochs`, MMDet recipes); with both,
 * `max_iters` caps the epoch recipe (so `--cfg-options schedule.max_iters=N` ends any config's
 * training after N iterations). `by_epoch: true`: `steps` are epochs. Resolved to iterations by
 * `resolveSchedule` (src/engine/lr_schedule.ts); `warmup_iters` is always in iterations.
 */
const schedule = refine(
  obj({
    max_iters: optional(positiveInt),
    max_epochs: optional(positiveInt),
    by_epoch: optional(bool(), false),
    warmup_iters: int({ min: 0 }),
    warmup_ratio: optional(num({ min: 0, max: 1 })),
    policy: str({ enum: ['poly', 'step', 'cosine'] }),
    power: optional(num({ min: 0 })),
    min_lr: optional(num({ min: 0 })),
    steps: optional(list(int({ min: 0 }))),
    gamma: optional(num({ min: 0 })),
  }),
  (s) => {
    if (s.max_iters === undefined && s.max_epochs === undefined) return 'give max_iters or max_epochs (with both, max_iters caps the epochs)';
    // A step schedule without steps would silently never decay.
    if (s.policy === 'step' && !s.steps?.length) {
      return `policy 'step' needs 'steps' (the ${s.by_epoch ? 'epochs' : 'iterations'} at which lr is multiplied by gamma)`;
    }
    // MMCV's epoch-wise poly/cosine holds the lr for a whole epoch; ours decays every iteration.
    if (s.by_epoch && s.policy !== 'step') return `by_epoch: true is for policy 'step' (steps in epochs); '${s.policy}' decays every iteration (over max_epochs when given)`;
    return undefined;
  },
);

/**
 * Blocks `--cfg-options` may add keys to (`loadConfig`'s `openPaths`). Safe because they are closed
 * here: a misspelt added key is still an error naming it, at validation. `schedule`: so that
 * `schedule.max_iters=N` caps an epoch recipe and `schedule.max_epochs=N` lengthens an iteration one;
 * `train`: so that `train.sync_bn=true` or `train.seed=N` can be set on any config.
 */
export const EXPERIMENT_OPEN_PATHS: readonly string[] = ['schedule', 'train'];

/** A validated `schedule:` block. */
export type ScheduleBlock = Infer<typeof schedule>;

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
  /** Under `--launcher mpi`: every BatchNorm synced across ranks (PyTorch `convert_sync_batchnorm`). */
  sync_bn: optional(bool()),
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
