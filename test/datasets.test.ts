/**
 * Datasets: CocoDataset and SegDataset (+ ADE20K / shapes presets) on a tiny generated shapes set:
 * label mapping, sample fields, geometry through a pipeline, determinism, and the bad-sample policy
 * (missing/corrupt images, bad annotations, missing label files).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../src/nn/random.ts';
import { generateShapes, SHAPE_NAMES, SHAPES_SEG_CLASSES } from '../src/datasets/shapes.ts';
import { buildDataset } from '../src/datasets/build.ts';
import { CocoDataset } from '../src/datasets/coco_dataset.ts';
import { isSegLabelSource } from '../src/datasets/dataset.ts';
import { ConfigError } from '../src/config/errors.ts';
import { ADE20K_CLASSES, ADE20K_PALETTE, ADE20KDataset, reduceZeroLabel, SegDataset, ShapesSegDataset } from '../src/datasets/seg_dataset.ts';
import { loadImage, type Sample, type TransformConfig } from '../src/datasets/transforms/index.ts';
import { maskBoundingBoxes, masksToBitmaps, numMasks } from '../src/structures/masks.ts';
import type { CocoDataset as CocoJson } from '../src/coco/types.ts';

let root = '';
let annFile = '';
let imgDir = '';
let segImgDir = '';
let segAnnDir = '';

before(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'datasets-test-'));
  const r = await generateShapes({ out: root, train: 6, val: 2, minSize: 64, maxSize: 96, log: () => {} });
  annFile = r.instances!.train;
  imgDir = path.join(root, 'coco', 'images', 'train');
  segImgDir = r.semantic!.train.images;
  segAnnDir = r.semantic!.train.annotations;
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

const readJson = (): CocoJson => JSON.parse(readFileSync(annFile, 'utf8')) as CocoJson;

/** Writes a modified copy of the annotation file and returns its path. */
function writeAnn(name: string, edit: (d: CocoJson) => void): string {
  const d = readJson();
  edit(d);
  const file = path.join(root, name);
  writeFileSync(file, JSON.stringify(d));
  return file;
}

const PIPELINE: TransformConfig[] = [
  { type: 'Resize', scale: [160, 128], keep_ratio: true },
  { type: 'RandomFlip', prob: 0.5 },
  { type: 'Normalize' },
  { type: 'Pad', size_divisor: 32 },
];

test('CocoDataset: length, category <-> label mapping, aspect groups', async () => {
  const ds = await CocoDataset.create({ annFile, imgDir, pipeline: [] });
  const d = readJson();
  assert.equal(ds.length, 6);
  assert.deepEqual(ds.catIds, [1, 2, 3, 4, 5]);
  assert.deepEqual(ds.classes, [...SHAPE_NAMES]);
  assert.deepEqual([...ds.cat2label], [[1, 0], [2, 1], [3, 2], [4, 3], [5, 4]]);
  assert.deepEqual(ds.label2cat, [1, 2, 3, 4, 5]);
  for (let i = 0; i < ds.length; i++) {
    const im = d.images[i];
    assert.equal(ds.aspectGroup(i), im.width >= im.height ? 0 : 1);
  }
  // Category ids are sorted even when the file lists them out of order.
  const shuffled = writeAnn('shuffled_cats.json', (j) => { j.categories.reverse(); });
  const ds2 = await CocoDataset.create({ annFile: shuffled, imgDir, pipeline: [] });
  assert.deepEqual(ds2.label2cat, [1, 2, 3, 4, 5]);
  assert.deepEqual(ds2.classes, [...SHAPE_NAMES]);
  // minSize filters by the image record.
  const small = await CocoDataset.create({ annFile, imgDir, pipeline: [], minSize: 75 });
  assert.deepEqual(small.images.map((im) => im.id), d.images.filter((im) => Math.min(im.width, im.height) >= 75).map((im) => im.id));
});

test('CocoDataset: sample fields, dtypes, crowd boxes, meta', async () => {
  // About 1 image in 10 gets a crowd region: make sure this small set has one by marking the last
  // annotation as crowd if none is.
  const withCrowd = writeAnn('with_crowd.json', (j) => {
    if (!j.annotations.some((a) => a.iscrowd)) j.annotations[j.annotations.length - 1].iscrowd = 1;
  });
  const ds = await CocoDataset.create({ annFile: withCrowd, imgDir, pipeline: [] });
  const d = JSON.parse(readFileSync(withCrowd, 'utf8')) as CocoJson;
  let sawCrowd = false;
  for (let i = 0; i < ds.length; i++) {
    const s = (await ds.getSample(i, new Rng(0)))!;
    const im = d.images[i];
    const anns = d.annotations.filter((a) => a.image_id === im.id);
    assert.ok(s.img.data instanceof Uint8Array);
    assert.equal(s.img.data.length, im.width * im.height * 3);
    assert.deepEqual([s.img.height, s.img.width], [im.height, im.width]);
    assert.deepEqual(s.oriShape, [im.height, im.width]);
    assert.deepEqual(s.imgShape, [im.height, im.width]);
    assert.deepEqual(s.scaleFactor, [1, 1]);
    assert.equal(s.flip, false);
    assert.equal(s.imageId, im.id);
    const n = anns.filter((a) => !a.iscrowd).length;
    assert.ok(s.gtBboxes instanceof Float32Array);
    assert.ok(s.gtLabels instanceof Int32Array);
    assert.equal(s.gtBboxes.length, n * 4);
    assert.equal(s.gtLabels.length, n);
    assert.ok([...s.gtLabels].every((l) => l >= 0 && l <= 4));
    assert.deepEqual([...s.gtLabels], anns.filter((a) => !a.iscrowd).map((a) => a.category_id - 1));
    assert.equal(numMasks(s.gtMasks!), n);
    // Polygon-only images keep lazy polygons; RLE ones are bitmaps.
    assert.equal(s.gtMasks!.kind, anns.every((a) => a.iscrowd || Array.isArray(a.segmentation)) ? 'polygons' : 'bitmaps');
    const crowd = anns.filter((a) => a.iscrowd).flatMap((a) => [a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]]);
    assert.deepEqual([...s.gtBboxesIgnore!], [...Float32Array.from(crowd)]);
    if (crowd.length) sawCrowd = true;
  }
  assert.ok(sawCrowd, 'the generated set should contain a crowd region');
});

/**
 * Each mask's bounding box equals its transformed box within one pixel of rounding at each
 * resolution: the annotated box comes from the raster at the original size (a polygon's sharp tip
 * can reach up to a pixel beyond it), scaled by the resize factor, and the mask is rasterised again
 * at the new size. So the bound is 1 + scale px (1 px when not upscaled).
 */
function assertMasksMatchBoxes(s: Sample, what: string): void {
  const mb = maskBoundingBoxes(masksToBitmaps(s.gtMasks!));
  const b = s.gtBboxes!;
  const tol = 1 + Math.max(1, ...s.scaleFactor);
  assert.equal(mb.length, b.length, `${what}: count`);
  for (let k = 0; k < b.length; k++) assert.ok(Math.abs(mb[k] - b[k]) <= tol, `${what}: box coord ${k}: mask ${mb[k]} vs box ${b[k]} (tolerance ${tol})`);
}

test('CocoDataset: Resize+RandomFlip+Normalize+Pad keeps masks on boxes; deterministic under a seed', async () => {
  const ds = await CocoDataset.create({ annFile, imgDir, pipeline: PIPELINE });
  const flips = new Set<boolean>();
  for (let i = 0; i < ds.length; i++) {
    for (const seed of [1, 2, 3]) {
      const s = (await ds.getSample(i, new Rng(seed)))!;
      flips.add(s.flip);
      assert.ok(s.img.data instanceof Float32Array);
      assert.equal(s.img.height % 32, 0);
      assert.equal(s.img.width % 32, 0);
      assert.deepEqual(s.padShape, [s.img.height, s.img.width]);
      assert.ok(Math.max(...s.imgShape) <= 160 && Math.min(...s.imgShape) <= 128);
      assert.ok(Math.max(...s.imgShape) === 160 || Math.min(...s.imgShape) === 128);
      assert.equal(s.gtMasks!.height, s.img.height);
      assert.equal(s.gtMasks!.width, s.img.width);
      assert.equal(numMasks(s.gtMasks!), s.gtLabels!.length);
      assertMasksMatchBoxes(s, `image ${i} seed ${seed}`);
      const again = (await ds.getSample(i, new Rng(seed)))!;
      assert.equal(again.flip, s.flip);
      assert.deepEqual(again.gtBboxes, s.gtBboxes);
      assert.deepEqual(again.img.data, s.img.data);
    }
  }
  assert.deepEqual([...flips].sort(), [false, true], 'seeds should exercise both flip outcomes');
});

test('CocoDataset: missing and corrupt images (skip / error)', async () => {
  const dir = path.join(root, 'bad_images');
  cpSync(imgDir, dir, { recursive: true });
  const d = readJson();
  unlinkSync(path.join(dir, d.images[0].file_name!));
  writeFileSync(path.join(dir, d.images[1].file_name!), Buffer.from('this is not a jpeg, just garbage bytes'));
  const lines: string[] = [];
  const ds = await CocoDataset.create({ annFile, imgDir: dir, pipeline: PIPELINE, log: (l) => lines.push(l) });
  assert.equal(await ds.getSample(0, new Rng(0)), null);
  assert.equal(await ds.getSample(1, new Rng(0)), null);
  assert.ok(await ds.getSample(2, new Rng(0)));
  assert.equal(ds.badSamples, 2);
  assert.equal(lines.length, 2);
  assert.match(lines[0], new RegExp(`^warning: skipping .*${d.images[0].file_name}: `));
  assert.match(lines[1], new RegExp(`^warning: skipping .*${d.images[1].file_name}: `));
  // A bad sample seen again is neither re-warned nor re-counted.
  assert.equal(await ds.getSample(0, new Rng(1)), null);
  assert.equal(ds.badSamples, 2);
  assert.equal(lines.length, 2);

  const strict = await CocoDataset.create({ annFile, imgDir: dir, pipeline: [], onBadSample: 'error', log: () => {} });
  await assert.rejects(strict.getSample(0, new Rng(0)), new RegExp(d.images[0].file_name!));
  await assert.rejects(strict.getSample(1, new Rng(0)), new RegExp(d.images[1].file_name!));
  assert.ok(await strict.getSample(2, new Rng(0)));
});

test('CocoDataset: unknown category ids are ignored with one warning; images left without known ones are filtered', async () => {
  const d = readJson();
  const img1 = d.images[0].id;
  const file = writeAnn('unknown_cat.json', (j) => {
    for (const a of j.annotations) if (a.image_id === img1) a.category_id = 99;
    // One unknown annotation on an image that keeps valid ones.
    const other = j.annotations.find((a) => a.image_id === d.images[5].id)!;
    other.category_id = 77;
  });
  const lines: string[] = [];
  const ds = await CocoDataset.create({ annFile: file, imgDir, pipeline: [], log: (l) => lines.push(l) });
  assert.equal(lines.length, 1);
  assert.match(lines[0], /unknown_cat\.json.*category ids not in 'categories' \((99, 77|77, 99)\).*ignored/);
  assert.equal(ds.length, 5);
  assert.ok(!ds.images.some((im) => im.id === img1));
  const idx = ds.images.findIndex((im) => im.id === d.images[5].id);
  const s = (await ds.getSample(idx, new Rng(0)))!;
  const known = d.annotations.filter((a) => a.image_id === d.images[5].id && !a.iscrowd).length - 1;
  assert.equal(s.gtLabels!.length, known);
  assert.equal(ds.badSamples, 0);
});

test('CocoDataset: a polygon with fewer than 3 points makes the sample bad', async () => {
  const d = readJson();
  const ann = d.annotations.find((a) => Array.isArray(a.segmentation) && !a.iscrowd)!;
  const file = writeAnn('two_point_poly.json', (j) => {
    j.annotations.find((a) => a.id === ann.id)!.segmentation = [[10, 10, 20, 20]];
  });
  const idx = d.images.findIndex((im) => im.id === ann.image_id);
  const lines: string[] = [];
  const ds = await CocoDataset.create({ annFile: file, imgDir, pipeline: [], log: (l) => lines.push(l) });
  assert.equal(await ds.getSample(idx, new Rng(0)), null);
  assert.equal(ds.badSamples, 1);
  assert.equal(lines.length, 1);
  assert.match(lines[0], new RegExp(`^warning: skipping .*${d.images[idx].file_name}: annotation id ${ann.id} has a polygon with 2 point\\(s\\) \\(at least 3 needed\\)`));
  const strict = await CocoDataset.create({ annFile: file, imgDir, pipeline: [], onBadSample: 'error' });
  await assert.rejects(strict.getSample(idx, new Rng(0)), new RegExp(`${d.images[idx].file_name}.*annotation id ${ann.id}`));
});

test('CocoDataset: boxes outside the image / of zero size leave no valid box -> bad sample', async () => {
  const d = readJson();
  const id = d.images[0].id;
  const file = writeAnn('bad_boxes.json', (j) => {
    const anns = j.annotations.filter((a) => a.image_id === id);
    anns.forEach((a, k) => { a.bbox = k % 2 === 0 ? [1000, 1000, 10, 10] : [5, 5, 0, 8]; });
  });
  const lines: string[] = [];
  const ds = await CocoDataset.create({ annFile: file, imgDir, pipeline: [], log: (l) => lines.push(l) });
  assert.equal(ds.length, 6); // the image has annotations, so _filter_imgs keeps it
  assert.equal(await ds.getSample(0, new Rng(0)), null);
  assert.equal(ds.badSamples, 1);
  assert.match(lines[0], /^warning: skipping .*000001\.jpg: no valid box left/);
  // Without filterEmptyGt the sample is kept, empty.
  const lax = await CocoDataset.create({ annFile: file, imgDir, pipeline: [], filterEmptyGt: false });
  const s = (await lax.getSample(0, new Rng(0)))!;
  assert.equal(s.gtBboxes!.length, 0);
  assert.equal(lax.badSamples, 0);
});

test('CocoDataset: an empty annotation list fails at construction naming the file (unless filterEmptyGt=false / testMode)', async () => {
  const file = writeAnn('empty_anns.json', (j) => { j.annotations = []; });
  await assert.rejects(CocoDataset.create({ annFile: file, imgDir, pipeline: [] }), /no valid images left in .*empty_anns\.json/);
  const lax = await CocoDataset.create({ annFile: file, imgDir, pipeline: [], filterEmptyGt: false });
  assert.equal(lax.length, 6);
  const s = (await lax.getSample(0, new Rng(0)))!;
  assert.equal(s.gtBboxes!.length, 0);
  assert.equal(numMasks(s.gtMasks!), 0);
  const test_ = await CocoDataset.create({ annFile: file, imgDir, pipeline: [], testMode: true });
  assert.equal(test_.length, 6);
  assert.equal((await test_.getSample(0, new Rng(0)))!.gtBboxes, undefined);
  const noImages = writeAnn('no_images.json', (j) => { j.images = []; j.annotations = []; });
  await assert.rejects(CocoDataset.create({ annFile: noImages, imgDir, pipeline: [] }), /no_images\.json has no images/);
  await assert.rejects(CocoDataset.create({ annFile: path.join(root, 'nope.json'), imgDir, pipeline: [] }), /nope\.json/);
});

/** The raw label PNG of a semantic sample. */
async function rawLabel(stem: string): Promise<{ data: Uint8Array; w: number; h: number }> {
  const { data, info } = await sharp(path.join(segAnnDir, `${stem}.png`)).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data), w: info.width, h: info.height };
}

test('reduceZeroLabel: 0 -> 255, k -> k - 1, 255 stays', () => {
  assert.deepEqual([...reduceZeroLabel(Uint8Array.from([0, 1, 3, 6, 254, 255]))], [255, 0, 2, 5, 253, 255]);
});

test('SegDataset (shapes preset): reduce_zero_label on known pixels, flip alignment, Pad seg value 255', async () => {
  const ds = await ShapesSegDataset.create({ imgDir: segImgDir, annDir: segAnnDir, pipeline: [] });
  assert.equal(ds.length, 6);
  assert.deepEqual(ds.classes, [...SHAPES_SEG_CLASSES]);
  assert.equal(ds.reduceZeroLabel, true);
  // Find an image whose label has both a 0 (ignore) and a shape label k >= 2 (class k - 1).
  let idx = -1, p0 = -1, p3 = -1, k3 = -1;
  for (let i = 0; i < ds.length && idx < 0; i++) {
    const raw = await rawLabel(ds.pairs[i].stem);
    const a = raw.data.indexOf(0), b = raw.data.findIndex((v) => v >= 2 && v <= 6);
    if (a >= 0 && b >= 0) { idx = i; p0 = a; p3 = b; k3 = raw.data[b]; }
  }
  assert.ok(idx >= 0, 'some label map should contain 0 and a shape');
  const s = (await ds.getSample(idx, new Rng(0)))!;
  assert.equal(s.gtSegMap![p0], 255);
  assert.equal(s.gtSegMap![p3], k3 - 1);
  const raw = await rawLabel(ds.pairs[idx].stem);
  assert.ok(s.gtSegMap!.every((v, k) => v === (raw.data[k] === 0 ? 255 : raw.data[k] - 1)));

  // Horizontal flip moves image and label together.
  const flipDs = await ShapesSegDataset.create({ imgDir: segImgDir, annDir: segAnnDir, pipeline: [{ type: 'RandomFlip', prob: 1 }] });
  const f = (await flipDs.getSample(idx, new Rng(0)))!;
  assert.equal(f.flip, true);
  const img = await loadImage(ds.pairs[idx].imgPath);
  const { w } = raw;
  const [y, x] = [Math.floor(p3 / w), p3 % w];
  const q = y * w + (w - 1 - x);
  assert.equal(f.gtSegMap![q], k3 - 1);
  for (let c = 0; c < 3; c++) assert.equal(f.img.data[q * 3 + c], img.img.data[p3 * 3 + c]);

  // Pad fills the seg map with 255.
  const padDs = await ShapesSegDataset.create({ imgDir: segImgDir, annDir: segAnnDir, pipeline: [{ type: 'Pad', size: [128, 128] }] });
  const p = (await padDs.getSample(idx, new Rng(0)))!;
  assert.deepEqual([p.img.height, p.img.width], [128, 128]);
  assert.equal(p.gtSegMap![127 * 128 + 127], 255);
  assert.equal(p.gtSegMap![Math.floor(p3 / w) * 128 + (p3 % w)], k3 - 1);
  assert.equal(p.gtSegMap![Math.floor(p0 / w) * 128 + (p0 % w)], 255);
  assert.equal(ds.badSamples, 0);
});

test('SegDataset: no reduce_zero_label keeps labels; out-of-range labels are bad samples', async () => {
  const lines: string[] = [];
  const ds = await SegDataset.create({
    imgDir: segImgDir, annDir: segAnnDir, classes: ['ignore', 'ground', ...SHAPE_NAMES], pipeline: [], log: (l) => lines.push(l),
  });
  const s = (await ds.getSample(0, new Rng(0)))!;
  const raw = await rawLabel(ds.pairs[0].stem);
  assert.deepEqual(s.gtSegMap, raw.data);
  // Only 3 classes: labels up to 6 are out of range.
  const few = await SegDataset.create({ imgDir: segImgDir, annDir: segAnnDir, classes: ['a', 'b', 'c'], pipeline: [], log: (l) => lines.push(l) });
  assert.equal(await few.getSample(0, new Rng(0)), null);
  assert.match(lines.at(-1)!, /^warning: skipping .*000001\.jpg: label .*000001\.png has value \d+, not a class index < 3 nor 255/);
  assert.equal(few.badSamples, 1);
});

test('ADE20KDataset: 150 MMSeg classes and palette, reduce_zero_label', async () => {
  assert.equal(ADE20K_CLASSES.length, 150);
  assert.equal(ADE20K_PALETTE.length, 150);
  assert.equal(ADE20K_CLASSES[0], 'wall');
  assert.equal(ADE20K_CLASSES[149], 'flag');
  assert.equal(new Set(ADE20K_CLASSES).size, 150);
  // The shapes set has ADE20K's layout, so the preset reads it.
  const ds = await ADE20KDataset.create({ imgDir: segImgDir, annDir: segAnnDir, pipeline: [] });
  assert.ok(ds instanceof ADE20KDataset && ds instanceof SegDataset);
  assert.equal(ds.classes.length, 150);
  assert.equal(ds.reduceZeroLabel, true);
  assert.deepEqual([ds.imgSuffix, ds.segMapSuffix], ['.jpg', '.png']);
  const s = (await ds.getSample(0, new Rng(0)))!;
  assert.ok(s.gtSegMap!.every((v) => v === 255 || v <= 5));
});

test('SegDataset: missing label files (skip lists them and skips the samples; error fails listing the stems)', async () => {
  const dir = path.join(root, 'ade_missing');
  cpSync(path.join(root, 'ade'), dir, { recursive: true });
  const imgs = path.join(dir, 'images', 'training'), anns = path.join(dir, 'annotations', 'training');
  unlinkSync(path.join(anns, '000002.png'));
  unlinkSync(path.join(anns, '000005.png'));
  const lines: string[] = [];
  const ds = await ShapesSegDataset.create({ imgDir: imgs, annDir: anns, pipeline: [], log: (l) => lines.push(l) });
  assert.equal(ds.length, 6);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^warning: 2 of 6 images .* have no '\.png' label .*: 000002, 000005/);
  assert.equal(await ds.getSample(1, new Rng(0)), null);
  assert.ok(await ds.getSample(2, new Rng(0)));
  assert.equal(ds.badSamples, 1);
  assert.match(lines[1], /^warning: skipping .*000002\.jpg: no label file '000002\.png'/);
  await assert.rejects(
    ShapesSegDataset.create({ imgDir: imgs, annDir: anns, pipeline: [], onBadSample: 'error' }),
    /2 of 6 images .* have no '\.png' label .*: 000002, 000005/,
  );
  // A corrupt label is a bad sample too.
  writeFileSync(path.join(anns, '000003.png'), 'garbage');
  const lines2: string[] = [];
  const ds2 = await ShapesSegDataset.create({ imgDir: imgs, annDir: anns, pipeline: [], log: (l) => lines2.push(l) });
  assert.equal(await ds2.getSample(2, new Rng(0)), null);
  assert.match(lines2.at(-1)!, /^warning: skipping .*000003\.jpg: LoadAnnotations: cannot decode .*000003\.png/);
  const strictNoMissing = path.join(root, 'ade_empty_ann');
  cpSync(path.join(root, 'ade', 'images', 'training'), path.join(strictNoMissing, 'img'), { recursive: true });
  cpSync(path.join(root, 'ade', 'images', 'training'), path.join(strictNoMissing, 'ann'), { recursive: true }); // .jpg only: no labels
  await assert.rejects(ShapesSegDataset.create({ imgDir: path.join(strictNoMissing, 'img'), annDir: path.join(strictNoMissing, 'ann'), pipeline: [] }), /6 of 6 images/);
  await assert.rejects(ShapesSegDataset.create({ imgDir: path.join(root, 'nowhere'), annDir: anns, pipeline: [] }), /cannot list image folder .*nowhere/);
});

/** Awaits `p`, expecting a ConfigError; returns it. */
async function configError(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('buildDataset: ConfigErrors name the file, the full key path and the alternatives', async () => {
  const at = { file: 'configs/x.yaml', path: 'data.train' };
  const coco = { type: 'CocoDataset', ann_file: 'a.json', img_dir: 'imgs', pipeline: [] };
  // Unknown type.
  let e = await configError(buildDataset({ ...coco, type: 'CocoDatset' }, at));
  assert.equal(e.message, "configs/x.yaml: data.train.type: unknown dataset type 'CocoDatset'; known: CocoDataset, SegDataset, ADE20KDataset, ShapesSegDataset (did you mean 'CocoDataset'?)");
  assert.deepEqual(e.details, { file: 'configs/x.yaml', path: 'data.train.type', value: 'CocoDatset', allowed: ['CocoDataset', 'SegDataset', 'ADE20KDataset', 'ShapesSegDataset'] });
  e = await configError(buildDataset({ ann_file: 'a.json' }, at));
  assert.match(e.message, /^configs\/x\.yaml: data\.train\.type: expected a dataset type \(one of CocoDataset, .*\), got nothing$/);
  // Unknown key (camelCase is not a config key).
  e = await configError(buildDataset({ ...coco, ann_fle: 'a' }, at));
  assert.equal(e.message, "configs/x.yaml: data.train.ann_fle: unknown key 'ann_fle'; allowed: ann_file, img_dir, pipeline, filter_empty_gt, min_size, test_mode, on_bad_sample (did you mean 'ann_file'?)");
  assert.deepEqual(e.details.allowed, ['ann_file', 'img_dir', 'pipeline', 'filter_empty_gt', 'min_size', 'test_mode', 'on_bad_sample']);
  assert.equal(e.details.path, 'data.train.ann_fle');
  e = await configError(buildDataset({ type: 'ShapesSegDataset', img_dir: 'i', ann_dir: 'a', pipeline: [], reduce_zero_label: true }, at));
  assert.match(e.message, /data\.train\.reduce_zero_label: unknown key 'reduce_zero_label'; allowed: img_dir, ann_dir, pipeline, on_bad_sample$/);
  e = await configError(buildDataset({ ...coco, filterEmptyGt: false }, at));
  assert.match(e.message, /data\.train\.filterEmptyGt: unknown key .* \(did you mean 'filter_empty_gt'\?\)$/);
  // Wrong value types.
  e = await configError(buildDataset({ ...coco, filter_empty_gt: 3 }, at));
  assert.equal(e.message, 'configs/x.yaml: data.train.filter_empty_gt: expected true or false, got 3');
  assert.deepEqual(e.details, { file: 'configs/x.yaml', path: 'data.train.filter_empty_gt', value: 3, allowed: 'true or false' });
  e = await configError(buildDataset({ ...coco, on_bad_sample: 'skp' }, at));
  assert.match(e.message, /data\.train\.on_bad_sample: expected one of 'skip', 'error', got "skp" \(did you mean 'skip'\?\)$/);
  e = await configError(buildDataset({ type: 'SegDataset', img_dir: 'i', ann_dir: 'a', classes: ['a', 2], pipeline: [] }, at));
  assert.equal(e.message, 'configs/x.yaml: data.train.classes.1: expected a string, got 2');
  // The pipeline's errors carry the full path too.
  e = await configError(buildDataset({ ...coco, pipeline: [{ type: 'LoadImageFromFile' }, { type: 'Resize', scale: [8, 8], keep_ratio: 3 }] }, at));
  assert.equal(e.message, 'configs/x.yaml: data.train.pipeline.1.keep_ratio: expected true or false, got 3');
  e = await configError(buildDataset({ ...coco, pipeline: [{ type: 'Resize', scale: [8, 8], ratio_rnge: [0.5, 2] }] }, at));
  assert.match(e.message, /data\.train\.pipeline\.0\.ratio_rnge: unknown key 'ratio_rnge'; allowed: scale, keep_ratio, ratio_range \(did you mean 'ratio_range'\?\)$/);
  e = await configError(buildDataset({ ...coco, pipeline: [{ type: 'Flip' }] }, at));
  assert.equal(e.details.path, 'data.train.pipeline.0.type');
  assert.ok((e.details.allowed as string[]).includes('RandomFlip'));
  // Missing keys name the block.
  e = await configError(buildDataset({ type: 'ADE20KDataset', img_dir: 'i', pipeline: [] }, at));
  assert.match(e.message, /^configs\/x\.yaml: data\.train: missing required key 'ann_dir'/);
});

test('buildDataset: snake_case options reach the dataset; seg datasets expose their label files', async () => {
  const ds = await buildDataset({ type: 'CocoDataset', ann_file: annFile, img_dir: imgDir, pipeline: PIPELINE, min_size: 75, on_bad_sample: 'error' }, { path: 'd' });
  const direct = await CocoDataset.create({ annFile, imgDir, pipeline: PIPELINE, minSize: 75, onBadSample: 'error' });
  assert.ok(ds instanceof CocoDataset);
  assert.equal(ds.onBadSample, 'error');
  assert.equal(ds.length, direct.length);
  assert.deepEqual(ds.classes, direct.classes);
  const [a, b] = [await ds.getSample(0, new Rng(3)), await direct.getSample(0, new Rng(3))];
  assert.deepEqual(a!.img.data, b!.img.data);
  assert.deepEqual(a!.gtBboxes, b!.gtBboxes);
  assert.ok(!isSegLabelSource(ds));
  const seg = await buildDataset({ type: 'ShapesSegDataset', img_dir: segImgDir, ann_dir: segAnnDir, pipeline: [] }, { path: 'd' });
  assert.ok(isSegLabelSource(seg));
  assert.equal(seg.pairs.length, seg.length);
  assert.equal(seg.reduceZeroLabel, true);
  assert.deepEqual(seg.classes, SHAPES_SEG_CLASSES);
});
