/**
 * Fuzz targets of the COCO readers: GT files (`COCO.fromFile` + every annotation's mask), results
 * files (`loadRes` + COCOeval), and targeted mutations of RLE counts strings and polygons inside
 * both. Each target mutates a small valid file; see test/fuzz_readers.test.ts.
 */
import { readFileSync } from 'node:fs';
import { COCO, COCOeval, encode, frPoly, type CocoDataset, type CocoResult, type IouType } from '../../src/coco/index.ts';
import { rleCountsToString } from '../../src/coco/rle_string.ts';
import { Rng, mutateBytes, mutateTree, nested, raw, slots, toJsonText, NASTY_NUMBERS } from './fuzz_mutate.ts';

/** One reader under fuzz: how to make a mutated file and how a user would read it. */
export interface FuzzTarget {
  name: string;
  ext: string;
  /** The valid files the mutations start from (each must read without an error). */
  seeds: (Uint8Array | string)[];
  /** The mutated file's bytes and the names of the mutations applied. */
  make(rng: Rng): { data: Uint8Array | string; what: string[] };
  /** Reads `file` as a user would; resolves with anything, or throws. */
  read(file: string): Promise<unknown>;
}

/** A filled box mask, row-major `h * w`, for seed RLEs. */
function boxMask(h: number, w: number, x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const m = new Uint8Array(h * w);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = (x + y) % 5 === 0 ? 0 : 1;
  return m;
}

function seedGt(): CocoDataset {
  const poly = [2, 3, 12, 3, 12, 11, 7, 14, 2, 11];
  return {
    images: [
      { id: 1, width: 30, height: 20, file_name: 'a.png' },
      { id: 2, width: 17, height: 23 },
      { id: 3, width: 8, height: 8 },
    ],
    categories: [
      { id: 1, name: 'a', supercategory: 's' },
      { id: 2, name: 'b' },
      { id: 5, name: 'c' },
    ],
    annotations: [
      { id: 1, image_id: 1, category_id: 1, bbox: [2, 3, 10, 11], area: 90, iscrowd: 0, segmentation: [poly] },
      { id: 2, image_id: 1, category_id: 2, bbox: [5, 5, 9, 7], area: 50, iscrowd: 1, segmentation: encode(boxMask(20, 30, 5, 5, 14, 12), 20, 30) },
      { id: 3, image_id: 2, category_id: 5, bbox: [1, 2, 9, 9], area: 60, iscrowd: 0, segmentation: { size: [23, 17], counts: [25, 4, 19, 4, 19, 4, 316] } },
      { id: 4, image_id: 2, category_id: 1, area: 30, iscrowd: 0, segmentation: [[1, 1, 6, 1, 6, 6], [8, 8, 14, 8, 14, 20, 8, 20]] } as never,
      { id: 5, image_id: 3, category_id: 2, bbox: [1, 1, 3, 3], area: 9, iscrowd: 0, segmentation: [[1, 1, 4, 1, 4, 4, 1, 4]] },
      { id: 6, image_id: 1, category_id: 5, area: 12, iscrowd: 0, segmentation: encode(boxMask(20, 30, 20, 2, 26, 9), 20, 30) } as never,
    ],
  };
}

function seedBoxResults(): CocoResult[] {
  return [
    { image_id: 1, category_id: 1, bbox: [2, 3, 10, 10], score: 0.9 },
    { image_id: 1, category_id: 2, bbox: [5, 5, 8, 8], score: 0.8 },
    { image_id: 2, category_id: 5, bbox: [1, 1, 9, 9], score: 0.7 },
    { image_id: 2, category_id: 1, bbox: [0, 0, 6, 6], score: 0.3 },
    { image_id: 3, category_id: 2, bbox: [1, 1, 2, 3], score: 0.95 },
  ];
}

function seedSegmResults(): CocoResult[] {
  return [
    { image_id: 1, category_id: 1, segmentation: frPoly([2, 3, 12, 3, 12, 12, 2, 12], 20, 30), score: 0.9 },
    { image_id: 1, category_id: 2, segmentation: encode(boxMask(20, 30, 4, 4, 13, 12), 20, 30), score: 0.8 },
    { image_id: 2, category_id: 5, segmentation: [[1, 2, 10, 2, 10, 11, 1, 11]], score: 0.7 },
    { image_id: 2, category_id: 1, segmentation: { size: [23, 17], counts: [30, 5, 18, 5, 333] }, score: 0.4, bbox: [1, 7, 2, 5] },
    { image_id: 3, category_id: 2, segmentation: encode(boxMask(8, 8, 1, 1, 4, 5), 8, 8), score: 0.6 },
  ];
}

const clone = <T>(v: T): T => structuredClone(v);
const quiet = (): void => {};

/** Reads a GT file and turns every annotation's segmentation into a mask (and an RLE). */
async function readGt(file: string): Promise<unknown> {
  const coco = await COCO.fromFile(file);
  let pixels = 0;
  for (const ann of coco.dataset.annotations) {
    if (ann.segmentation === undefined) continue;
    coco.annToRLE(ann);
    pixels += coco.annToMask(ann).length;
  }
  return pixels;
}

/** Loads a results file against `gt` and evaluates it. */
function readResults(gt: COCO, file: string): number[] {
  const dt = gt.loadRes(file, { log: quiet });
  const first = dt.dataset.annotations[0];
  const iouType: IouType = first && !Array.isArray(first.segmentation) ? 'segm' : 'bbox';
  const ev = new COCOeval(gt, dt, iouType);
  ev.evaluate();
  ev.accumulate();
  ev.summarize(null);
  return ev.stats;
}

/** Applies 1-3 tree mutations (aimed by `aim`, or anywhere), then maybe a byte mutation of the text. */
function mutateJson(rng: Rng, tree: unknown, aim: ((rng: Rng, tree: unknown) => string) | null): { data: string | Uint8Array; what: string[] } {
  const what: string[] = [];
  for (let k = 1 + rng.int(3); k > 0; k--) what.push(aim && rng.chance(0.8) ? aim(rng, tree) : mutateTree(rng, tree));
  const text = toJsonText(tree);
  if (!rng.chance(aim ? 0.1 : 0.25)) return { data: text, what };
  const m = mutateBytes(rng, Buffer.from(text));
  what.push(m.name);
  return { data: m.bytes, what };
}

/** A mutation of one RLE counts string (or of an RLE's size) found anywhere in `tree`. */
function mutateRle(rng: Rng, tree: unknown): string {
  const rles = slots(tree).filter((s) => s.key === 'counts' || s.key === 'size');
  if (rles.length === 0) return mutateTree(rng, tree);
  const s = rng.pick(rles);
  const put = (v: unknown): void => {
    (s.parent as Record<string, unknown>)[s.key as string] = v;
  };
  const size = (s.parent as Record<string, unknown>).size;
  if (s.key === 'counts' && rng.chance(0.25) && Array.isArray(size) && size.every((v) => Number.isInteger(v) && v >= 0 && v < 1e4)) {
    // Valid but unusual runs (zero-length runs, one long run, many short ones), so masks get decoded.
    const total = size[0] * size[1];
    const counts: number[] = [];
    let left = total;
    while (left > 0 && counts.length < 5000) {
      const c = rng.chance(0.2) ? 0 : Math.min(left, rng.chance(0.1) ? left : 1 + rng.int(rng.pick([2, 20, 500])));
      counts.push(c);
      left -= c;
    }
    if (left > 0) counts.push(left);
    put(rng.chance(0.5) ? rleCountsToString(counts) : counts);
    return 'rle-valid-random';
  }
  if (s.key === 'size') {
    const size = Array.isArray(s.value) ? [...(s.value as unknown[])] : [1, 1];
    if (rng.chance(0.2)) put(rng.pick([[], [1], [1, 2, 3], [null, 4], 'x', [2 ** 31, 2 ** 31], [1e9, 1e9], [65535, 65535], [-1, -1]]));
    else {
      size[rng.int(2)] = rng.pick(NASTY_NUMBERS) as number;
      put(size);
    }
    return 'rle-size';
  }
  if (typeof s.value !== 'string') {
    if (Array.isArray(s.value) && s.value.length > 0 && rng.chance(0.5)) mutateTree(rng, s.value); // in place
    else put(rng.pick([[1e20], [-1, 2], [0.5], ['3'], [2 ** 32], []]));
    return 'rle-uncompressed-counts';
  }
  let c = s.value;
  const p = rng.int(c.length + 1);
  const ch = (): string => String.fromCharCode(rng.chance(0.7) ? 48 + rng.int(64) : 32 + rng.int(95));
  switch (rng.int(8)) {
    case 0: c = c.slice(0, p) + ch() + c.slice(p + 1); break;
    case 1: c = c.slice(0, p); break;
    case 2: c = c.slice(0, p) + ch() + c.slice(p); break;
    case 3: c = c.slice(0, p) + c.slice(p + 1 + rng.int(4)); break;
    case 4: c = c.slice(0, p) + c.slice(p, p + 1 + rng.int(8)).repeat(rng.pick([2, 10, 10000])) + c.slice(p); break;
    case 5: c += 'o'.repeat(rng.pick([1, 6, 7, 12, 100])) + '0'; break;
    case 6: c = Array.from({ length: rng.pick([10, 1000, 100000]) }, ch).join(''); break;
    default: c = c.slice(0, p) + rng.pick(['\u0000', '\u00ff', '\ud800', '"', '\\', '😀', 'p']) + c.slice(p); break;
  }
  put(c);
  return 'rle-counts';
}

/** A mutation of one polygon (or of an image size, which polygons are rasterized at). */
function mutatePolygon(rng: Rng, tree: unknown): string {
  const all = slots(tree);
  const polys = all.filter((s) => Array.isArray(s.value) && s.value.length >= 4 && s.value.every((v) => typeof v === 'number') && s.key !== 'bbox');
  if (rng.chance(0.15)) {
    const sizes = all.filter((s) => s.key === 'width' || s.key === 'height');
    if (sizes.length > 0) {
      const s = rng.pick(sizes);
      (s.parent as Record<string, unknown>)[s.key as string] = rng.pick(NASTY_NUMBERS);
      return 'image-size';
    }
  }
  if (polys.length === 0) return mutateTree(rng, tree);
  const s = rng.pick(polys);
  const poly = [...(s.value as unknown[])];
  const huge = (): unknown => rng.pick([1e7, 4e8, 429496729, 429496730, 1e300, -1e9, 2e6, 5e4, -0.5, raw('NaN'), raw('1e400'), '3', null]);
  switch (rng.int(7)) {
    case 0: poly.pop(); break; // odd length
    case 1: poly[rng.int(poly.length)] = huge(); break;
    case 2: poly.length = rng.pick([0, 2, 4]); break;
    case 3: poly.push(...Array.from({ length: 2 * rng.pick([100, 5000]) }, () => rng.next() * 40 - 5)); break;
    case 4: poly[rng.int(poly.length)] = [1, 2]; break;
    case 5: for (let i = 0; i < poly.length; i++) poly[i] = huge(); break;
    default: (s.parent as unknown[] | Record<string, unknown>)[s.key as never] = nested(rng.pick([3, 100, 10000])) as never; return 'polygon-nesting';
  }
  (s.parent as Record<string | number, unknown>)[s.key] = poly;
  return 'polygon';
}

/** The COCO fuzz targets (the results targets share one ground truth, read from `gtFile`). */
export async function cocoTargets(gtFile: string): Promise<FuzzTarget[]> {
  const gt = await COCO.fromFile(gtFile);
  const gtTree = JSON.parse(readFileSync(gtFile, 'utf8')) as unknown;
  const resultSeeds = [seedBoxResults(), seedSegmResults()];
  const either = (rng: Rng, aim: ((rng: Rng, tree: unknown) => string) | null) =>
    rng.chance(0.5) ? mutateJson(rng, clone(gtTree), aim) : mutateJson(rng, clone(rng.chance(0.3) ? resultSeeds[0] : resultSeeds[1]), aim);
  /** Targets that mutate GT or results files: the kind is told by the file's content. */
  const readEither = async (file: string): Promise<unknown> => {
    const text = readFileSync(file, 'latin1');
    return text.trimStart().startsWith('[') ? readResults(gt, file) : readGt(file);
  };
  const gtSeed = [toJsonText(gtTree)];
  const resultTexts = resultSeeds.map(toJsonText);
  return [
    { name: 'coco-gt-json', ext: 'json', seeds: gtSeed, make: (rng) => mutateJson(rng, clone(gtTree), null), read: readGt },
    { name: 'coco-results-json', ext: 'json', seeds: resultTexts, make: (rng) => mutateJson(rng, clone(rng.pick(resultSeeds)), null), read: async (f) => readResults(gt, f) },
    { name: 'rle-strings', ext: 'json', seeds: [...gtSeed, ...resultTexts], make: (rng) => either(rng, mutateRle), read: readEither },
    { name: 'polygons', ext: 'json', seeds: [...gtSeed, ...resultTexts], make: (rng) => either(rng, mutatePolygon), read: readEither },
  ];
}

/** The seed ground truth of the COCO targets, as JSON text (written once by the worker). */
export function seedGtText(): string {
  return JSON.stringify(seedGt());
}
