/**
 * COCOeval parity with pycocotools on the shared fixture (60 images, 12 categories, bbox and segm
 * results): all 12 stats and every per-category AP within 1e-9, the summary text, pycocotools'
 * per-image records, useCats=false, custom imgIds/maxDets, no detections and no ground truth.
 * Expected numbers not in expected.json were printed by pycocotools 2.0 on the same files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { COCO, COCOeval, Params, linspace } from '../src/coco/index.ts';
import { mergeRunsDesc, npSum, pyFixed } from '../src/coco/eval_numeric.ts';
import { COCO_PARITY_DIR } from './helpers/fixtures.ts';

const DIR = COCO_PARITY_DIR;
interface Expected {
  stats: number[];
  per_category_ap: Record<string, number>;
}
const expected = JSON.parse(readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as Record<'bbox' | 'segm', Expected>;
const TOL = 1e-9;

const gtPromise = COCO.fromFile(path.join(DIR, 'gt.json'));

function run(gt: COCO, dt: COCO, iouType: 'bbox' | 'segm', setup?: (E: COCOeval) => void): { E: COCOeval; lines: string[]; ms: number } {
  const E = new COCOeval(gt, dt, iouType);
  setup?.(E);
  const t0 = performance.now();
  E.evaluate();
  E.accumulate();
  const ms = performance.now() - t0;
  const lines = E.summarize(null);
  return { E, lines, ms };
}

function maxAbsDiff(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  return Math.max(...a.map((v, i) => Math.abs(v - b[i])));
}

for (const iouType of ['bbox', 'segm'] as const) {
  test(`${iouType}: 12 stats and per-category AP equal pycocotools' (1e-9)`, async (t) => {
    const gt = await gtPromise;
    const dt = gt.loadRes(path.join(DIR, `dt_${iouType}.json`));
    const { E, ms } = run(gt, dt, iouType);
    const exp = expected[iouType];
    const dStats = maxAbsDiff(E.stats, exp.stats);
    const perCat = E.perCategoryAP();
    assert.deepEqual([...perCat.keys()].map(String).sort(), Object.keys(exp.per_category_ap).sort());
    const dCat = Math.max(...[...perCat].map(([id, ap]) => Math.abs(ap - exp.per_category_ap[String(id)])));
    t.diagnostic(`${iouType}: evaluate+accumulate ${ms.toFixed(1)} ms; max |diff| stats ${dStats}, per-category AP ${dCat}`);
    assert.ok(dStats <= TOL, `stats differ by ${dStats}: ${E.stats} vs ${exp.stats}`);
    assert.ok(dCat <= TOL, `per-category AP differs by ${dCat}`);
  });
}

test('summarize() prints pycocotools lines, character for character', async () => {
  const gt = await gtPromise;
  const dt = gt.loadRes(path.join(DIR, 'dt_bbox.json'));
  const E = new COCOeval(gt, dt, 'bbox');
  E.evaluate();
  E.accumulate();
  const written: string[] = [];
  const lines = E.summarize((l) => written.push(l));
  assert.deepEqual(written, lines);
  assert.deepEqual(lines, [
    ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.269',
    ' Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.559',
    ' Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.177',
    ' Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.318',
    ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.270',
    ' Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.251',
    ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.261',
    ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.454',
    ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.454',
    ' Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.447',
    ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.476',
    ' Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.489',
  ]);
  assert.throws(() => new COCOeval(gt, dt, 'bbox').summarize(null), /accumulate/);
});

test('evalImgs records equal pycocotools (crowd gt matched, ignored last)', async () => {
  const gt = await gtPromise;
  const dt = gt.loadRes(path.join(DIR, 'dt_bbox.json'));
  const E = new COCOeval(gt, dt, 'bbox');
  E.evaluate();
  assert.equal(E.evalImgs.length, 12 * 4 * 60);
  const e = E.evalImgs.get(2161)!;
  assert.equal(e.image_id, 1003);
  assert.equal(e.category_id, 65);
  assert.deepEqual([...e.dtIds], [16, 26]);
  assert.deepEqual([...e.gtIds], [12, 21]);
  assert.deepEqual([...e.dtScores], [0.7216, 0.67705]);
  assert.deepEqual([...e.gtIgnore], [0, 1]);
  const m = [...e.dtMatches];
  assert.deepEqual(m, [12, 21, 12, 21, 12, 21, 12, 21, 0, 21, 0, 21, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...e.dtIgnore], [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...e.gtMatches].slice(0, 12), [16, 26, 16, 26, 16, 26, 16, 26, 0, 26, 0, 26]);
  const nulls = [...E.evalImgs].filter((r) => r === null).length;
  assert.ok(nulls > 0 && nulls < E.evalImgs.length);
  // pycocotools' ious[imgId, catId]: D x G with gts in file order
  assert.equal(E.computeIoU(1003, 65).length, 4);
});

test('useCats=false equals pycocotools', async () => {
  const gt = await gtPromise;
  const dt = gt.loadRes(path.join(DIR, 'dt_bbox.json'));
  const { E } = run(gt, dt, 'bbox', (e) => (e.params.useCats = false));
  const want = [
    0.28848234298311526, 0.6224609688601089, 0.1874932209116735, 0.3376767009779614, 0.2736380162791967, 0.2507483381798811,
    0.06866952789699571, 0.35751072961373387, 0.4879828326180258, 0.47439446366782, 0.5074626865671642, 0.5186046511627908,
  ];
  assert.ok(maxAbsDiff(E.stats, want) <= TOL, String(E.stats));
  assert.deepEqual([...E.perCategoryAP().keys()], [-1]);
  assert.equal(E.evalImgs.length, 4 * 60);
});

test('a subset of images and maxDets [1, 5, 20] equal pycocotools (stats[0] is -1: no maxDets=100)', async () => {
  const gt = await gtPromise;
  const dt = gt.loadRes(path.join(DIR, 'dt_bbox.json'));
  const { E, lines } = run(gt, dt, 'bbox', (e) => {
    e.params.imgIds = e.params.imgIds.filter((_, i) => i % 3 === 0);
    e.params.maxDets = [20, 1, 5]; // evaluate() sorts them
  });
  const want = [
    -1.0, 0.5693967528943503, 0.2677303950922812, 0.39521350239419545, 0.28794086606462843, 0.27512926292629264,
    0.28962172841778105, 0.457953052795158, 0.457953052795158, 0.4866111388611388, 0.42449999999999993, 0.425,
  ];
  assert.ok(maxAbsDiff(E.stats, want) <= TOL, String(E.stats));
  assert.equal(lines[0], ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = -1.000');
  assert.equal(lines[6], ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.290');
});

test('no detections: pycocotools gives 0 where there is ground truth, -1 where there is none', async () => {
  // pycocotools' loadRes([]) raises IndexError; evaluating an empty result set gives these numbers.
  const gt = await gtPromise;
  const dt = gt.loadRes([]);
  assert.equal(dt.anns.size, 0);
  for (const iouType of ['bbox', 'segm'] as const) {
    const { E, lines } = run(gt, dt, iouType);
    assert.deepEqual(E.stats, new Array(12).fill(0));
    assert.match(lines[0], /= 0\.000$/);
    const perCat = E.perCategoryAP();
    assert.equal(perCat.get(80), -1);
    assert.equal(perCat.get(3), 0);
  }
  // Categories without ground truth (and no detections): everything is -1.
  const { E, lines } = run(gt, dt, 'bbox', (e) => (e.params.catIds = [80, 84]));
  assert.deepEqual(E.stats, new Array(12).fill(-1));
  assert.match(lines[11], /= -1\.000$/);
});

test('params: thresholds are numpy linspace values; keypoints is not implemented yet', async () => {
  const p = new Params('bbox');
  assert.deepEqual(p.iouThrs, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95]);
  assert.equal(p.iouThrs.indexOf(0.75), 5);
  assert.equal(p.recThrs.length, 101);
  assert.equal(p.recThrs[3], 0.03);
  assert.equal(p.recThrs[100], 1);
  assert.deepEqual(p.areaRng, [[0, 1e10], [0, 1024], [1024, 9216], [9216, 1e10]]);
  assert.deepEqual(p.maxDets, [1, 10, 100]);
  assert.deepEqual(linspace(0, 1, 5), [0, 0.25, 0.5, 0.75, 1]);
  assert.throws(() => new Params('foo' as 'bbox'), /iouType/);
  const gt = await gtPromise;
  const E = new COCOeval(gt, gt.loadRes([]), 'keypoints');
  assert.deepEqual(E.params.maxDets, [20]);
  assert.throws(() => E.evaluate(), /keypoints.*not implemented yet/);
});

test("Python '{:0.3f}' formatting: exact ties round half to even", () => {
  assert.equal(pyFixed(0.0625, 3), '0.062');
  assert.equal(pyFixed(0.1875, 3), '0.188');
  assert.equal(pyFixed(0.3125, 3), '0.312');
  assert.equal(pyFixed(-0.0625, 3), '-0.062');
  assert.equal(pyFixed(0.125, 2), '0.12');
  assert.equal(pyFixed(0.2692466072573, 3), '0.269');
  assert.equal(pyFixed(-1, 3), '-1.000');
  assert.equal(pyFixed(0.95, 2), '0.95');
});

test('stable descending merge of sorted runs = numpy argsort(-x, kind="mergesort")', () => {
  let seed = 7;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let trial = 0; trial < 20; trial++) {
    const runs: number[] = [];
    const vals: number[] = [];
    const nRuns = 1 + Math.floor(rnd() * 40);
    for (let r = 0; r < nRuns; r++) {
      runs.push(vals.length);
      const len = Math.floor(rnd() * 12); // empty runs too
      const run = Array.from({ length: len }, () => Math.floor(rnd() * 6) / 5); // many ties
      run.sort((a, b) => b - a);
      vals.push(...run);
    }
    const keys = Float64Array.from(vals);
    const want = vals.map((_, i) => i).sort((a, b) => vals[b] - vals[a] || a - b);
    assert.deepEqual([...mergeRunsDesc(keys, keys.length, runs)], want);
  }
});

test('numpy summation order: pairwise in blocks of 8192 (the fixture was made with numpy 1.x)', () => {
  const xs = Float64Array.from({ length: 10100 }, (_, i) => ((i * 7919) % 1000) / 997);
  let naive = 0;
  for (const x of xs) naive += x;
  assert.ok(Math.abs(npSum(xs) - naive) < 1e-9);
  assert.equal(npSum([0.1, 0.2, 0.3]), 0.1 + 0.2 + 0.3);
});
