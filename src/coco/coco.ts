/**
 * COCO: the index over a COCO dataset (pycocotools' `COCO`), with the same filter semantics and
 * ordering, plus validation with readable errors. Results are loaded with {@link COCO.loadRes}.
 */
import { decode, segmentationToRle, toRle } from './mask.ts';
import { rleFromPoly, rleMerge, rleToBbox, type Rle } from './rle.ts';
import { CocoFormatError, messageOf, readJsonFile, readJsonFileSync, validateDataset, withFile } from './coco_validate.ts';
import { buildResultDataset } from './coco_results.ts';
import { formatValue } from '../util/format_value.ts';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage, CocoResult, CompressedRLE } from './types.ts';

export { CocoFormatError } from './coco_validate.ts';

/** Filters of {@link COCO.getAnnIds}; an empty or absent filter is skipped (as in pycocotools). */
export interface AnnIdFilter {
  imgIds?: number | number[];
  catIds?: number | number[];
  /** `[lo, hi]`: keeps annotations with `lo < area < hi` (strict, as pycocotools). */
  areaRng?: number[];
  /** Keeps annotations whose `iscrowd` equals this (true == 1). `null`/absent: no filter. */
  iscrowd?: boolean | number | null;
}

export interface CatIdFilter {
  catNms?: string | string[];
  supNms?: string | string[];
  catIds?: number | number[];
}

export interface ImgIdFilter {
  imgIds?: number | number[];
  /** Images that contain ALL of these categories. */
  catIds?: number | number[];
}

export interface CocoOptions {
  /** Validate the dataset (default true; `loadRes` skips it for results it already checked). */
  validate?: boolean;
  /** The file the dataset was read from: every error about the dataset and its masks names it. */
  file?: string;
}

/** Options of {@link COCO.loadRes}. */
export interface LoadResOptions {
  /** Receives warning lines (default `console.warn`), e.g. about results of unknown categories. */
  log?: (line: string) => void;
}

const asList = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export class COCO {
  readonly dataset: CocoDataset;
  readonly imgs = new Map<number, CocoImage>();
  readonly anns = new Map<number, CocoAnnotation>();
  readonly cats = new Map<number, CocoCategory>();
  /** Image id -> its annotations in file order (images without annotations are absent). */
  readonly imgToAnns = new Map<number, CocoAnnotation[]>();
  /** Category id -> image id of each of its annotations, in file order (with repeats). */
  readonly catToImgs = new Map<number, number[]>();
  /** The file the dataset was read from (named in errors), if any. */
  readonly file: string | undefined;
  /** Run-length masks computed once per annotation object (see {@link COCO.annToRleRuns}). */
  private readonly rleCache = new WeakMap<object, Rle>();

  /**
   * Reads a COCO JSON file; a missing, truncated, malformed or too deeply nested file, or one
   * without a `categories` list, gives an error naming it (as do later errors about its masks).
   */
  static async fromFile(file: string): Promise<COCO> {
    const data = await readJsonFile(file);
    return new COCO(data as object, { file });
  }

  constructor(dataset?: CocoDataset | object, options: CocoOptions = {}) {
    this.file = options.file;
    try {
      if (dataset === undefined) {
        this.dataset = { images: [], annotations: [], categories: [] };
      } else if (options.validate === false) {
        const d = dataset as CocoDataset;
        this.dataset = Object.assign({}, d, { images: d.images ?? [], annotations: d.annotations ?? [], categories: d.categories ?? [] });
      } else {
        this.dataset = validateDataset(dataset);
      }
      this.createIndex();
    } catch (e) {
      throw this.named(e);
    }
  }

  /** `e` as an error naming {@link COCO.file} (when there is one and the message does not yet). */
  private named(e: unknown): unknown {
    return this.file === undefined ? e : withFile(e, this.file);
  }

  private createIndex(): void {
    for (const img of this.dataset.images) this.imgs.set(img.id, img);
    for (const cat of this.dataset.categories) this.cats.set(cat.id, cat);
    for (const ann of this.dataset.annotations) {
      let list = this.imgToAnns.get(ann.image_id);
      if (!list) this.imgToAnns.set(ann.image_id, (list = []));
      list.push(ann);
      this.anns.set(ann.id, ann);
      let imgs = this.catToImgs.get(ann.category_id);
      if (!imgs) this.catToImgs.set(ann.category_id, (imgs = []));
      imgs.push(ann.image_id);
    }
    // A box-less annotation (segmentation only) gets the box of its mask, as COCO files have.
    this.dataset.annotations.forEach((ann, i) => {
      if (ann.bbox === undefined) {
        const r = this.annToRleRuns(ann);
        const copy = Object.assign({}, ann, { bbox: rleToBbox(r) });
        this.dataset.annotations[i] = copy;
        this.anns.set(ann.id, copy);
        const list = this.imgToAnns.get(ann.image_id)!;
        list[list.indexOf(ann)] = copy;
        this.rleCache.set(copy, r);
      }
    });
  }

  /** Annotation ids passing all given filters, in pycocotools' order (by `imgIds`, then file order). */
  getAnnIds(filter: AnnIdFilter = {}): number[] {
    const imgIds = asList(filter.imgIds);
    const catIds = asList(filter.catIds);
    const areaRng = filter.areaRng ?? [];
    let anns: CocoAnnotation[];
    if (imgIds.length === 0 && catIds.length === 0 && areaRng.length === 0) {
      anns = this.dataset.annotations;
    } else {
      if (imgIds.length > 0) {
        anns = [];
        for (const id of imgIds) {
          const list = this.imgToAnns.get(id);
          if (list) for (const a of list) anns.push(a);
        }
      } else {
        anns = this.dataset.annotations;
      }
      if (catIds.length > 0) {
        const set = new Set(catIds);
        anns = anns.filter((a) => set.has(a.category_id));
      }
      if (areaRng.length > 0) anns = anns.filter((a) => a.area > areaRng[0] && a.area < areaRng[1]);
    }
    const crowd = filter.iscrowd;
    if (crowd !== undefined && crowd !== null) {
      const want = Number(crowd);
      anns = anns.filter((a) => Number(a.iscrowd) === want);
    }
    return anns.map((a) => a.id);
  }

  /** Category ids passing all given filters, in the file's category order. */
  getCatIds(filter: CatIdFilter = {}): number[] {
    const catNms = asList(filter.catNms);
    const supNms = asList(filter.supNms);
    const catIds = asList(filter.catIds);
    let cats = this.dataset.categories;
    if (catNms.length > 0) cats = cats.filter((c) => catNms.includes(c.name));
    if (supNms.length > 0) cats = cats.filter((c) => supNms.includes(c.supercategory as string));
    if (catIds.length > 0) cats = cats.filter((c) => catIds.includes(c.id));
    return cats.map((c) => c.id);
  }

  /**
   * Image ids: all (file order) without filters; otherwise `imgIds` intersected with the images
   * containing every one of `catIds`. pycocotools returns a Python set there (hash order); this
   * returns that set sorted ascending.
   */
  getImgIds(filter: ImgIdFilter = {}): number[] {
    const imgIds = asList(filter.imgIds);
    const catIds = asList(filter.catIds);
    if (imgIds.length === 0 && catIds.length === 0) return [...this.imgs.keys()];
    let ids = new Set(imgIds);
    catIds.forEach((catId, i) => {
      const withCat = new Set(this.catToImgs.get(catId) ?? []);
      ids = i === 0 && ids.size === 0 ? withCat : new Set([...ids].filter((id) => withCat.has(id)));
    });
    return [...ids].sort((a, b) => a - b);
  }

  loadAnns(ids: number | number[]): CocoAnnotation[] {
    return asList(ids).map((id) => lookup(this.anns, id, 'annotation'));
  }

  loadCats(ids: number | number[]): CocoCategory[] {
    return asList(ids).map((id) => lookup(this.cats, id, 'category'));
  }

  loadImgs(ids: number | number[]): CocoImage[] {
    return asList(ids).map((id) => lookup(this.imgs, id, 'image'));
  }

  /** The annotation's segmentation as compressed RLE (polygons merged), like pycocotools' annToRLE. */
  annToRLE(ann: CocoAnnotation): CompressedRLE {
    return this.withAnnContext(ann, () => {
      const { seg, img } = this.segmentationOf(ann);
      return segmentationToRle(seg, img.height, img.width);
    });
  }

  /**
   * Binary mask of the annotation, row-major `height * width` bytes of 0/1. A mask of more than
   * 2^31 pixels is refused with an error (see {@link decode}).
   */
  annToMask(ann: CocoAnnotation): Uint8Array {
    const rle = this.annToRLE(ann);
    return this.withAnnContext(ann, () => decode(rle));
  }

  /** The annotation's mask as runs ({@link Rle}), computed once per annotation object and cached. */
  annToRleRuns(ann: CocoAnnotation): Rle {
    const hit = this.rleCache.get(ann);
    if (hit) return hit;
    const r = this.withAnnContext(ann, () => {
      const { seg, img } = this.segmentationOf(ann);
      if (!Array.isArray(seg)) return toRle(seg);
      // Plain polygons: rasterize and merge as runs (what segmentationToRle does, without the
      // string round trip); anything unusual goes through segmentationToRle and its errors.
      if (simplePolygons(seg, img.height, img.width)) {
        const runs = seg.map((poly) => rleFromPoly(poly, img.height, img.width));
        return runs.length === 1 ? runs[0] : rleMerge(runs, false);
      }
      return toRle(segmentationToRle(seg, img.height, img.width));
    });
    this.rleCache.set(ann, r);
    return r;
  }

  /**
   * Loads detection results (an array, or the path of a JSON file holding one) against this
   * ground truth, with pycocotools' semantics: the images are shared, categories copied; box
   * results get `area = w*h`, a box polygon as segmentation when they have none, `iscrowd = 0`;
   * segmentation results get the mask's area and (when absent) box; ids are 1..N. The kind is
   * decided by the first result, as pycocotools does. An empty list gives an empty result set.
   *
   * Results whose `category_id` is not one of the ground truth's categories are kept (as in
   * pycocotools) but never scored by COCOeval; unlike pycocotools, one warning line with their
   * count goes to `options.log` (as MMDetection's evaluator warns). Errors about a file name it.
   */
  loadRes(results: CocoResult[] | string, options: LoadResOptions = {}): COCO {
    const file = typeof results === 'string' ? results : undefined;
    try {
      const data = file === undefined ? results : readJsonFileSync(file);
      const { dataset, rles, unknownCategories } = buildResultDataset(this, data);
      if (unknownCategories.count > 0) {
        const log = options.log ?? ((line: string) => console.warn(line));
        log(
          `warning: ${file === undefined ? '' : `${file}: `}${unknownCategories.count} of ${dataset.annotations.length} results have ` +
            `category ids not in the ground truth (first: ${unknownCategories.first}); they are not scored`,
        );
      }
      const res = new COCO(dataset, { validate: false, file });
      rles.forEach((r, i) => {
        if (r) res.rleCache.set(res.dataset.annotations[i], r);
      });
      return res;
    } catch (e) {
      throw file === undefined ? e : withFile(e, file);
    }
  }

  private segmentationOf(ann: CocoAnnotation): { seg: NonNullable<CocoAnnotation['segmentation']>; img: CocoImage } {
    if (ann.segmentation === undefined) throw new CocoFormatError(`annotation id ${ann.id}: has no 'segmentation'`);
    const img = this.imgs.get(ann.image_id);
    if (!img) throw new CocoFormatError(`annotation id ${ann.id}: image ${ann.image_id} is not in the dataset's images`);
    const size = Array.isArray(ann.segmentation) ? undefined : (ann.segmentation as { size?: unknown }).size;
    if (Array.isArray(size) && (size[0] !== img.height || size[1] !== img.width)) {
      // pycocotools evaluates such a mask anyway: IoUs of misaligned pixels, or an endless loop.
      throw new CocoFormatError(`annotation id ${ann.id} (image ${ann.image_id}): RLE size ${formatValue(size)} is not the image's [${img.height}, ${img.width}] ([height, width])`);
    }
    return { seg: ann.segmentation, img };
  }

  /** Runs `fn`; its errors name the annotation (and the file, when known). */
  private withAnnContext<T>(ann: CocoAnnotation, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof CocoFormatError) throw this.named(e);
      throw this.named(new CocoFormatError(`annotation id ${ann.id} (image ${ann.image_id}): invalid 'segmentation': ${messageOf(e)}`, { cause: e }));
    }
  }
}

/** Polygons that mask.ts' checks accept (>= 3 points, even count, finite and < 2^31 / 5), on a valid image size. */
function simplePolygons(seg: number[][], h: number, w: number): boolean {
  if (seg.length === 0 || !Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0 || h * w > 0xffffffff) return false;
  for (const poly of seg) {
    if (!Array.isArray(poly) || poly.length < 6 || poly.length % 2 !== 0) return false;
    for (let i = 0; i < poly.length; i++) {
      const v = poly[i];
      if (typeof v !== 'number' || !(Math.abs(v) < 429496729)) return false;
    }
  }
  return true;
}

function lookup<T>(map: Map<number, T>, id: number, what: string): T {
  const v = map.get(id);
  if (v === undefined) throw new CocoFormatError(`unknown ${what} id ${id}`);
  return v;
}
