/**
 * The body of `COCO.loadRes`: checks detection results and turns them into a result dataset with
 * pycocotools' semantics. Results are copied, never modified.
 */
import { segmentationToRle, toRle } from './mask.ts';
import { rleArea, rleToBbox, type Rle } from './rle.ts';
import {
  BOX_EXPECTED,
  CocoFormatError,
  checkResultCommon,
  isValidBox,
  resultFieldError,
  segmentationProblem,
  unknownImagesError,
} from './coco_validate.ts';
import type { CocoAnnotation, CocoCategory, CocoDataset, CocoImage, Polygons } from './types.ts';

/** What `buildResultDataset` needs of the ground truth. */
export interface ResultBase {
  readonly dataset: CocoDataset;
  readonly imgs: Map<number, CocoImage>;
  readonly cats: Map<number, CocoCategory>;
}

export interface ResultDataset {
  dataset: CocoDataset;
  /** The mask of each segmentation result (segm results only), to seed the result COCO's cache. */
  rles: (Rle | undefined)[];
  /** Results whose `category_id` is not a ground-truth category (COCOeval never scores them). */
  unknownCategories: { count: number; first: number | undefined };
}

type Obj = Record<string, unknown>;

/**
 * A result annotation with a fixed field order, then the result's other fields. (An object spread
 * here makes objects whose fields V8 reads ~20x slower, which COCOeval would pay for.)
 */
function resultAnnotation(r: Obj, bbox: unknown, segmentation: unknown, area: number, id: number): CocoAnnotation {
  const o: Obj = { image_id: r.image_id, category_id: r.category_id, bbox, score: r.score, segmentation, area, id, iscrowd: 0 };
  for (const k in r) if (!(k in o)) o[k] = r[k];
  return o as CocoAnnotation;
}

/**
 * Checks `data` (parsed results) against the ground truth `gt` and builds the result dataset.
 * @throws CocoFormatError naming the result index and field, or listing unknown image ids.
 */
export function buildResultDataset(gt: ResultBase, data: unknown): ResultDataset {
  if (!Array.isArray(data)) throw new CocoFormatError(`loadRes: results must be an array of objects, got ${typeof data}`);
  const unknown: number[] = [];
  const unknownCategories: ResultDataset['unknownCategories'] = { count: 0, first: undefined };
  const results = data.map((r, i) => {
    const o = checkResultCommon(r, i);
    if (!gt.imgs.has(o.image_id as number)) unknown.push(o.image_id as number);
    if (!gt.cats.has(o.category_id as number)) {
      unknownCategories.count++;
      unknownCategories.first ??= o.category_id as number;
    }
    return o;
  });
  if (unknown.length > 0) throw unknownImagesError(unknown, results.length);
  const dataset: CocoDataset = {
    info: structuredClone(gt.dataset.info ?? {}),
    images: [...gt.dataset.images],
    annotations: [],
    categories: structuredClone(gt.dataset.categories),
  };
  const rles: (Rle | undefined)[] = [];
  if (results.length === 0) return { dataset, rles, unknownCategories };
  const first = results[0];
  let convert: (r: Obj, i: number) => CocoAnnotation;
  if (first.bbox !== undefined && !(Array.isArray(first.bbox) && first.bbox.length === 0)) {
    convert = boxResult;
  } else if (first.segmentation !== undefined) {
    convert = (r, i) => {
      const { ann, rle } = segmResult(gt, r, i);
      rles[i] = rle;
      return ann;
    };
  } else if (first.keypoints !== undefined) {
    convert = keypointResult;
  } else {
    throw new CocoFormatError(`loadRes: results[0] has neither a 'bbox', a 'segmentation' nor 'keypoints'; cannot tell the result type`);
  }
  dataset.annotations = results.map((r, i) => convert(r, i));
  return { dataset, rles, unknownCategories };
}

function boxResult(r: Obj, i: number): CocoAnnotation {
  if (!isValidBox(r.bbox)) throw resultFieldError(i, r, 'bbox', BOX_EXPECTED);
  const [x, y, w, h] = r.bbox;
  const x2 = x + w;
  const y2 = y + h;
  if (r.segmentation !== undefined) checkSegmentation(r, i);
  const segmentation = r.segmentation ?? [[x, y, x, y2, x2, y2, x2, y]];
  return resultAnnotation(r, r.bbox, segmentation, w * h, i + 1);
}

function checkSegmentation(r: Obj, i: number): void {
  const p = segmentationProblem(r.segmentation);
  if (p) throw new CocoFormatError(`loadRes: results[${i}] (image_id ${r.image_id}): field 'segmentation' ${p}`);
}

function segmResult(gt: ResultBase, r: Obj, i: number): { ann: CocoAnnotation; rle: Rle } {
  if (r.segmentation === undefined) throw resultFieldError(i, r, 'segmentation', 'an RLE {size, counts} or polygons (the first result has one)');
  checkSegmentation(r, i);
  const seg = r.segmentation as Polygons | { size: [number, number]; counts: string | number[] };
  const img = gt.imgs.get(r.image_id as number)!;
  let rle: Rle;
  try {
    rle = Array.isArray(seg) ? toRle(segmentationToRle(seg, img.height, img.width)) : toRle(seg as Parameters<typeof toRle>[0]);
  } catch (e) {
    throw new CocoFormatError(`loadRes: results[${i}] (image_id ${r.image_id}): invalid 'segmentation': ${(e as Error).message}`);
  }
  // A mask at another size (e.g. the network's input size) would silently score as a miss.
  if (rle.h !== img.height || rle.w !== img.width) {
    throw new CocoFormatError(`loadRes: results[${i}] (image_id ${r.image_id}): the mask is ${rle.h}x${rle.w} but the image is ${img.height}x${img.width} (RLE size is [height, width] of the original image)`);
  }
  if (r.bbox !== undefined && !isValidBox(r.bbox)) throw resultFieldError(i, r, 'bbox', BOX_EXPECTED);
  const bbox = r.bbox ?? rleToBbox(rle);
  return { ann: resultAnnotation(r, bbox, r.segmentation, rleArea(rle), i + 1), rle };
}

function keypointResult(r: Obj, i: number): CocoAnnotation {
  const kp = r.keypoints;
  if (!Array.isArray(kp) || kp.length < 3 || kp.length % 3 !== 0 || !kp.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw resultFieldError(i, r, 'keypoints', '[x1, y1, v1, x2, y2, v2, ...] of finite numbers');
  }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let j = 0; j < kp.length; j += 3) {
    x0 = Math.min(x0, kp[j]);
    x1 = Math.max(x1, kp[j]);
    y0 = Math.min(y0, kp[j + 1]);
    y1 = Math.max(y1, kp[j + 1]);
  }
  return Object.assign({}, r, { area: (x1 - x0) * (y1 - y0), id: i + 1, bbox: [x0, y0, x1 - x0, y1 - y0], iscrowd: 0 }) as CocoAnnotation;
}
