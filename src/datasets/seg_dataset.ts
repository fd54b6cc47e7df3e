/**
 * Semantic segmentation datasets (MMSegmentation `BaseSegDataset`): images and label maps paired by
 * stem (path relative to the folder, suffix removed; folders are scanned recursively and sorted).
 *
 * - `getSample`: `loadImage` → `loadSegMap` → reduce_zero_label (0 → 255, k → k - 1, 255 stays
 *   255, as MMSeg's `LoadAnnotations`) → pipeline.
 * - Bad samples: a missing/corrupt image or label file, a label map of another size than its image,
 *   or (after reduce_zero_label) a label value that is neither < number of classes nor 255.
 *   Policy `skip`: one warning line `warning: skipping <file>: <cause>` per sample, counted in
 *   `badSamples`, null. Policy `error`: throws an error naming the file.
 * - Images without a label file are found at construction: with `error` the construction fails
 *   listing their stems; with `skip` one warning lists them and they stay in the list as bad
 *   samples. No image, or no image with a label, fails naming the folders.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Rng } from '../nn/random.ts';
import { typeSpec } from '../config/lookup.ts';
import { bool, int, list, obj, optional, str, type Schema } from '../config/schema.ts';
import { BadSampleLog, type BadSamplePolicy, type SegLabelSource, type SegPair } from './dataset.ts';
import { SHAPES_SEG_CLASSES, SHAPES_SEG_PALETTE } from './shapes.ts';
import { loadImage, loadSegMap } from './transforms/load.ts';
import { PIPELINE_SCHEMA, resolvePipeline, runPipeline, type LoadSteps, type PipelineOption } from './transforms/pipeline.ts';
import type { Sample, Transform } from './transforms/types.ts';

export interface SegDatasetOptions {
  imgDir: string;
  annDir: string;
  imgSuffix?: string;
  segMapSuffix?: string;
  /** Label 0 is "ignore": 0 → 255, k → k - 1 (default false). */
  reduceZeroLabel?: boolean;
  classes: readonly string[];
  palette?: readonly [number, number, number][];
  /** Entries `{type, ...}` (loading steps first), or a built pipeline. */
  pipeline: PipelineOption;
  onBadSample?: BadSamplePolicy;
  /** Receives warning lines (default console.warn). */
  log?: (line: string) => void;
}

/** Options of the presets, whose classes, suffixes and reduce_zero_label are fixed. */
export type PresetSegDatasetOptions = Omit<SegDatasetOptions, 'classes' | 'palette' | 'imgSuffix' | 'segMapSuffix' | 'reduceZeroLabel'>;

export type { SegPair } from './dataset.ts';

const COMMON_FIELDS = {
  img_dir: str(),
  ann_dir: str(),
  pipeline: PIPELINE_SCHEMA,
  on_bad_sample: optional(str({ enum: ['skip', 'error'] as const })),
};

/** `{type: SegDataset, ...}` in a config (MMSeg's keys). */
export const SEG_DATASET_SCHEMA = obj({
  ...COMMON_FIELDS,
  img_suffix: optional(str()),
  seg_map_suffix: optional(str()),
  reduce_zero_label: optional(bool()),
  classes: list(str()),
  palette: optional(list(list(int({ min: 0, max: 255 }), { len: 3 }) as Schema<[number, number, number]>)),
});

/** `{type: ADE20KDataset | ShapesSegDataset, ...}`: the presets fix classes, suffixes and reduce_zero_label. */
export const PRESET_SEG_DATASET_SCHEMA = obj(COMMON_FIELDS);

export const SEG_DATASET_SPEC = typeSpec(SEG_DATASET_SCHEMA, (c) => SegDataset.create({
  imgDir: c.img_dir, annDir: c.ann_dir, pipeline: c.pipeline, onBadSample: c.on_bad_sample, imgSuffix: c.img_suffix,
  segMapSuffix: c.seg_map_suffix, reduceZeroLabel: c.reduce_zero_label, classes: c.classes, palette: c.palette,
}));

interface SegInit {
  opts: SegDatasetOptions;
  pairs: SegPair[];
  transforms: Transform[];
  imageLoad: LoadSteps['image'];
  log: (line: string) => void;
}

/** Files under `dir` (recursive) ending with `suffix`, as paths relative to `dir`, sorted. */
async function listFiles(dir: string, suffix: string, what: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile() && e.name.endsWith(suffix))
      .map((e) => path.relative(dir, path.join((e as { parentPath?: string }).parentPath ?? e.path, e.name)));
  } catch (e) {
    throw new Error(`SegDataset: cannot list ${what} folder ${dir}: ${(e as Error).message}`);
  }
  return entries.sort();
}

/** Scans and pairs the files, applying the missing-label policy. */
async function scan(opts: SegDatasetOptions): Promise<SegInit> {
  const imgSuffix = opts.imgSuffix ?? '.jpg';
  const segSuffix = opts.segMapSuffix ?? '.png';
  const policy = opts.onBadSample ?? 'skip';
  if (policy !== 'skip' && policy !== 'error') throw new Error(`SegDataset: onBadSample must be 'skip' or 'error', got '${String(policy)}'`);
  if (!Array.isArray(opts.classes) || opts.classes.length === 0 || opts.classes.length > 255) {
    throw new Error(`SegDataset: classes must list 1..255 names, got ${Array.isArray(opts.classes) ? opts.classes.length : typeof opts.classes}`);
  }
  if (opts.palette && opts.palette.length !== opts.classes.length) {
    throw new Error(`SegDataset: palette has ${opts.palette.length} colours for ${opts.classes.length} classes`);
  }
  const log = opts.log ?? ((line: string) => console.warn(line));
  const { load, transforms } = resolvePipeline(opts.pipeline);
  const imgs = await listFiles(opts.imgDir, imgSuffix, 'image');
  if (imgs.length === 0) throw new Error(`SegDataset: no '*${imgSuffix}' images in ${opts.imgDir}`);
  const segs = new Set(await listFiles(opts.annDir, segSuffix, 'annotation'));
  const pairs: SegPair[] = imgs.map((rel) => {
    const stem = rel.slice(0, rel.length - imgSuffix.length);
    const segRel = stem + segSuffix;
    return { stem, imgPath: path.join(opts.imgDir, rel), segPath: segs.has(segRel) ? path.join(opts.annDir, segRel) : null };
  });
  const missing = pairs.filter((p) => p.segPath === null).map((p) => p.stem);
  if (missing.length > 0) {
    const list = missing.slice(0, 20).join(', ') + (missing.length > 20 ? `, ... (${missing.length - 20} more)` : '');
    const msg = `${missing.length} of ${pairs.length} images in ${opts.imgDir} have no '${segSuffix}' label in ${opts.annDir}: ${list}`;
    if (missing.length === pairs.length) throw new Error(`SegDataset: ${msg}`);
    if (policy === 'error') throw new Error(`SegDataset: ${msg}`);
    log(`warning: ${msg}; they will be skipped as bad samples`);
  }
  return { opts, pairs, transforms, imageLoad: load.image, log };
}

/** 0 → 255, k → k - 1, 255 → 255 in place (MMSeg's reduce_zero_label). */
export function reduceZeroLabel(seg: Uint8Array): Uint8Array {
  for (let i = 0; i < seg.length; i++) {
    const v = seg[i];
    seg[i] = v === 0 || v === 255 ? 255 : v - 1;
  }
  return seg;
}

/** A sample-level data problem (reported by the bad-sample policy). */
class BadSampleError extends Error {}

export class SegDataset implements SegLabelSource {
  readonly imgDir: string;
  readonly annDir: string;
  readonly classes: readonly string[];
  readonly palette?: readonly [number, number, number][];
  readonly reduceZeroLabel: boolean;
  readonly imgSuffix: string;
  readonly segMapSuffix: string;
  readonly onBadSample: BadSamplePolicy;
  readonly pairs: readonly SegPair[];
  readonly transforms: Transform[];
  private readonly imageLoad: LoadSteps['image'];
  private readonly log: (line: string) => void;
  private readonly bad = new BadSampleLog();

  protected constructor(init: SegInit) {
    const o = init.opts;
    this.imgDir = o.imgDir;
    this.annDir = o.annDir;
    this.classes = o.classes.slice();
    this.palette = o.palette?.slice();
    this.reduceZeroLabel = o.reduceZeroLabel ?? false;
    this.imgSuffix = o.imgSuffix ?? '.jpg';
    this.segMapSuffix = o.segMapSuffix ?? '.png';
    this.onBadSample = o.onBadSample ?? 'skip';
    this.pairs = init.pairs;
    this.transforms = init.transforms;
    this.imageLoad = init.imageLoad;
    this.log = init.log;
  }

  static async create(opts: SegDatasetOptions): Promise<SegDataset> {
    return new SegDataset(await scan(opts));
  }

  /** Scans for a subclass preset. */
  protected static scan(opts: SegDatasetOptions): Promise<SegInit> {
    return scan(opts);
  }

  get length(): number {
    return this.pairs.length;
  }

  get badSamples(): number {
    return this.bad.count;
  }

  get firstBadSample(): string | null {
    return this.bad.first;
  }

  sourceFiles(index: number): string[] {
    const p = this.pairs[index];
    return p.segPath === null ? [p.imgPath] : [p.imgPath, p.segPath];
  }

  badSampleOf(index: number): string | null {
    return this.bad.of(index);
  }

  async getSample(index: number, rng: Rng): Promise<Sample | null> {
    if (!Number.isInteger(index) || index < 0 || index >= this.pairs.length) {
      throw new RangeError(`SegDataset: index ${index} out of range [0, ${this.pairs.length})`);
    }
    const pair = this.pairs[index];
    let s: Sample;
    try {
      s = await this.load(pair);
    } catch (e) {
      const cause = (e as Error).message;
      if (this.onBadSample === 'error') throw new Error(`SegDataset: bad sample ${pair.imgPath}: ${cause}`, { cause: e });
      if (this.bad.add(index, `${pair.imgPath}: ${cause}`)) this.log(`warning: skipping ${pair.imgPath}: ${cause}`);
      return null;
    }
    return runPipeline(this.transforms, s, { rng });
  }

  private async load(pair: SegPair): Promise<Sample> {
    if (pair.segPath === null) throw new BadSampleError(`no label file '${pair.stem}${this.segMapSuffix}' in ${this.annDir}`);
    const s = await loadImage(pair.imgPath, this.imageLoad);
    await loadSegMap(s, pair.segPath);
    const seg = s.gtSegMap!;
    if (this.reduceZeroLabel) reduceZeroLabel(seg);
    const k = this.classes.length;
    for (let i = 0; i < seg.length; i++) {
      const v = seg[i];
      if (v >= k && v !== 255) {
        throw new BadSampleError(`label ${pair.segPath} has value ${v}${this.reduceZeroLabel ? ' (after reduce_zero_label)' : ''}, not a class index < ${k} nor 255`);
      }
    }
    return s;
  }
}

/**
 * ADE20K's 150 classes and palette, verbatim from MMSegmentation's `ADE20KDataset.METAINFO`
 * (`mmseg/datasets/ade.py`; note its 'bed ' with a trailing space).
 */
export const ADE20K_CLASSES: readonly string[] = [
  'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed ', 'windowpane', 'grass', 'cabinet',
  'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair', 'car', 'water',
  'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair', 'seat', 'fence', 'desk',
  'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box', 'column', 'signboard',
  'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand',
  'path', 'stairs', 'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge',
  'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench', 'countertop', 'stove',
  'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar', 'arcade machine', 'hovel', 'bus',
  'towel', 'light', 'truck', 'tower', 'chandelier', 'awning', 'streetlight', 'booth', 'television receiver',
  'airplane', 'dirt track', 'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle',
  'buffet', 'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything',
  'swimming pool', 'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven',
  'ball', 'food', 'step', 'tank', 'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake',
  'dishwasher', 'screen', 'blanket', 'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray',
  'ashcan', 'fan', 'pier', 'crt screen', 'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass',
  'clock', 'flag',
];

export const ADE20K_PALETTE: readonly [number, number, number][] = [
  [120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3], [120, 120, 80],
  [140, 140, 140], [204, 5, 255], [230, 230, 230], [4, 250, 7], [224, 5, 255], [235, 255, 7], [150, 5, 61],
  [120, 120, 70], [8, 255, 51], [255, 6, 82], [143, 255, 140], [204, 255, 4], [255, 51, 7], [204, 70, 3],
  [0, 102, 200], [61, 230, 250], [255, 6, 51], [11, 102, 255], [255, 7, 71], [255, 9, 224], [9, 7, 230],
  [220, 220, 220], [255, 9, 92], [112, 9, 255], [8, 255, 214], [7, 255, 224], [255, 184, 6], [10, 255, 71],
  [255, 41, 10], [7, 255, 255], [224, 255, 8], [102, 8, 255], [255, 61, 6], [255, 194, 7], [255, 122, 8],
  [0, 255, 20], [255, 8, 41], [255, 5, 153], [6, 51, 255], [235, 12, 255], [160, 150, 20], [0, 163, 255],
  [140, 140, 140], [250, 10, 15], [20, 255, 0], [31, 255, 0], [255, 31, 0], [255, 224, 0], [153, 255, 0],
  [0, 0, 255], [255, 71, 0], [0, 235, 255], [0, 173, 255], [31, 0, 255], [11, 200, 200], [255, 82, 0],
  [0, 255, 245], [0, 61, 255], [0, 255, 112], [0, 255, 133], [255, 0, 0], [255, 163, 0], [255, 102, 0],
  [194, 255, 0], [0, 143, 255], [51, 255, 0], [0, 82, 255], [0, 255, 41], [0, 255, 173], [10, 0, 255],
  [173, 255, 0], [0, 255, 153], [255, 92, 0], [255, 0, 255], [255, 0, 245], [255, 0, 102], [255, 173, 0],
  [255, 0, 20], [255, 184, 184], [0, 31, 255], [0, 255, 61], [0, 71, 255], [255, 0, 204], [0, 255, 194],
  [0, 255, 82], [0, 10, 255], [0, 112, 255], [51, 0, 255], [0, 194, 255], [0, 122, 255], [0, 255, 163],
  [255, 153, 0], [0, 255, 10], [255, 112, 0], [143, 255, 0], [82, 0, 255], [163, 255, 0], [255, 235, 0],
  [8, 184, 170], [133, 0, 255], [0, 255, 92], [184, 0, 255], [255, 0, 31], [0, 184, 255], [0, 214, 255],
  [255, 0, 112], [92, 255, 0], [0, 224, 255], [112, 224, 255], [70, 184, 160], [163, 0, 255], [153, 0, 255],
  [71, 255, 0], [255, 0, 163], [255, 204, 0], [255, 0, 143], [0, 255, 235], [133, 255, 0], [255, 0, 235],
  [245, 0, 255], [255, 0, 122], [255, 245, 0], [10, 190, 212], [214, 255, 0], [0, 204, 255], [20, 0, 255],
  [255, 255, 0], [0, 153, 255], [0, 41, 255], [0, 255, 204], [41, 0, 255], [41, 255, 0], [173, 0, 255],
  [0, 245, 255], [71, 0, 255], [122, 0, 255], [0, 255, 184], [0, 92, 255], [184, 255, 0], [0, 133, 255],
  [255, 214, 0], [25, 194, 194], [102, 255, 0], [92, 0, 255],
];

/** ADE20K (MMSeg `ADE20KDataset`): 150 classes, reduce_zero_label, '.jpg' images, '.png' labels. */
export class ADE20KDataset extends SegDataset {
  static override async create(opts: PresetSegDatasetOptions): Promise<ADE20KDataset> {
    return new ADE20KDataset(await SegDataset.scan({
      ...opts, classes: ADE20K_CLASSES, palette: ADE20K_PALETTE, reduceZeroLabel: true, imgSuffix: '.jpg', segMapSuffix: '.png',
    }));
  }
}

/** The synthetic shapes semantic set (`shapes.ts`, ADE20K layout): 6 classes, reduce_zero_label. */
export class ShapesSegDataset extends SegDataset {
  static override async create(opts: PresetSegDatasetOptions): Promise<ShapesSegDataset> {
    return new ShapesSegDataset(await SegDataset.scan({
      ...opts, classes: SHAPES_SEG_CLASSES, palette: SHAPES_SEG_PALETTE, reduceZeroLabel: true, imgSuffix: '.jpg', segMapSuffix: '.png',
    }));
  }
}

export const ADE20K_DATASET_SPEC = typeSpec(PRESET_SEG_DATASET_SCHEMA, (c) => ADE20KDataset.create({
  imgDir: c.img_dir, annDir: c.ann_dir, pipeline: c.pipeline, onBadSample: c.on_bad_sample,
}));

export const SHAPES_SEG_DATASET_SPEC = typeSpec(PRESET_SEG_DATASET_SCHEMA, (c) => ShapesSegDataset.create({
  imgDir: c.img_dir, annDir: c.ann_dir, pipeline: c.pipeline, onBadSample: c.on_bad_sample,
}));
