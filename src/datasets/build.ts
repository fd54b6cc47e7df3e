/**
 * Builds a dataset from its config block (`{type: CocoDataset, ann_file, img_dir, pipeline, ...}`):
 * one explicit table of types; an unknown type lists the known ones, an unknown key names the
 * allowed ones. Keys may be snake_case (as in MMDet configs) or camelCase.
 */
import { CocoDataset } from './coco_dataset.ts';
import type { Dataset } from './dataset.ts';
import { ADE20KDataset, SegDataset, ShapesSegDataset } from './seg_dataset.ts';
import { camelToSnake, snakeToCamel } from './transforms/pipeline.ts';

type Builder = { keys: readonly string[]; required: readonly string[]; make: (opts: Record<string, unknown>) => Promise<Dataset> };

const COMMON = ['pipeline', 'onBadSample', 'log'] as const;
const SEG_PRESET = ['imgDir', 'annDir', ...COMMON] as const;

/** Dataset type → its keys and constructor. */
export const DATASETS: Readonly<Record<string, Builder>> = {
  CocoDataset: {
    keys: ['annFile', 'imgDir', 'filterEmptyGt', 'minSize', 'testMode', ...COMMON],
    required: ['annFile', 'imgDir', 'pipeline'],
    make: (o) => CocoDataset.create(o as never),
  },
  SegDataset: {
    keys: ['imgDir', 'annDir', 'imgSuffix', 'segMapSuffix', 'reduceZeroLabel', 'classes', 'palette', ...COMMON],
    required: ['imgDir', 'annDir', 'classes', 'pipeline'],
    make: (o) => SegDataset.create(o as never),
  },
  ADE20KDataset: { keys: SEG_PRESET, required: ['imgDir', 'annDir', 'pipeline'], make: (o) => ADE20KDataset.create(o as never) },
  ShapesSegDataset: { keys: SEG_PRESET, required: ['imgDir', 'annDir', 'pipeline'], make: (o) => ShapesSegDataset.create(o as never) },
};

/**
 * @param cfg the dataset block; `where` names it in errors (e.g. `configs/x.yaml: data.train`).
 * @param overrides extra options (e.g. `{pipeline}` or `{log}`) applied after the block.
 */
export async function buildDataset(cfg: Record<string, unknown>, where: string, overrides: Record<string, unknown> = {}): Promise<Dataset> {
  if (typeof cfg !== 'object' || cfg === null || typeof cfg.type !== 'string') throw new Error(`${where}: expected a block with a 'type'`);
  const entry = Object.hasOwn(DATASETS, cfg.type) ? DATASETS[cfg.type] : undefined;
  if (!entry) throw new Error(`${where}.type: unknown dataset type '${cfg.type}'; known types: ${Object.keys(DATASETS).join(', ')}`);
  const opts: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(cfg)) {
    if (k === 'type') continue;
    const key = snakeToCamel(k);
    if (!entry.keys.includes(key)) {
      throw new Error(`${where}: unknown key '${k}' for ${cfg.type}; allowed keys: ${entry.keys.filter((x) => x !== 'log').map(camelToSnake).join(', ')}`);
    }
    opts[key] = v;
  }
  Object.assign(opts, overrides);
  const missing = entry.required.filter((k) => opts[k] === undefined);
  if (missing.length) throw new Error(`${where}: ${cfg.type} needs ${missing.map(camelToSnake).join(', ')}`);
  return entry.make(opts);
}
