/**
 * Synthetic shapes datasets for detection/instance segmentation (COCO layout) and semantic
 * segmentation (ADE20K layout), deterministic by seed: same options → byte-identical JSON, PNGs
 * and JPEGs. Drawing and the annotation conventions are documented in `shapes_draw.ts`.
 *
 *   OUT/coco/images/{train,val}/000001.jpg ...        OUT/coco/annotations/instances_{train,val}.json
 *   OUT/ade/images/{training,validation}/000001.jpg   OUT/ade/annotations/{training,validation}/000001.png
 *
 * Semantic labels: 0 = ignore (border band, clutter blobs), 1 = ground, 2..6 = circle, square,
 * triangle, star, ring. With `reduce_zero_label` the model sees {@link SHAPES_SEG_CLASSES} (0..5).
 */
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from '../coco/types.ts';
import { writeFileAtomic } from '../io/atomic_write.ts';
import { Rng } from '../nn/random.ts';
import { SHAPE_NAMES, drawInstanceImage, drawSemanticImage } from './shapes_draw.ts';

export { SHAPE_NAMES, drawBackground, drawInstanceImage, drawSemanticImage, shapePolygons } from './shapes_draw.ts';
export type { InstanceImage, RGB, SemanticImage, ShapeAnnotation } from './shapes_draw.ts';

/** COCO categories: ids 1..5, supercategory 'shape'. */
export const SHAPES_CATEGORIES: CocoCategory[] = SHAPE_NAMES.map((name, i) => ({ id: i + 1, name, supercategory: 'shape' }));

/** Semantic classes after `reduce_zero_label` (file label k ↦ class k - 1; 0 ↦ ignore). */
export const SHAPES_SEG_CLASSES = ['background', 'circle', 'square', 'triangle', 'star', 'ring'] as const;

/** One RGB colour per entry of {@link SHAPES_SEG_CLASSES}, for visualisation. */
export const SHAPES_SEG_PALETTE: [number, number, number][] = [
  [120, 120, 120], [220, 20, 60], [0, 130, 200], [255, 200, 0], [60, 180, 75], [145, 30, 180],
];

export type ShapesTask = 'instances' | 'semantic';

export interface ShapesOptions {
  out: string;
  seed?: number;
  train?: number;
  val?: number;
  minSize?: number;
  maxSize?: number;
  what?: ShapesTask[];
  /** Receives one summary line per split (default: console.log). */
  log?: (line: string) => void;
}

export interface ShapesResult {
  /** Annotation JSON paths. */
  instances?: { train: string; val: string };
  /** Image and annotation folders per split. */
  semantic?: { train: { images: string; annotations: string }; val: { images: string; annotations: string } };
}

const name6 = (i: number): string => String(i + 1).padStart(6, '0');

function checkOptions(o: Required<Omit<ShapesOptions, 'log'>>): void {
  for (const k of ['train', 'val'] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`shapes: --${k} must be a non-negative integer, got ${o[k]}`);
  }
  if (!Number.isInteger(o.seed)) throw new Error(`shapes: --seed must be an integer, got ${o.seed}`);
  if (!Number.isInteger(o.minSize) || !Number.isInteger(o.maxSize) || o.minSize < 32 || o.maxSize < o.minSize || o.maxSize > 4096) {
    throw new Error(`shapes: sizes must be integers with 32 <= --min-size <= --max-size <= 4096, got ${o.minSize}, ${o.maxSize}`);
  }
  for (const t of o.what) if (t !== 'instances' && t !== 'semantic') throw new Error(`shapes: --what must list instances and/or semantic, got '${t}'`);
  if (o.what.length === 0) throw new Error('shapes: --what lists nothing to make');
}

/** Independent generator per (seed, task, split), so each split is reproducible on its own. */
const splitRng = (seed: number, task: number, split: number): Rng => new Rng(((seed * 4 + task * 2 + split) * 2654435761) >>> 0);

const imageSize = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng.uniform() * (hi - lo + 1));

async function makeInstanceSplit(o: Required<Omit<ShapesOptions, 'log'>>, split: 'train' | 'val', n: number, log: (s: string) => void): Promise<string> {
  const root = path.join(o.out, 'coco');
  const imgDir = path.join(root, 'images', split);
  await mkdir(imgDir, { recursive: true });
  await mkdir(path.join(root, 'annotations'), { recursive: true });
  const rng = splitRng(o.seed, 0, split === 'train' ? 0 : 1);
  const images: CocoImage[] = [];
  const annotations: CocoAnnotation[] = [];
  const mix = { small: 0, medium: 0, large: 0 };
  let crowd = 0;
  for (let i = 0; i < n; i++) {
    const w = imageSize(rng, o.minSize, o.maxSize), h = imageSize(rng, o.minSize, o.maxSize);
    const img = drawInstanceImage(rng, w, h);
    const file = `${name6(i)}.jpg`;
    await sharp(img.pixels, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(path.join(imgDir, file));
    images.push({ id: i + 1, file_name: file, width: w, height: h });
    for (const a of img.annotations) {
      annotations.push({ id: annotations.length + 1, image_id: i + 1, category_id: a.category_id, segmentation: a.segmentation, area: a.area, bbox: a.bbox, iscrowd: a.iscrowd });
      if (a.iscrowd) crowd++;
      else mix[a.area < 32 ** 2 ? 'small' : a.area > 96 ** 2 ? 'large' : 'medium']++;
    }
  }
  const ds: CocoDataset = {
    info: { description: 'synthetic shapes (tools/make_shapes.ts)', seed: o.seed, split },
    licenses: [],
    images,
    annotations,
    categories: SHAPES_CATEGORIES,
  };
  const file = path.join(root, 'annotations', `instances_${split}.json`);
  await writeFileAtomic(file, JSON.stringify(ds) + '\n');
  log(`instances ${split}: ${n} images, ${annotations.length - crowd} instances (small ${mix.small}, medium ${mix.medium}, large ${mix.large}), ${crowd} crowd regions -> ${file}`);
  return file;
}

async function makeSemanticSplit(o: Required<Omit<ShapesOptions, 'log'>>, split: 'training' | 'validation', n: number, log: (s: string) => void): Promise<{ images: string; annotations: string }> {
  const images = path.join(o.out, 'ade', 'images', split);
  const annotations = path.join(o.out, 'ade', 'annotations', split);
  await mkdir(images, { recursive: true });
  await mkdir(annotations, { recursive: true });
  const rng = splitRng(o.seed, 1, split === 'training' ? 0 : 1);
  const counts = new Array<number>(7).fill(0);
  for (let i = 0; i < n; i++) {
    const w = imageSize(rng, o.minSize, o.maxSize), h = imageSize(rng, o.minSize, o.maxSize);
    const img = drawSemanticImage(rng, w, h);
    for (const v of img.label) counts[v]++;
    await sharp(img.pixels, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 90 }).toFile(path.join(images, `${name6(i)}.jpg`));
    await sharp(img.label, { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toFile(path.join(annotations, `${name6(i)}.png`));
  }
  const total = counts.reduce((a, b) => a + b, 0) || 1;
  const pct = (v: number): string => `${((100 * v) / total).toFixed(1)}%`;
  const shapes = SHAPE_NAMES.map((s, k) => `${s} ${pct(counts[k + 2])}`).join(', ');
  log(`semantic ${split}: ${n} images, pixels: ignore ${pct(counts[0])}, ground ${pct(counts[1])}, ${shapes} -> ${annotations}`);
  return { images, annotations };
}

/**
 * Version of the drawing code: bumped whenever the same seed would draw different images, so a
 * folder made by an older generator can be told apart (see {@link readShapesStamp}).
 */
export const SHAPES_GENERATOR_VERSION = 3;

/** What `<out>/shapes.json` records about a generated folder. */
export interface ShapesStamp {
  generator_version: number;
  seed: number;
  train: number;
  val: number;
  min_size: number;
  max_size: number;
  what: ShapesTask[];
}

/** The stamp `generateShapes` wrote in `out`, or null when there is none (or it is unreadable). */
export function readShapesStamp(out: string): ShapesStamp | null {
  try {
    return JSON.parse(readFileSync(path.join(out, 'shapes.json'), 'utf8')) as ShapesStamp;
  } catch {
    return null;
  }
}

/** Writes the requested datasets under `opts.out` (see the file comment) and returns their paths. */
export async function generateShapes(opts: ShapesOptions): Promise<ShapesResult> {
  const o = {
    out: opts.out, seed: opts.seed ?? 0, train: opts.train ?? 200, val: opts.val ?? 50,
    minSize: opts.minSize ?? 160, maxSize: opts.maxSize ?? 320, what: opts.what ?? ['instances', 'semantic'],
  };
  checkOptions(o);
  const log = opts.log ?? ((s: string) => console.log(s));
  const result: ShapesResult = {};
  if (o.what.includes('instances')) {
    result.instances = { train: await makeInstanceSplit(o, 'train', o.train, log), val: await makeInstanceSplit(o, 'val', o.val, log) };
  }
  if (o.what.includes('semantic')) {
    result.semantic = { train: await makeSemanticSplit(o, 'training', o.train, log), val: await makeSemanticSplit(o, 'validation', o.val, log) };
  }
  // Written last, so a stamp means every file it describes is complete.
  const stamp: ShapesStamp = {
    generator_version: SHAPES_GENERATOR_VERSION, seed: o.seed, train: o.train, val: o.val, min_size: o.minSize, max_size: o.maxSize, what: o.what,
  };
  await writeFileAtomic(path.join(o.out, 'shapes.json'), JSON.stringify(stamp, null, 2) + '\n');
  return result;
}
