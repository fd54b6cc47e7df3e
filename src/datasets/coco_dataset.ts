/**
 * COCO instance dataset (MMDetection 2.x `CocoDataset`): contiguous labels, `_filter_imgs`, loading
 * of image + annotations + pipeline per sample, and a bad-sample policy.
 *
 * Semantics:
 * - Labels: category ids sorted ascending map to 0..K-1 (`cat2label`, `label2cat`, `classes`).
 * - Image list (`_filter_imgs`, skipped in `testMode`): with `filterEmptyGt`, images with at least one
 *   annotation of a known category (crowd ones count, as in MMDet 2.x); and `min(w, h) >= minSize`.
 *   Nothing left → an error naming the annotation file.
 * - Annotations of unknown category ids are ignored (as MMDet does), with one warning at construction.
 * - `getSample`: `loadImage(imgDir/file_name)` → `loadAnnotations` (polygons kept as polygons, RLE as
 *   bitmaps; crowd boxes in `gtBboxesIgnore`) → pipeline. In `testMode` no annotations are loaded.
 * - A bad sample: missing/corrupt image, decoded size differing from the image record, a polygon with
 *   fewer than 3 points (or an odd number of coordinates) in a kept annotation, or (with
 *   `filterEmptyGt`, not in `testMode`) no valid box left after loadAnnotations' filter (boxes
 *   outside the image, of zero size, ...). Policy `skip`: one warning line
 *   `warning: skipping <file>: <cause>` per sample, counted in `badSamples` (once per index), null.
 *   Policy `error`: throws an error naming the file.
 */
import path from 'node:path';
import { COCO } from '../coco/coco.ts';
import type { CocoAnnotation, CocoImage } from '../coco/types.ts';
import type { Rng } from '../nn/random.ts';
import { BadSampleLog, type BadSamplePolicy, type Dataset } from './dataset.ts';
import { loadAnnotations, loadImage } from './transforms/load.ts';
import { bool, num, obj, optional, str } from '../config/schema.ts';
import { typeSpec } from '../config/lookup.ts';
import { PIPELINE_SCHEMA, resolvePipeline, runPipeline, type LoadSteps, type PipelineOption } from './transforms/pipeline.ts';
import type { Sample, Transform } from './transforms/types.ts';

export interface CocoDatasetOptions {
  annFile: string;
  imgDir: string;
  /** Entries `{type, ...}` (loading steps first), or a built pipeline. */
  pipeline: PipelineOption;
  /** Drop images without annotations of known categories, and treat samples left without boxes as bad (default true). */
  filterEmptyGt?: boolean;
  /** Drop images with `min(width, height) < minSize` (default 32). */
  minSize?: number;
  onBadSample?: BadSamplePolicy;
  /** No image filtering and no annotation loading (default false). */
  testMode?: boolean;
  /** Receives warning lines (default console.warn). */
  log?: (line: string) => void;
}

/** `{type: CocoDataset, ...}` in a config (MMDet's keys). */
export const COCO_DATASET_SCHEMA = obj({
  ann_file: str(),
  img_dir: str(),
  pipeline: PIPELINE_SCHEMA,
  filter_empty_gt: optional(bool()),
  min_size: optional(num({ min: 0 })),
  test_mode: optional(bool()),
  on_bad_sample: optional(str({ enum: ['skip', 'error'] as const })),
});

export const COCO_DATASET_SPEC = typeSpec(COCO_DATASET_SCHEMA, (c) => CocoDataset.create({
  annFile: c.ann_file, imgDir: c.img_dir, pipeline: c.pipeline, filterEmptyGt: c.filter_empty_gt, minSize: c.min_size,
  testMode: c.test_mode, onBadSample: c.on_bad_sample,
}));

/** A sample-level data problem (reported by the bad-sample policy). */
class BadSampleError extends Error {}

export class CocoDataset implements Dataset {
  readonly coco: COCO;
  readonly annFile: string;
  readonly imgDir: string;
  /** Category ids sorted ascending; index = label. */
  readonly catIds: number[];
  readonly cat2label: Map<number, number>;
  readonly label2cat: number[];
  /** Category names per label. */
  readonly classes: string[];
  /** Image records of the samples, in file order after filtering. */
  readonly images: CocoImage[];
  readonly transforms: Transform[];
  readonly filterEmptyGt: boolean;
  readonly testMode: boolean;
  readonly onBadSample: BadSamplePolicy;
  private readonly log: (line: string) => void;
  private readonly bad = new BadSampleLog();

  private constructor(coco: COCO, opts: CocoDatasetOptions, images: CocoImage[], catIds: number[], transforms: Transform[], log: (line: string) => void, private readonly loadSteps: LoadSteps) {
    this.coco = coco;
    this.annFile = opts.annFile;
    this.imgDir = opts.imgDir;
    this.catIds = catIds;
    this.cat2label = new Map(catIds.map((id, i) => [id, i]));
    this.label2cat = catIds.slice();
    this.classes = catIds.map((id) => coco.cats.get(id)!.name);
    this.images = images;
    this.transforms = transforms;
    this.filterEmptyGt = opts.filterEmptyGt ?? true;
    this.testMode = opts.testMode ?? false;
    this.onBadSample = opts.onBadSample ?? 'skip';
    this.log = log;
  }

  static async create(opts: CocoDatasetOptions): Promise<CocoDataset> {
    const { annFile } = opts;
    const filterEmptyGt = opts.filterEmptyGt ?? true;
    const minSize = opts.minSize ?? 32;
    const testMode = opts.testMode ?? false;
    const policy = opts.onBadSample ?? 'skip';
    if (policy !== 'skip' && policy !== 'error') throw new Error(`CocoDataset: onBadSample must be 'skip' or 'error', got '${String(policy)}'`);
    const log = opts.log ?? ((line: string) => console.warn(line));
    const { load: loadSteps, transforms } = resolvePipeline(opts.pipeline);
    const coco = await COCO.fromFile(annFile);
    const catIds = coco.getCatIds().slice().sort((a, b) => a - b);
    if (catIds.length === 0) throw new Error(`CocoDataset: ${annFile} has no categories`);
    const known = new Set(catIds);

    const unknown = new Map<number, number>();
    for (const a of coco.dataset.annotations) {
      if (!known.has(a.category_id)) unknown.set(a.category_id, (unknown.get(a.category_id) ?? 0) + 1);
    }
    if (unknown.size > 0) {
      const n = [...unknown.values()].reduce((x, y) => x + y, 0);
      log(`warning: ${annFile}: ${n} annotation(s) refer to category ids not in 'categories' (${[...unknown.keys()].join(', ')}); they are ignored`);
    }

    let images = coco.getImgIds().map((id) => coco.imgs.get(id)!);
    if (images.length === 0) throw new Error(`CocoDataset: ${annFile} has no images`);
    if (!testMode) {
      const idsInCat = new Set<number>();
      for (const a of coco.dataset.annotations) if (known.has(a.category_id)) idsInCat.add(a.image_id);
      const before = images.length;
      images = images.filter((img) => (!filterEmptyGt || idsInCat.has(img.id)) && Math.min(img.width, img.height) >= minSize);
      if (images.length === 0) {
        const all = [...coco.imgs.values()];
        const noAnn = filterEmptyGt ? all.filter((i) => !idsInCat.has(i.id)).length : 0;
        const tooSmall = all.filter((i) => Math.min(i.width, i.height) < minSize).length;
        const why = `${noAnn} without annotations of known categories (${coco.dataset.annotations.length} annotations in the file), ${tooSmall} with min(width, height) < minSize ${minSize}`;
        throw new Error(`CocoDataset: no valid images left in ${annFile} after filtering ${before} images (${why})`);
      }
    }
    return new CocoDataset(coco, opts, images, catIds, transforms, log, loadSteps);
  }

  get length(): number {
    return this.images.length;
  }

  get badSamples(): number {
    return this.bad.count;
  }

  get firstBadSample(): string | null {
    return this.bad.first;
  }

  sourceFiles(index: number): string[] {
    return [this.imagePath(index)];
  }

  badSampleOf(index: number): string | null {
    return this.bad.of(index);
  }

  /** Path of the image file of sample `index`. */
  imagePath(index: number): string {
    const img = this.images[index];
    return path.join(this.imgDir, img.file_name ?? `${img.id}`);
  }

  aspectGroup(index: number): 0 | 1 {
    const img = this.images[index];
    return img.width >= img.height ? 0 : 1;
  }

  async getSample(index: number, rng: Rng): Promise<Sample | null> {
    if (!Number.isInteger(index) || index < 0 || index >= this.images.length) {
      throw new RangeError(`CocoDataset: index ${index} out of range [0, ${this.images.length})`);
    }
    const file = this.imagePath(index);
    let s: Sample;
    try {
      s = await this.load(index, file);
    } catch (e) {
      const cause = (e as Error).message;
      if (this.onBadSample === 'error') throw new Error(`CocoDataset: bad sample ${file} (image id ${this.images[index].id}): ${cause}`, { cause: e });
      if (this.bad.add(index, `${file}: ${cause}`)) this.log(`warning: skipping ${file}: ${cause}`);
      return null;
    }
    return runPipeline(this.transforms, s, { rng });
  }

  private async load(index: number, file: string): Promise<Sample> {
    const rec = this.images[index];
    const s = await loadImage(file, { imageId: rec.id, ...this.loadSteps.image });
    if (s.img.width !== rec.width || s.img.height !== rec.height) {
      throw new BadSampleError(`image is ${s.img.height}x${s.img.width} (h x w), the annotation file says ${rec.height}x${rec.width}`);
    }
    if (this.testMode) return s;
    const anns = (this.coco.imgToAnns.get(rec.id) ?? []).filter((a) => this.cat2label.has(a.category_id));
    const problem = polygonProblem(anns);
    if (problem) throw new BadSampleError(problem);
    // Polygons stay polygons (rasterised lazily) unless the pipeline's LoadAnnotations asks for poly2mask.
    loadAnnotations(s, anns, { cat2label: this.cat2label, withMask: true, poly2mask: false, ...this.loadSteps.annotations });
    if (this.filterEmptyGt && s.gtBboxes!.length === 0) {
      throw new BadSampleError(`no valid box left (${anns.length} annotation(s) of known categories: crowd, outside the image, of zero size or zero area)`);
    }
    return s;
  }
}

/** The first degenerate polygon among the non-crowd, non-ignored annotations, as a message. */
function polygonProblem(anns: CocoAnnotation[]): string | null {
  for (const a of anns) {
    if (a.ignore || a.iscrowd || !Array.isArray(a.segmentation)) continue;
    for (const p of a.segmentation) {
      if (p.length < 6) return `annotation id ${a.id} has a polygon with ${Math.floor(p.length / 2)} point(s) (at least 3 needed)`;
      if (p.length % 2 !== 0) return `annotation id ${a.id} has a polygon with an odd number (${p.length}) of coordinates`;
    }
  }
  return null;
}
