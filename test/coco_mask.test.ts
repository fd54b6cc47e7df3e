/**
 * The mask API against pycocotools: RLE strings, areas and boxes of the fixture's GT segmentations
 * (annToRLE), and IoU matrices of its segm and bbox results, as pycocotools printed them; then
 * round trips and pixel-wise truths on random masks, and the errors on malformed input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  area,
  decode,
  encode,
  frBbox,
  frPoly,
  frPyObjects,
  frUncompressedRLE,
  fromRle,
  iou,
  merge,
  segmentationToRle,
  toBbox,
  toRle,
} from '../src/coco/mask.ts';
import { rleArea, rleFromMask, rleMerge, rleToBbox, rleToMask, type Rle } from '../src/coco/rle.ts';
import { bboxIou, rleIou } from '../src/coco/rle_iou.ts';
import { rleCountsFromString, rleCountsToString } from '../src/coco/rle_string.ts';
import type { BoxXYWH, CocoAnnotation, CocoDataset, CocoResult, CompressedRLE } from '../src/coco/types.ts';
import { COCO_PARITY_DIR } from './helpers/fixtures.ts';

const DIR = COCO_PARITY_DIR;
const readJson = <T>(name: string): T => JSON.parse(readFileSync(path.join(DIR, name), 'utf8')) as T;

interface RleEntry {
  ann_id: number;
  counts: string;
  size: [number, number];
  area: number;
  bbox: BoxXYWH;
}
interface IouEntry {
  image_id: number;
  gt_ann_ids: number[];
  dt_index_in_image: number[];
  iscrowd: number[];
  segm_iou: number[][];
  bbox_iou: number[][];
}
const expected = readJson<{ rle: RleEntry[]; iou: IouEntry[]; note: string }>('masks_expected.json');
const gt = readJson<CocoDataset>('gt.json');
const dtSegm = readJson<CocoResult[]>('dt_segm.json');
const dtBbox = readJson<CocoResult[]>('dt_bbox.json');
const imgs = new Map(gt.images.map((im) => [im.id, im]));
const anns = new Map(gt.annotations.map((a) => [a.id, a]));

/** pycocotools `COCO.annToRLE`. */
function annToRle(ann: CocoAnnotation): CompressedRLE {
  const im = imgs.get(ann.image_id)!;
  return segmentationToRle(ann.segmentation!, im.height, im.width);
}

/** The image's results in file order. */
function resultsOf(results: CocoResult[], imageId: number): CocoResult[] {
  return results.filter((r) => r.image_id === imageId);
}

function maxDiff(a: number[][], b: number[][]): number {
  assert.equal(a.length, b.length, 'rows');
  let m = 0;
  a.forEach((row, i) => {
    assert.equal(row.length, b[i].length, `row ${i} length`);
    row.forEach((v, j) => (m = Math.max(m, Math.abs(v - b[i][j]))));
  });
  return m;
}

test('GT segmentations: RLE strings, areas and boxes equal pycocotools (annToRLE, area, toBbox)', () => {
  assert.equal(expected.rle.length, 150);
  let polys = 0;
  let uncompressed = 0;
  for (const e of expected.rle) {
    const ann = anns.get(e.ann_id)!;
    if (Array.isArray(ann.segmentation)) polys++;
    else uncompressed++;
    const r = annToRle(ann);
    assert.deepEqual(r.size, e.size, `ann ${e.ann_id} size`);
    assert.equal(r.counts, e.counts, `ann ${e.ann_id} counts`);
    assert.equal(area(r), e.area, `ann ${e.ann_id} area`);
    assert.deepEqual(toBbox(r), e.bbox, `ann ${e.ann_id} bbox`);
  }
  assert.ok(polys > 100 && uncompressed > 0, `both kinds covered (${polys} polygons, ${uncompressed} uncompressed)`);
});

// segm_iou: dt_segm.json's RLEs against annToRLE of the GT; bbox_iou: dt_bbox.json's boxes against
// the GT annotations' `bbox` (both matrices match these sources exactly, to the last bit).
test('IoU matrices of segm and bbox results equal pycocotools (1e-12), crowd included', () => {
  assert.match(expected.note, /first 30 results of that image in file order/);
  let crowdCells = 0;
  let positive = 0;
  for (const e of expected.iou) {
    const gtAnns = e.gt_ann_ids.map((id) => anns.get(id)!);
    assert.deepEqual(gtAnns.map((a) => a.iscrowd), e.iscrowd, `image ${e.image_id} crowd flags`);
    const segm = resultsOf(dtSegm, e.image_id);
    const boxes = resultsOf(dtBbox, e.image_id);
    const dtRles = e.dt_index_in_image.map((i) => segm[i].segmentation as CompressedRLE);
    const dtBoxes = e.dt_index_in_image.map((i) => boxes[i].bbox!);
    const segmIou = iou(dtRles, gtAnns.map(annToRle), e.iscrowd);
    const bbIou = iou(dtBoxes, gtAnns.map((a) => a.bbox), e.iscrowd);
    assert.ok(maxDiff(segmIou, e.segm_iou) <= 1e-12, `image ${e.image_id} segm iou`);
    assert.ok(maxDiff(bbIou, e.bbox_iou) <= 1e-12, `image ${e.image_id} bbox iou`);
    // The internal API the evaluator uses gives the same numbers.
    const flat = rleIou(dtRles.map(toRle), gtAnns.map((a) => toRle(annToRle(a))), e.iscrowd);
    assert.deepEqual(Array.from(flat), segmIou.flat(), `image ${e.image_id} rleIou`);
    const flatBox = bboxIou(Float64Array.from(dtBoxes.flat()), Float64Array.from(gtAnns.flatMap((a) => a.bbox)), e.iscrowd);
    assert.deepEqual(Array.from(flatBox), bbIou.flat(), `image ${e.image_id} bboxIou`);
    e.iscrowd.forEach((c, g) => (crowdCells += c ? e.segm_iou.filter((row) => row[g] > 0).length : 0));
    positive += e.segm_iou.flat().filter((v) => v > 0).length;
  }
  assert.ok(crowdCells > 0 && positive > 100, `crowd cells with overlap: ${crowdCells}, positive cells: ${positive}`);
});

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random row-major mask: noise, or a few rectangles (long runs across columns). */
function randomMask(rand: () => number, h: number, w: number): Uint8Array {
  const m = new Uint8Array(h * w);
  if (rand() < 0.4) {
    const p = rand();
    for (let i = 0; i < m.length; i++) m[i] = rand() < p ? 1 + Math.floor(rand() * 254) : 0;
    return m;
  }
  const n = Math.floor(rand() * 4);
  for (let k = 0; k < n; k++) {
    const x0 = Math.floor(rand() * w);
    const y0 = Math.floor(rand() * h);
    const x1 = Math.min(w, x0 + 1 + Math.floor(rand() * w));
    const y1 = Math.min(h, y0 + 1 + Math.floor(rand() * h));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  }
  return m;
}

const binary = (m: Uint8Array): Uint8Array => m.map((v) => (v ? 1 : 0));

test('encode/decode round trip on random row-major masks; area, bbox and runs agree with pixels', () => {
  const rand = rng(1);
  for (let t = 0; t < 300; t++) {
    const h = 1 + Math.floor(rand() * 40);
    const w = 1 + Math.floor(rand() * 40);
    const m = randomMask(rand, h, w);
    const r = encode(m, h, w);
    assert.deepEqual(r.size, [h, w]);
    assert.deepEqual(decode(r), binary(m), `case ${t} ${h}x${w}`);
    const shifted = new Uint8Array(m.length + 1); // a view at an odd byte offset
    shifted.set(m, 1);
    assert.equal(encode(shifted.subarray(1), h, w).counts, r.counts);
    let n = 0;
    let [x0, y0, x1, y1] = [w, h, -1, -1];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (!m[y * w + x]) continue;
        n++;
        [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      }
    }
    assert.equal(area(r), n);
    assert.equal(toRle(r).counts[0] === 0, m[0] !== 0, 'the first run (zeros) is empty iff pixel (0, 0) is set');
    const bb = toBbox(r);
    if (n > 0) {
      assert.ok(bb[0] === x0 && bb[2] === x1 - x0 + 1, `case ${t} box x`);
      // pycocotools: a run crossing a column boundary makes the box full height.
      assert.ok(bb[1] <= y0 && bb[1] + bb[3] >= y1 + 1, `case ${t} box y contains the mask`);
    } else assert.deepEqual(bb, [0, 0, 0, 0]);
  }
  // Orientation: one pixel at (x=2, y=1) of a 3x4 mask is column-major index 2*3+1 = 7.
  const one = new Uint8Array(12);
  one[1 * 4 + 2] = 1;
  assert.deepEqual(Array.from(toRle(encode(one, 3, 4)).counts), [7, 1, 4]);
  assert.deepEqual(toBbox(encode(one, 3, 4)), [2, 1, 1, 1]);
  assert.deepEqual(encode(new Uint8Array(12).fill(1), 3, 4), { size: [3, 4], counts: '0<' }); // pycocotools' string
});

test('counts string codec round trips, pycocotools strings, malformed strings refused', () => {
  const rand = rng(2);
  for (let t = 0; t < 500; t++) {
    const n = 1 + Math.floor(rand() * 30);
    const big = t % 5 === 0 ? 2 ** 32 : t % 5 === 1 ? 2 ** 20 : 100;
    const counts = Array.from({ length: n }, () => Math.floor(rand() * big));
    const s = rleCountsToString(counts);
    assert.match(s, /^[0-o]*$/);
    assert.deepEqual(Array.from(rleCountsFromString(s)), counts);
  }
  assert.equal(rleCountsToString([]), '');
  assert.deepEqual(Array.from(rleCountsFromString('')), []);
  assert.equal(rleCountsToString([0, 12]), '0<');
  assert.throws(() => rleCountsFromString('0 1'), /" " at character 1/);
  assert.throws(() => rleCountsFromString('0<p'), /"p" at character 2/);
  assert.throws(() => rleCountsFromString('01g'), /ends inside a value/); // 'g' = 0x37 has the "more" bit
  assert.throws(() => rleCountsFromString('00000O'), /run length -1/); // 'O' is -1: a negative run
  assert.throws(() => rleCountsToString([1, -2]), /counts\[1\] = -2/);
  assert.throws(() => rleCountsToString([1.5]), /counts\[0\] = 1.5/);
});

test('merge union/intersection equal the pixel-wise OR/AND', () => {
  const rand = rng(3);
  for (let t = 0; t < 200; t++) {
    const h = 1 + Math.floor(rand() * 30);
    const w = 1 + Math.floor(rand() * 30);
    const masks = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => binary(randomMask(rand, h, w)));
    const rles = masks.map((m) => encode(m, h, w));
    const or = masks.reduce((a, b) => a.map((v, i) => v | b[i]));
    const and = masks.reduce((a, b) => a.map((v, i) => v & b[i]));
    assert.deepEqual(decode(merge(rles)), or, `case ${t} union`);
    assert.deepEqual(decode(merge(rles, true)), and, `case ${t} intersection`);
    // Canonical output: the strings equal those of encoding the truth (more than one mask).
    if (rles.length > 1) assert.equal(merge(rles).counts, encode(or, h, w).counts);
  }
});

test('frBbox equals the pixels whose centers fall in the box; frPoly of the same rectangle agrees', () => {
  const rand = rng(4);
  for (let t = 0; t < 300; t++) {
    const h = 1 + Math.floor(rand() * 30);
    const w = 1 + Math.floor(rand() * 30);
    // Half-pixel boxes: a center on an edge is a tie, which pycocotools (vertices rounded to fifths
    // of a pixel, then centers tested) resolves as: on the left/top edge out, on the right/bottom edge in.
    const q = (v: number): number => Math.round(v * 2) / 2;
    const bb: BoxXYWH = [q(rand() * w * 1.2 - 3), q(rand() * h * 1.2 - 3), q(rand() * w), q(rand() * h)];
    const truth = new Uint8Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const cx = x + 0.5;
        const cy = y + 0.5;
        truth[y * w + x] = cx > bb[0] && cx <= bb[0] + bb[2] && cy > bb[1] && cy <= bb[1] + bb[3] ? 1 : 0;
      }
    }
    const r = frBbox(bb, h, w);
    assert.deepEqual(decode(r), truth, `case ${t} box ${bb} in ${h}x${w}`);
    const [x, y, bw, bh] = bb;
    assert.equal(frPoly([x, y, x, y + bh, x + bw, y + bh, x + bw, y], h, w).counts, r.counts);
  }
});

test('frPyObjects dispatches like pycocotools; segmentationToRle is annToRLE', () => {
  const poly = [1, 1, 8, 1, 8, 6, 1, 6];
  const polys = frPyObjects([poly, [2, 2, 4, 2, 3, 5]], 10, 12);
  assert.ok(Array.isArray(polys) && polys.length === 2);
  assert.deepEqual(polys[0], frPoly(poly, 10, 12));
  const boxes = frPyObjects([[1, 2, 3, 4] as BoxXYWH], 10, 12);
  assert.deepEqual(boxes, [frBbox([1, 2, 3, 4], 10, 12)]);
  assert.deepEqual(frPyObjects([1, 2, 3, 4], 10, 12), frBbox([1, 2, 3, 4], 10, 12));
  assert.deepEqual(frPyObjects(poly, 10, 12), frPoly(poly, 10, 12));
  const u = { size: [3, 4] as [number, number], counts: [7, 1, 4] };
  const c = frUncompressedRLE(u);
  assert.deepEqual(frPyObjects(u, 99, 99), c); // an RLE object keeps its own size
  assert.deepEqual(frPyObjects([u, u], 99, 99), [c, c]);
  assert.deepEqual(frPyObjects(c, 99, 99), c);
  assert.deepEqual(frPyObjects([], 10, 12), []);
  assert.equal(segmentationToRle(c, 3, 4), c);
  assert.deepEqual(segmentationToRle(u, 3, 4), c);
  assert.deepEqual(segmentationToRle([poly, [2, 2, 4, 2, 3, 5]], 10, 12), merge(polys as CompressedRLE[]));
  assert.deepEqual(segmentationToRle([poly], 10, 12), frPoly(poly, 10, 12));
  assert.deepEqual(fromRle(toRle(c)), c);
});

test('rle.ts internals: iou edge cases of pycocotools (crowd, empty, size mismatch, no overlap)', () => {
  const a = toRle(frBbox([0, 0, 4, 4], 10, 10)); // 16 px
  const b = toRle(frBbox([2, 2, 4, 4], 10, 10)); // 16 px, 4 shared
  const far = toRle(frBbox([7, 7, 2, 2], 10, 10));
  const empty = toRle(encode(new Uint8Array(100), 10, 10));
  const other = toRle(frBbox([0, 0, 4, 4], 10, 11));
  const o = rleIou([a, empty], [b, b, far, other, empty], [0, 1, 0, 0, 0]);
  assert.deepEqual(Array.from(o), [4 / 28, 4 / 16, 0, -1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(rleIou([], [a], [0])), []);
  const bo = bboxIou(Float64Array.from([0, 0, 4, 4]), Float64Array.from([2, 2, 4, 4, 2, 2, 4, 4, 4, 0, 3, 3]), [0, 1, 0]);
  assert.deepEqual(Array.from(bo), [4 / 28, 4 / 16, 0]);
  assert.equal(rleArea(rleMerge([a, b], false)), 28);
  assert.equal(rleArea(rleMerge([a, b], true)), 4);
  assert.deepEqual(rleToBbox(rleMerge([a, b], true)), [2, 2, 2, 2]);
  // pycocotools' quirks: a zero-length trailing run of ones is skipped; non-canonical runs survive frUncompressedRLE.
  assert.deepEqual(rleToBbox({ h: 3, w: 4, counts: Uint32Array.from([12, 0]) }), [4, 3, 2 ** 32 - 3, 2 ** 32 - 2]);
  assert.deepEqual(Array.from(toRle(frUncompressedRLE({ size: [2, 2], counts: [1, 0, 2, 1] })).counts), [1, 0, 2, 1]);
  const m = rleFromMask(Uint8Array.from([1, 0, 1, 1]), 2, 2);
  assert.deepEqual(Array.from(m.counts), [0, 2, 1, 1]); // column-major: (0,0) (1,0) (0,1) (1,1)
  assert.deepEqual(rleToMask(m), Uint8Array.from([1, 0, 1, 1]));
  // Zero-length runs past the first: maskApi.c's walks stop early, and so do ours (values printed by pycocotools 2.0.11).
  const gappy = (size: [number, number], counts: number[]): Rle => toRle({ size, counts });
  const g0 = gappy([2, 2], [0, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0]); // pixels 1 and 3
  assert.deepEqual(Array.from(rleIou([g0], [gappy([2, 2], [0, 3, 0, 1])], [0])), [1 / 3]); // the pixels' IoU is 1/2
  const pair = [gappy([1, 2], [0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0]), gappy([1, 2], [0, 1, 1])];
  assert.equal(fromRle(rleMerge(pair, false)).counts, '011');
  assert.equal(fromRle(rleMerge(pair, true)).counts, '000000011');
  const hangs = [[0, 1, 1, 0, 1, 3, 0], [2, 0, 1, 0, 0, 3, 0], [6]].map((c) => gappy([6, 1], c));
  assert.throws(() => rleMerge(hangs, false), /do not add up to the same length \(pycocotools loops forever here\)/);
  assert.deepEqual(iou([], [[0, 0, 1, 1]], [0]), []);
  assert.deepEqual(iou([[0, 0, 2, 2]], [], []), []);
});

test('malformed input is refused with a message naming it', () => {
  assert.throws(() => frPoly([1, 2, 3, 4], 10, 10), /has 4 numbers \(2 points\): \[1,2,3,4\].*at least 6 \(3 points\)/);
  assert.throws(() => frPoly([1, 2, 3, 4, 5, 6, 7], 10, 10), /7 numbers \(an odd count\)/);
  assert.throws(() => segmentationToRle([[1, 1, 5, 1, 5, 5], [1, 2, 3, 4]], 10, 10), /polygon 1 of the segmentation has 4 numbers/);
  assert.throws(() => segmentationToRle([], 10, 10), /empty polygon list/);
  assert.throws(() => frPoly([1, 2, NaN, 4, 5, 6], 10, 10), /coordinate 2 is NaN/);
  assert.throws(() => frPoly([1, 2, Infinity, 4, 5, 6], 10, 10), /coordinate 2/);
  assert.throws(() => frPyObjects([[1, 1, 5, 1, 5, 5], [1, 2]], 10, 10), /polygon 1 has 2 numbers/);
  assert.throws(() => frBbox([0, 0, -1, 2], 10, 10), /negative size/);
  assert.throws(() => frBbox([0, 0, NaN, 2], 10, 10), /4 finite numbers \[x, y, w, h\], got \[0,0,"NaN",2\]/);
  assert.throws(() => iou([[0, 0, 1, -1]], [[0, 0, 1, 1]], [0]), /dt\[0\] has a negative size/);
  assert.throws(() => iou([[0, 0, 1, 1]], [[0, 0, 1, 1]], [0, 0]), /2 flags for 1 ground truths/);
  const r34 = encode(new Uint8Array(12), 3, 4);
  const r43 = encode(new Uint8Array(12), 4, 3);
  assert.throws(() => iou([r34], [r43], [0]), /gt\[0\] is 4x3 but dt\[0\] is 3x4/);
  assert.throws(() => iou([r34], [[0, 0, 1, 1]], [0]), /all be boxes or all RLEs/);
  assert.throws(() => merge([r34, r43]), /RLE 1 is 4x3 but RLE 0 is 3x4/);
  assert.throws(() => merge([]), /no RLEs/);
  assert.throws(() => decode({ size: [3, 4], counts: '0<1' }), /add up to 13 pixels but size 3x4 has 12/);
  assert.throws(() => area({ size: [3, 5], counts: '0<' }), /add up to 12 pixels but size 3x5 has 15/);
  assert.throws(() => toRle({ size: [3, 4], counts: [7, -1, 6] }), /counts\[1\] = -1/);
  assert.throws(() => toRle({ size: [3, 4.5], counts: [7] } as never), /w=4.5/);
  assert.throws(() => encode(new Uint8Array(11), 3, 4), /11 bytes but 3x4 needs 12/);
  assert.throws(() => frPyObjects({ foo: 1 } as never, 3, 4), /expected polygons, boxes or RLE objects/);
});

test('rleIou agrees with a pixel-wise IoU on random masks (the box pre-filter loses nothing)', () => {
  const rand = rng(5);
  for (let t = 0; t < 50; t++) {
    const h = 5 + Math.floor(rand() * 30);
    const w = 5 + Math.floor(rand() * 30);
    const dm = Array.from({ length: 4 }, () => binary(randomMask(rand, h, w)));
    const gm = Array.from({ length: 3 }, () => binary(randomMask(rand, h, w)));
    const crowd = [0, 1, 0];
    const o = rleIou(dm.map((m) => rleFromMask(m, h, w)), gm.map((m): Rle => rleFromMask(m, h, w)), crowd);
    dm.forEach((d, i) =>
      gm.forEach((g, j) => {
        let inter = 0;
        let uni = 0;
        let da = 0;
        for (let p = 0; p < d.length; p++) {
          inter += d[p] & g[p];
          uni += d[p] | g[p];
          da += d[p];
        }
        const want = inter === 0 ? 0 : inter / (crowd[j] ? da : uni);
        assert.equal(o[i * 3 + j], want, `case ${t} (${i}, ${j})`);
      }),
    );
  }
});
