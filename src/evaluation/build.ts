/**
 * The `val_evaluator:` block (MMDet/MMSeg 3.x name) → an {@link Evaluator}; without one, the
 * model's task picks the default (segmentation: `IoUMetric`, detection: `CocoMetric` bbox + segm).
 *
 *   val_evaluator: {type: IoUMetric, ignore_index: 255}
 *   val_evaluator: {type: CocoMetric, metric: [bbox, segm]}
 */
import { CocoDataset } from '../datasets/coco_dataset.ts';
import { ConfigError, where } from '../config/errors.ts';
import { byType, int, list, obj, oneOf, optional, str, validate, type Infer } from '../config/schema.ts';
import { isSegLabelSource, type Dataset } from '../datasets/dataset.ts';
import { CocoMetric, type CocoIouType } from './coco_evaluator.ts';
import type { Evaluator } from './evaluator.ts';
import { IoUMetric } from './seg_evaluator.ts';

const iouType = str({ enum: ['bbox', 'segm'] });

export const evaluatorSchema = byType('evaluator type', {
  IoUMetric: obj({ type: str({ enum: ['IoUMetric'] }), ignore_index: optional(int({ min: 0 })) }),
  CocoMetric: obj({ type: str({ enum: ['CocoMetric'] }), metric: optional(oneOf(iouType, list(iouType))) }),
});

export type EvaluatorBlock = Infer<typeof evaluatorSchema>;

/** The evaluator type a task uses when the config names none. */
export const DEFAULT_EVALUATOR = { segmentation: 'IoUMetric', detection: 'CocoMetric' } as const;

/** Validates a `val_evaluator` block. */
export function validateEvaluatorConfig(block: unknown, file?: string, path = 'val_evaluator'): EvaluatorBlock {
  return validate(evaluatorSchema, block, path, file);
}

export interface EvaluatorContext {
  task: keyof typeof DEFAULT_EVALUATOR;
  /** The dataset evaluated (its GT: label files, or the COCO annotations). */
  dataset: Dataset;
  numClasses: number;
  file?: string;
}



/**
 * Builds the evaluator of `block` (or the task's default) for `ctx.dataset`.
 * @throws ConfigError when the dataset cannot feed that evaluator (e.g. CocoMetric on label maps).
 */
export function buildEvaluator(block: unknown, ctx: EvaluatorContext): Evaluator {
  const b = block === undefined || block === null ? validateEvaluatorConfig({ type: DEFAULT_EVALUATOR[ctx.task] }, ctx.file) : validateEvaluatorConfig(block, ctx.file);
  if (b.type === 'IoUMetric') {
    return new IoUMetric({ numClasses: ctx.numClasses, ignoreIndex: b.ignore_index, labelFiles: isSegLabelSource(ctx.dataset) ? ctx.dataset : undefined, classes: ctx.dataset.classes });
  }
  const ds = ctx.dataset;
  if (!(ds instanceof CocoDataset)) {
    throw new ConfigError(`${where(ctx.file, 'val_evaluator.type')}: CocoMetric needs a COCO-format dataset (CocoDataset)`, { file: ctx.file, path: 'val_evaluator.type', value: b.type });
  }
  const metric = b.metric === undefined ? undefined : (Array.isArray(b.metric) ? b.metric : [b.metric]) as CocoIouType[];
  return new CocoMetric({ coco: ds.coco, label2cat: ds.label2cat, metrics: metric });
}
