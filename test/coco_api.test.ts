/**
 * The COCO index (pycocotools' filter semantics and order), loadRes for box and mask results,
 * annToRLE/annToMask, and the errors for bad inputs (each naming the index/id and field).
 * Expected ids on the shared fixture were printed by pycocotools 2.0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { COCO, COCOeval, CocoFormatError, mask, type CocoDataset, type CocoResult, type CompressedRLE } from '../src/coco/index.ts';
import { COCO_PARITY_DIR } from './helpers/fixtures.ts';

const DIR = COCO_PARITY_DIR;
const gtPromise = COCO.fromFile(path.join(DIR, 'gt.json'));

function small(): CocoDataset {
  return {
    images: [
      { id: 1, width: 10, height: 8 },
      { id: 2, width: 10, height: 8 },
      { id: 3, width: 12, height: 6 },
    ],
    categories: [
      { id: 1, name: 'cat', supercategory: 'animal' },
      { id: 2, name: 'dog', supercategory: 'animal' },
      { id: 3, name: 'car', supercategory: 'vehicle' },
    ],
    annotations: [
      { id: 10, image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], area: 4 } as never,
      { id: 11, image_id: 1, category_id: 2, bbox: [1, 1, 3, 3], area: 9, iscrowd: 0 },
      { id: 12, image_id: 2, category_id: 1, segmentation: [[1, 1, 5, 1, 5, 5, 1, 5]], area: 16, iscrowd: 0 } as never,
      { id: 13, image_id: 3, category_id: 3, bbox: [0, 0, 5, 5], area: 25, iscrowd: 1 },
      { id: 14, image_id: 2, category_id: 2, bbox: [0, 0, 1, 1], area: 1, iscrowd: 0 },
    ],
  };
}

test('index and filters: getAnnIds / getCatIds / getImgIds (small dataset)', () => {
  const c = new COCO(small());
  assert.equal(c.imgs.size, 3);
  assert.equal(c.cats.size, 3);
  assert.equal(c.anns.get(10)!.iscrowd, 0, 'iscrowd defaults to 0');
  assert.equal(c.anns.get(12)!.bbox.length, 4, 'a box-less annotation gets its mask box');
  assert.deepEqual(c.imgToAnns.get(2)!.map((a) => a.id), [12, 14]);
  assert.deepEqual(c.catToImgs.get(1), [1, 2]);

  assert.deepEqual(c.getAnnIds(), [10, 11, 12, 13, 14]);
  assert.deepEqual(c.getAnnIds({ imgIds: [2, 1] }), [12, 14, 10, 11]);
  assert.deepEqual(c.getAnnIds({ imgIds: 2, catIds: 2 }), [14]);
  assert.deepEqual(c.getAnnIds({ imgIds: [99] }), []);
  assert.deepEqual(c.getAnnIds({ areaRng: [4, 25] }), [11, 12], 'area range is strict');
  assert.deepEqual(c.getAnnIds({ iscrowd: true }), [13]);
  assert.deepEqual(c.getAnnIds({ iscrowd: false, catIds: [1, 3] }), [10, 12]);

  assert.deepEqual(c.getCatIds(), [1, 2, 3]);
  assert.deepEqual(c.getCatIds({ supNms: 'animal' }), [1, 2]);
  assert.deepEqual(c.getCatIds({ catNms: ['car', 'dog'] }), [2, 3], 'file order, not argument order');
  assert.deepEqual(c.getCatIds({ supNms: ['animal'], catIds: [2, 3] }), [2]);

  assert.deepEqual(c.getImgIds(), [1, 2, 3]);
  assert.deepEqual(c.getImgIds({ catIds: [1, 2] }), [1, 2], 'images with all the categories');
  assert.deepEqual(c.getImgIds({ catIds: [3] }), [3]);
  assert.deepEqual(c.getImgIds({ imgIds: [3, 1], catIds: [1] }), [1]);
  assert.deepEqual(c.getImgIds({ imgIds: [3, 2] }), [2, 3]);

  assert.deepEqual(c.loadAnns([11, 13]).map((a) => a.area), [9, 25]);
  assert.equal(c.loadCats(3)[0].name, 'car');
  assert.equal(c.loadImgs([3])[0].width, 12);
  assert.throws(() => c.loadAnns(99), /unknown annotation id 99/);
});

test('filters on the fixture match pycocotools', async () => {
  const gt = await gtPromise;
  assert.deepEqual([gt.imgs.size, gt.anns.size, gt.cats.size], [60, 487, 12]);
  assert.deepEqual(gt.getAnnIds({ imgIds: [1003, 1000] }), [11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(gt.getAnnIds({ imgIds: [1003, 1000], catIds: [65, 61] }), [12, 21, 1, 2, 4, 10]);
  assert.deepEqual(gt.getAnnIds({ catIds: [65], areaRng: [100, 5000] }), [
    2, 21, 31, 45, 58, 75, 86, 87, 130, 149, 196, 218, 219, 228, 241, 243, 265, 335, 340, 355, 370, 371, 373, 420, 421, 459, 475,
  ]);
  assert.deepEqual(gt.getAnnIds({ iscrowd: true }), [21, 28, 59, 82, 114, 127, 131, 150, 162, 287, 290, 296, 320, 332, 342, 354, 391, 392, 441, 446, 478]);
  assert.deepEqual(gt.getAnnIds({ imgIds: [1000, 1003], iscrowd: false, areaRng: [0, 3000] }), [1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20]);
  assert.equal(gt.getAnnIds({ areaRng: [0, 32 ** 2] }).length, 301);
  assert.deepEqual(gt.getImgIds({ catIds: [65, 61] }), [1000, 1012, 1021, 1030, 1039, 1045, 1051, 1066, 1069, 1072, 1087, 1096, 1108, 1117, 1129, 1132, 1141, 1147, 1150, 1165, 1171]);
  assert.deepEqual(gt.getImgIds().slice(0, 5), [1000, 1003, 1006, 1009, 1012]);
});

test('annToRLE / annToMask: polygons and crowd (uncompressed) RLEs as pycocotools', async () => {
  const gt = await gtPromise;
  const want = JSON.parse(readFileSync(path.join(DIR, 'masks_expected.json'), 'utf8')) as {
    rle: { ann_id: number; counts: string; size: [number, number]; area: number; bbox: number[] }[];
  };
  const crowdId = 21;
  const picks = want.rle.filter((r, i) => i < 5 || r.ann_id === crowdId);
  assert.ok(picks.some((r) => r.ann_id === crowdId));
  for (const w of picks) {
    const ann = gt.anns.get(w.ann_id)!;
    const rle = gt.annToRLE(ann);
    assert.equal(rle.counts, w.counts, `ann ${w.ann_id}`);
    assert.deepEqual(rle.size, w.size);
    const m = gt.annToMask(ann);
    assert.equal(m.length, w.size[0] * w.size[1]);
    assert.equal(m.reduce((s, v) => s + v, 0), w.area);
    assert.deepEqual(gt.annToRleRuns(ann).counts, mask.toRle(rle).counts, 'runs = the decoded RLE');
    assert.equal(gt.annToRleRuns(ann), gt.annToRleRuns(ann), 'runs are cached');
  }
});

test('loadRes: box results (area w*h, box polygon, ids 1..N, iscrowd 0; inputs untouched)', () => {
  const c = new COCO(small());
  const results: CocoResult[] = [
    { image_id: 1, category_id: 1, bbox: [1, 2, 3, 4], score: 0.9 },
    { image_id: 2, category_id: 2, bbox: [0, 0, 2.5, 2], score: 0.5 },
  ];
  const res = c.loadRes(results);
  assert.deepEqual(res.getAnnIds(), [1, 2]);
  const a = res.anns.get(1)!;
  assert.equal(a.area, 12);
  assert.deepEqual(a.segmentation, [[1, 2, 1, 6, 4, 6, 4, 2]]);
  assert.equal(a.iscrowd, 0);
  assert.equal(res.anns.get(2)!.area, 5);
  assert.equal(res.imgs.size, 3);
  assert.deepEqual(res.getCatIds(), [1, 2, 3]);
  assert.equal('id' in results[0], false, 'results are copied, not modified');
});

test('loadRes: mask results (area and box from the RLE); a first result with a box makes box semantics', async () => {
  const gt = await gtPromise;
  const raw = JSON.parse(readFileSync(path.join(DIR, 'dt_segm.json'), 'utf8')) as CocoResult[];
  const res = gt.loadRes(path.join(DIR, 'dt_segm.json'));
  assert.equal(res.anns.size, raw.length);
  for (const i of [0, 1, 100, raw.length - 1]) {
    const a = res.anns.get(i + 1)!;
    const seg = raw[i].segmentation as CompressedRLE;
    assert.equal(a.area, mask.area(seg));
    assert.deepEqual([...a.bbox], [...mask.toBbox(seg)]);
    assert.equal(a.iscrowd, 0);
  }
  // pycocotools decides by the first result: with a 'bbox' there, area is w*h, not the mask area.
  const seg = raw[0].segmentation as CompressedRLE;
  const withBox = gt.loadRes([{ ...raw[0], bbox: [0, 0, 10, 10] }]);
  assert.equal(withBox.anns.get(1)!.area, 100);
  assert.equal(withBox.anns.get(1)!.segmentation, seg);
});

test('errors: unreadable and truncated JSON files name the file', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'coco-api-'));
  try {
    const file = path.join(dir, 'truncated.json');
    writeFileSync(file, JSON.stringify(small()).slice(0, 60));
    await assert.rejects(COCO.fromFile(file), (e: Error) => e instanceof CocoFormatError && e.message.includes(file) && /JSON/.test(e.message));
    await assert.rejects(COCO.fromFile(path.join(dir, 'missing.json')), /cannot read JSON file .*missing\.json/);
    const bad = path.join(dir, 'bad.json');
    const ds = small();
    delete (ds.annotations[1] as Partial<CocoDataset['annotations'][number]>).area;
    writeFileSync(bad, JSON.stringify(ds));
    await assert.rejects(COCO.fromFile(bad), (e: Error) => e.message.includes(bad) && e.message.includes("annotations[1] (id 11): field 'area'"));
    const res = path.join(dir, 'res.json');
    writeFileSync(res, '[{"image_id": 1, "category_id": 1, "bbox": [1, 2');
    assert.throws(() => new COCO(small()).loadRes(res), (e: Error) => e.message.includes(res) && /JSON/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors: missing or wrong dataset fields name the record and the field', () => {
  const bad = (edit: (d: CocoDataset) => void, re: RegExp): void => {
    const d = small();
    edit(d);
    assert.throws(() => new COCO(d), (e: Error) => e instanceof CocoFormatError && re.test(e.message), String(re));
  };
  bad((d) => delete (d.images[0] as Partial<CocoDataset['images'][number]>).height, /images\[0\] \(id 1\): field 'height' must be a number/);
  bad((d) => delete (d.categories[2] as Partial<CocoDataset['categories'][number]>).name, /categories\[2\] \(id 3\): field 'name' must be a string/);
  bad((d) => ((d.annotations[3] as { bbox: unknown }).bbox = [0, 0, 5]), /annotations\[3\] \(id 13\): field 'bbox' must be \[x, y, w, h\]/);
  bad((d) => (d.annotations[0].bbox = [0, 0, -1, 2]), /annotations\[0\] \(id 10\): field 'bbox'.*w >= 0/);
  bad((d) => delete (d.annotations[4] as Partial<CocoDataset['annotations'][number]>).category_id, /annotations\[4\] \(id 14\): field 'category_id' must be a finite number, got nothing/);
  bad((d) => (d.annotations[4].image_id = 77), /annotations\[4\] \(id 14\): field 'image_id' refers to image 77/);
  bad((d) => delete (d.annotations[1] as Partial<CocoDataset['annotations'][number]>).bbox, /annotations\[1\] \(id 11\): needs a 'bbox' or a 'segmentation'/);
  bad((d) => (d.annotations[4].id = 10), /duplicate annotation id 10/);
  bad((d) => delete (d as Partial<CocoDataset>).images, /'images' must be an array/);
  assert.throws(() => new COCO([] as never), /must be a JSON object/);
});

test('errors: bad results name the result index; unknown image ids are listed', () => {
  const c = new COCO(small());
  const r = (bbox: number[], extra: object = {}): CocoResult => ({ image_id: 1, category_id: 1, bbox: bbox as never, score: 0.5, ...extra });
  assert.throws(() => c.loadRes([r([0, 0, 1, 1]), r([1, 2, NaN, 4])]), /results\[1\] \(image_id 1\): field 'bbox' must be .*got \[1,2,"NaN",4\]/);
  assert.throws(() => c.loadRes([r([0, 0, -3, 1])]), /results\[0\] .*'bbox'.*w >= 0/);
  assert.throws(() => c.loadRes([r([0, 0, 1, 1], { score: undefined })]), /results\[0\]: field 'score' must be a finite number/);
  assert.throws(
    () => c.loadRes([r([0, 0, 1, 1]), r([0, 0, 1, 1], { image_id: 77 }), r([0, 0, 1, 1], { image_id: 78 }), r([0, 0, 1, 1], { image_id: 77 })]),
    /3 of 4 result\(s\) refer to 2 image id\(s\) not in the ground-truth images: 77, 78/,
  );
  assert.throws(() => c.loadRes({} as never), /results must be an array/);
  assert.throws(() => c.loadRes([{ image_id: 1, category_id: 1, score: 1 }]), /neither a 'bbox', a 'segmentation' nor 'keypoints'/);
});

test('errors: a polygon with fewer than 3 points names the annotation id', () => {
  const c = new COCO({
    images: [{ id: 1, width: 10, height: 8 }],
    categories: [{ id: 1, name: 'cat' }],
    annotations: [
      { id: 14, image_id: 1, category_id: 1, bbox: [1, 1, 4, 4], area: 16, iscrowd: 0, segmentation: [[1, 1, 5, 1, 5, 5, 1, 5]] },
      { id: 15, image_id: 1, category_id: 1, bbox: [0, 0, 1, 1], area: 1, iscrowd: 0, segmentation: [[1, 2, 3, 4]] },
    ],
  });
  assert.doesNotThrow(() => c.annToRLE(c.anns.get(14)!));
  assert.throws(() => c.annToRLE(c.anns.get(15)!), (e: Error) => e instanceof CocoFormatError && /annotation id 15/.test(e.message));
  assert.throws(() => c.annToMask(c.anns.get(15)!), /annotation id 15/);
  const E = new COCOeval(c, c.loadRes([{ image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], score: 1 }]), 'segm');
  assert.throws(() => E.evaluate(), /annotation id 15/);
  // bbox evaluation does not need the masks
  const B = new COCOeval(c, c.loadRes([{ image_id: 1, category_id: 1, bbox: [1, 1, 4, 4], score: 1 }]), 'bbox');
  B.evaluate();
  B.accumulate();
  B.summarize(null);
  assert.ok(Math.abs(B.stats[1] - 51 / 101) < 1e-12, String(B.stats[1])); // 1 of 2 objects found: precision 1 up to recall .5
});

test('loadRes: results of categories not in the ground truth give one warning with their count (pycocotools drops them silently)', () => {
  const c = new COCO(small());
  const r = (category_id: number): CocoResult => ({ image_id: 1, category_id, bbox: [0, 0, 2, 2], score: 0.5 });
  const lines: string[] = [];
  const res = c.loadRes([r(1), r(99), r(2), r(98), r(99)], { log: (l) => lines.push(l) });
  assert.deepEqual(lines, ['warning: 3 of 5 results have category ids not in the ground truth (first: 99); they are not scored']);
  assert.equal(res.anns.size, 5, 'kept, as pycocotools keeps them');
  const E = new COCOeval(c, res, 'bbox');
  E.evaluate();
  assert.equal([...E.evalImgs].filter((e) => e !== null).flatMap((e) => [...e.dtIds]).filter((id) => [2, 4, 5].includes(id)).length, 0, 'and never scored');
  lines.length = 0;
  c.loadRes([r(1), r(3)], { log: (l) => lines.push(l) });
  assert.equal(lines.length, 0, 'no warning when every category is known');
  const dir = mkdtempSync(path.join(tmpdir(), 'coco-api-'));
  try {
    const file = path.join(dir, 'res.json');
    writeFileSync(file, JSON.stringify([r(7)]));
    c.loadRes(file, { log: (l) => lines.push(l) });
    assert.deepEqual(lines, [`warning: ${file}: 1 of 1 results have category ids not in the ground truth (first: 7); they are not scored`]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors: a ground truth without a categories list is refused, naming the file (pycocotools scores nothing: every stat -1)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'coco-api-'));
  try {
    for (const categories of [undefined, 5, null, { id: 1 }]) {
      const file = path.join(dir, `gt-${String(categories)}.json`);
      writeFileSync(file, JSON.stringify({ ...small(), categories }));
      await assert.rejects(COCO.fromFile(file), (e: Error) => e instanceof CocoFormatError && e.message.includes(file) && /'categories'/.test(e.message), String(categories));
    }
    const d = small() as Partial<CocoDataset>;
    delete d.categories;
    assert.throws(() => new COCO(d), /no 'categories' list/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors: mask errors of a dataset read from a file name the file; huge masks are refused, not allocated', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'coco-api-'));
  try {
    const ds = small();
    ds.images.push({ id: 4, width: 60000, height: 60000 }); // 3.6e9 pixels: fine as runs, refused as a mask
    ds.annotations.push({ id: 20, image_id: 4, category_id: 1, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0, segmentation: [[0, 0, 2, 0, 2, 2]] });
    ds.annotations.push({ id: 21, image_id: 1, category_id: 1, bbox: [0, 0, 2, 2], area: 4, iscrowd: 0, segmentation: [[0, 0, 4e8, 0, 4e8, 4e8]] });
    const file = path.join(dir, 'gt.json');
    writeFileSync(file, JSON.stringify(ds));
    const c = await COCO.fromFile(file);
    assert.equal(c.file, file);
    assert.ok(c.annToRleRuns(c.anns.get(20)!).counts.length >= 2, 'the runs of a huge image are fine');
    assert.throws(() => c.annToMask(c.anns.get(20)!), (e: Error) => e.message.startsWith(`${file}: annotation id 20`) && /60000x60000 mask.*2\^31/.test(e.message));
    assert.throws(() => c.annToRLE(c.anns.get(21)!), (e: Error) => e.message.startsWith(`${file}: annotation id 21`) && /polygon boundary is \d+ points/.test(e.message));
    const res = path.join(dir, 'res.json');
    writeFileSync(res, JSON.stringify([{ image_id: 1, category_id: 1, score: 1, segmentation: { size: [8, 10], counts: 'zz' } }]));
    assert.throws(() => c.loadRes(res), (e: Error) => e.message.startsWith(`${res}: loadRes: results[0]`));
    // A mask at another size than its image's would silently score as a miss (pycocotools: garbage IoUs or an endless loop).
    writeFileSync(res, JSON.stringify([{ image_id: 1, category_id: 1, score: 1, segmentation: mask.encode(new Uint8Array(16 * 5), 16, 5) }]));
    assert.throws(() => c.loadRes(res), (e: Error) => e.message.startsWith(`${res}: loadRes: results[0] (image_id 1): the mask is 16x5 but the image is 8x10`));
    const rleGt = small();
    rleGt.annotations[0].segmentation = mask.encode(new Uint8Array(10 * 8), 10, 8);
    assert.throws(() => new COCO(rleGt).annToRleRuns(new COCO(rleGt).anns.get(10)!), /annotation id 10 \(image 1\): RLE size \[10,8\] is not the image's \[8, 10\]/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
