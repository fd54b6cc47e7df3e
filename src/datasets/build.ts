/**
 * Builds a dataset from its config block (`{type: CocoDataset, ann_file, img_dir, pipeline, ...}`,
 * MMDet/MMSeg's snake_case keys): one explicit table of types, each validated by the schema beside
 * its class. Errors are ConfigErrors naming the file and key path (`data.train.ann_fle`).
 */
import { buildFromTable, type ConfigAt, type TypeSpec } from '../config/lookup.ts';
import { COCO_DATASET_SPEC } from './coco_dataset.ts';
import type { Dataset } from './dataset.ts';
import { ParallelDataset } from './parallel_dataset.ts';
import { ADE20K_DATASET_SPEC, SEG_DATASET_SPEC, SHAPES_SEG_DATASET_SPEC } from './seg_dataset.ts';

/** Dataset type → schema and constructor. */
export const DATASETS: Readonly<Record<string, TypeSpec<Promise<Dataset>>>> = {
  CocoDataset: COCO_DATASET_SPEC,
  SegDataset: SEG_DATASET_SPEC,
  ADE20KDataset: ADE20K_DATASET_SPEC,
  ShapesSegDataset: SHAPES_SEG_DATASET_SPEC,
};

/**
 * @param cfg the dataset block, found at `at` (e.g. `{file: 'configs/x.yaml', path: 'data.train'}`).
 * @param overrides keys replacing the block's before validation (e.g. `{pipeline}`).
 * @throws ConfigError for an unknown type, an unknown or missing key, or a bad value (the
 *   pipeline's included).
 */
export async function buildDataset(cfg: unknown, at: ConfigAt, overrides: Record<string, unknown> = {}): Promise<Dataset> {
  const block = typeof cfg === 'object' && cfg !== null && !Array.isArray(cfg) ? { ...cfg, ...overrides } : cfg;
  return buildFromTable(DATASETS, block, at, 'dataset type');
}

/**
 * {@link buildDataset}, with the samples loaded in `numWorkers` worker threads when it is > 0
 * (`data.num_workers`; see parallel_dataset.ts). The block and overrides must be plain data.
 * Call `close()` on the result when done: its worker threads keep the process alive until then.
 */
export async function buildLoadingDataset(cfg: unknown, at: ConfigAt, numWorkers = 0, overrides: Record<string, unknown> = {}): Promise<Dataset> {
  const local = await buildDataset(cfg, at, overrides);
  if (numWorkers <= 0) return local;
  return ParallelDataset.start(local, numWorkers, { block: cfg, at, overrides });
}
