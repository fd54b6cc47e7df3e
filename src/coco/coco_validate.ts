/**
 * Validation of COCO datasets and detection results, and JSON file reading. Every error names the
 * list and index (and id, when there is one) of the offending record, the field, and what was
 * expected, so that a bad file can be fixed without a debugger.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { formatValue } from '../util/format_value.ts';
import { MAX_JSON_DEPTH, jsonTooDeepAt } from '../util/json_depth.ts';
import type { BoxXYWH, CocoAnnotation, CocoCategory, CocoDataset, CocoImage } from './types.ts';

/** Raised for malformed COCO files, datasets and results. */
export class CocoFormatError extends Error {
  override name = 'CocoFormatError';
}

/** The message of anything thrown. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `e` as a {@link CocoFormatError} whose message starts with `file` (unless it names the file already). */
export function withFile(e: unknown, file: string): unknown {
  if (e instanceof Error && e.message.includes(file)) return e;
  return new CocoFormatError(`${file}: ${messageOf(e)}`, { cause: e });
}

function parseJson(bytes: Buffer, file: string): unknown {
  const deep = jsonTooDeepAt(bytes, MAX_JSON_DEPTH);
  if (deep >= 0) throw new CocoFormatError(`${file}: JSON nested too deep (more than ${MAX_JSON_DEPTH} levels at byte ${deep}; a COCO file has 5)`);
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (e) {
    throw new CocoFormatError(`cannot parse JSON file ${file} (truncated or malformed?): ${(e as Error).message}`);
  }
}

/** Reads and parses a JSON file; errors (unreadable, malformed, nested too deep) name the file. */
export async function readJsonFile(file: string): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new CocoFormatError(`cannot read JSON file ${file}: ${(e as Error).message}`);
  }
  return parseJson(bytes, file);
}

/** Synchronous {@link readJsonFile} (for `loadRes(path)`, synchronous like pycocotools'). */
export function readJsonFileSync(file: string): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new CocoFormatError(`cannot read JSON file ${file}: ${(e as Error).message}`);
  }
  return parseJson(bytes, file);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** True when `v` is `[x, y, w, h]` of finite numbers with `w, h >= 0`. */
export function isValidBox(v: unknown): v is BoxXYWH {
  return Array.isArray(v) && v.length === 4 && v.every(isNum) && v[2] >= 0 && v[3] >= 0;
}

export const BOX_EXPECTED = '[x, y, w, h] of 4 finite numbers with w >= 0 and h >= 0';

/** Light structural check of a segmentation (polygons or RLE); returns an error text or null. */
export function segmentationProblem(seg: unknown): string | null {
  if (Array.isArray(seg)) {
    for (let i = 0; i < seg.length; i++) {
      const poly: unknown = seg[i];
      if (!Array.isArray(poly)) return `polygon ${i} must be an array of numbers [x1, y1, x2, y2, ...]`;
    }
    return null;
  }
  if (isObj(seg)) {
    const size = seg.size;
    if (!Array.isArray(size) || size.length !== 2 || !size.every(isNum)) return `RLE 'size' must be [height, width], got ${formatValue(size)}`;
    if (typeof seg.counts !== 'string' && !Array.isArray(seg.counts)) return `RLE 'counts' must be a string or an array of numbers, got ${formatValue(seg.counts)}`;
    return null;
  }
  return `must be polygons [[x1, y1, ...], ...] or an RLE {size, counts}, got ${formatValue(seg)}`;
}

function need(cond: boolean, where: string, field: string, expected: string, got: unknown): void {
  if (!cond) throw new CocoFormatError(`${where}: field '${field}' must be ${expected}, got ${formatValue(got)}`);
}

function arrayField(ds: Record<string, unknown>, key: string, required: boolean): unknown[] {
  const v = ds[key];
  if (v === undefined && !required) return [];
  if (!Array.isArray(v)) throw new CocoFormatError(`COCO dataset: '${key}' must be an array, got ${formatValue(v)}`);
  return v;
}

/**
 * Checks a ground-truth dataset and returns it normalised: `iscrowd` defaults to 0 (on a shallow
 * copy of the annotation; other annotations are kept as they are), a missing `annotations` list
 * becomes `[]`. `images` and `categories` are required (pycocotools accepts a file without
 * `categories`, and COCOeval then scores nothing: every stat -1). `bbox` may be absent when a
 * segmentation is present (the caller derives it).
 */
export function validateDataset(input: unknown): CocoDataset {
  if (!isObj(input)) throw new CocoFormatError(`COCO dataset must be a JSON object with images/annotations/categories, got ${formatValue(input)}`);
  const images = arrayField(input, 'images', true);
  const annotations = arrayField(input, 'annotations', false);
  if (input.categories === undefined) {
    throw new CocoFormatError(`COCO dataset has no 'categories' list (a ground truth needs one: without it nothing can be scored)`);
  }
  const categories = arrayField(input, 'categories', true);
  const imgIds = new Set<number>();
  images.forEach((img, i) => {
    const where = `images[${i}]${isObj(img) && img.id !== undefined ? ` (id ${formatValue(img.id)})` : ''}`;
    if (!isObj(img)) throw new CocoFormatError(`${where} must be an object, got ${formatValue(img)}`);
    need(isNum(img.id), where, 'id', 'a finite number', img.id);
    need(isNum(img.width) && img.width >= 0, where, 'width', 'a number >= 0', img.width);
    need(isNum(img.height) && img.height >= 0, where, 'height', 'a number >= 0', img.height);
    if (imgIds.has(img.id as number)) throw new CocoFormatError(`${where}: duplicate image id ${img.id}`);
    imgIds.add(img.id as number);
  });
  const catIds = new Set<number>();
  categories.forEach((cat, i) => {
    const where = `categories[${i}]${isObj(cat) && cat.id !== undefined ? ` (id ${formatValue(cat.id)})` : ''}`;
    if (!isObj(cat)) throw new CocoFormatError(`${where} must be an object, got ${formatValue(cat)}`);
    need(isNum(cat.id), where, 'id', 'a finite number', cat.id);
    need(typeof cat.name === 'string', where, 'name', 'a string', cat.name);
    if (catIds.has(cat.id as number)) throw new CocoFormatError(`${where}: duplicate category id ${cat.id}`);
    catIds.add(cat.id as number);
  });
  const annIds = new Set<number>();
  const anns = annotations.map((ann, i) => {
    const where = `annotations[${i}]${isObj(ann) && ann.id !== undefined ? ` (id ${formatValue(ann.id)})` : ''}`;
    if (!isObj(ann)) throw new CocoFormatError(`${where} must be an object, got ${formatValue(ann)}`);
    need(isNum(ann.id), where, 'id', 'a finite number', ann.id);
    need(isNum(ann.image_id), where, 'image_id', 'a finite number', ann.image_id);
    if (!imgIds.has(ann.image_id as number)) throw new CocoFormatError(`${where}: field 'image_id' refers to image ${ann.image_id}, which is not in 'images'`);
    need(isNum(ann.category_id), where, 'category_id', 'a finite number', ann.category_id);
    if (ann.bbox === undefined && ann.segmentation === undefined) throw new CocoFormatError(`${where}: needs a 'bbox' or a 'segmentation', has neither`);
    if (ann.bbox !== undefined) need(isValidBox(ann.bbox), where, 'bbox', BOX_EXPECTED, ann.bbox);
    if (ann.segmentation !== undefined) {
      const p = segmentationProblem(ann.segmentation);
      if (p) throw new CocoFormatError(`${where}: field 'segmentation' ${p}`);
    }
    need(isNum(ann.area) && ann.area >= 0, where, 'area', 'a finite number >= 0', ann.area);
    if (ann.iscrowd !== undefined) need(ann.iscrowd === 0 || ann.iscrowd === 1 || typeof ann.iscrowd === 'boolean', where, 'iscrowd', '0 or 1', ann.iscrowd);
    if (annIds.has(ann.id as number)) throw new CocoFormatError(`${where}: duplicate annotation id ${ann.id}`);
    annIds.add(ann.id as number);
    return (ann.iscrowd === undefined ? Object.assign({}, ann, { iscrowd: 0 }) : ann) as CocoAnnotation;
  });
  return Object.assign({}, input, { images: images as CocoImage[], annotations: anns, categories: categories as CocoCategory[] }) as CocoDataset;
}

/** Builds the "unknown image ids" error of `loadRes`, listing the first few ids. */
export function unknownImagesError(unknown: number[], nResults: number): CocoFormatError {
  const uniq = [...new Set(unknown)];
  const shown = uniq.slice(0, 10).join(', ');
  return new CocoFormatError(
    `loadRes: results do not correspond to the ground truth: ${unknown.length} of ${nResults} result(s) refer to ` +
      `${uniq.length} image id(s) not in the ground-truth images: ${shown}${uniq.length > 10 ? ', ...' : ''}`,
  );
}

/** Checks the fields every result needs (`image_id`, `category_id`, `score`); returns the message prefix. */
export function checkResultCommon(r: unknown, i: number): Record<string, unknown> {
  const where = `loadRes: results[${i}]`;
  if (!isObj(r)) throw new CocoFormatError(`${where} must be an object, got ${formatValue(r)}`);
  need(isNum(r.image_id), where, 'image_id', 'a finite number', r.image_id);
  need(isNum(r.category_id), where, 'category_id', 'a finite number', r.category_id);
  need(isNum(r.score), where, 'score', 'a finite number', r.score);
  return r;
}

/** Error for a result field, naming the index and image. */
export function resultFieldError(i: number, r: Record<string, unknown>, field: string, expected: string): CocoFormatError {
  return new CocoFormatError(`loadRes: results[${i}] (image_id ${formatValue(r.image_id)}): field '${field}' must be ${expected}, got ${formatValue(r[field])}`);
}
