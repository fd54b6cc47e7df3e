/** The synthetic shapes datasets: determinism, COCO validity, pixel/annotation agreement, the CLI. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { COCO } from '../src/coco/coco.ts';
import { area, decode, segmentationToRle, toBbox } from '../src/coco/mask.ts';
import type { CocoDataset } from '../src/coco/types.ts';
import { readLabelPng } from '../src/io/label_png.ts';
import { Rng } from '../src/nn/random.ts';
import {
  SHAPES_CATEGORIES, SHAPES_GENERATOR_VERSION, SHAPES_SEG_CLASSES, readShapesStamp, SHAPES_SEG_PALETTE, drawInstanceImage, drawSemanticImage, generateShapes,
} from '../src/datasets/shapes.ts';
import { SHAPE_CLASSES, makeShapeBatch } from '../src/datasets/shapes_classification.ts';
import { runTool } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-shapes-'));
const quiet = (): void => {};
const small = { train: 4, val: 2, minSize: 64, maxSize: 96, log: quiet };

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)))
    .sort();
}

test('same seed gives byte-identical files; another seed differs', async () => {
  const a = path.join(tmp, 'a'), b = path.join(tmp, 'b'), c = path.join(tmp, 'c');
  await generateShapes({ ...small, out: a, seed: 3 });
  await generateShapes({ ...small, out: b, seed: 3 });
  await generateShapes({ ...small, out: c, seed: 4 });
  const fa = filesUnder(a);
  assert.deepEqual(fa, filesUnder(b));
  assert.equal(fa.length, 3 + 6 + 6 + 6); // 2 COCO JSON + shapes.json, 6 COCO JPEGs, 6 ADE JPEGs + 6 PNGs
  for (const f of fa) assert.ok(readFileSync(path.join(a, f)).equals(readFileSync(path.join(b, f))), f);
  const differ = fa.filter((f) => !readFileSync(path.join(a, f)).equals(readFileSync(path.join(c, f))));
  assert.equal(differ.length, fa.length);
});

test('instance JSON is a valid COCO dataset with every category, all size ranges and crowd regions', async () => {
  const out = path.join(tmp, 'inst');
  // 60 images: about 1 in 10 holds a crowd region, so none at all is a 1-in-500 event for a generator change.
  const res = await generateShapes({ out, seed: 0, train: 60, val: 1, minSize: 128, maxSize: 200, what: ['instances'], log: quiet });
  assert.equal(res.semantic, undefined);
  const ds = JSON.parse(readFileSync(res.instances!.train, 'utf8')) as CocoDataset;
  const coco = new COCO(ds);
  assert.deepEqual(coco.getCatIds(), [1, 2, 3, 4, 5]);
  assert.deepEqual(ds.categories, SHAPES_CATEGORIES);
  assert.ok(ds.categories.every((c) => c.supercategory === 'shape'));
  for (const c of ds.categories) assert.ok(coco.getAnnIds({ catIds: c.id, iscrowd: false }).length > 0, c.name);
  const nonCrowd = ds.annotations.filter((a) => !a.iscrowd);
  assert.ok(nonCrowd.some((a) => a.area < 32 ** 2), 'small');
  assert.ok(nonCrowd.some((a) => a.area >= 32 ** 2 && a.area <= 96 ** 2), 'medium');
  assert.ok(nonCrowd.some((a) => a.area > 96 ** 2), 'large');
  const crowd = ds.annotations.filter((a) => a.iscrowd);
  assert.ok(crowd.length > 0, 'crowd regions');
  for (const a of crowd) assert.ok(Array.isArray((a.segmentation as { counts: unknown }).counts), 'crowd is uncompressed RLE');
  assert.ok(nonCrowd.some((a) => Array.isArray(a.segmentation)), 'polygons');
  assert.ok(nonCrowd.some((a) => !Array.isArray(a.segmentation) && a.category_id === 5), 'rings as RLE');
  const perImage = new Map<number, number>();
  for (const a of nonCrowd) perImage.set(a.image_id, (perImage.get(a.image_id) ?? 0) + 1);
  for (const img of ds.images) {
    const k = perImage.get(img.id) ?? 0;
    assert.ok(k >= 1 && k <= 8, `image ${img.id} has ${k} instances`);
    assert.ok(existsSync(path.join(out, 'coco', 'images', 'train', img.file_name!)));
  }
  for (const a of ds.annotations) {
    const img = coco.imgs.get(a.image_id)!;
    const rle = segmentationToRle(a.segmentation!, img.height, img.width);
    assert.equal(a.area, area(rle));
    assert.ok(a.area > 0);
    const bb = toBbox(rle);
    for (let k = 0; k < 4; k++) assert.ok(Math.abs(a.bbox[k] - bb[k]) <= 1, `bbox ${a.bbox} vs ${bb}`);
  }
  const sizes = (await sharp(path.join(out, 'coco', 'images', 'train', ds.images[0].file_name!)).metadata());
  assert.deepEqual([sizes.width, sizes.height, sizes.format], [ds.images[0].width, ds.images[0].height, 'jpeg']);
});

test('instance pixels: each visible mask is painted exactly in its colour; masks are disjoint', () => {
  const rng = new Rng(11);
  let checked = 0;
  for (let n = 0; n < 12; n++) {
    const w = 100 + n * 7, h = 90 + n * 5;
    const img = drawInstanceImage(rng, w, h);
    assert.equal(img.pixels.length, w * h * 3);
    const owner = new Int32Array(w * h).fill(-1);
    img.annotations.forEach((a, k) => {
      const m = decode(segmentationToRle(a.segmentation, h, w));
      for (let i = 0; i < m.length; i++) {
        if (!m[i]) continue;
        assert.equal(owner[i], -1, 'visible masks overlap');
        owner[i] = k;
        const p = [img.pixels[i * 3], img.pixels[i * 3 + 1], img.pixels[i * 3 + 2]];
        if (p[0] !== a.color[0] || p[1] !== a.color[1] || p[2] !== a.color[2]) assert.fail(`pixel ${i} is ${p}, expected ${a.color}`);
        checked++;
      }
    });
  }
  assert.ok(checked > 10000);
});

test('semantic: labels in 0..6, PNG equals the map, shape pixels carry a colour of their class', async () => {
  const rng = new Rng(5);
  for (let n = 0; n < 6; n++) {
    const img = drawSemanticImage(rng, 80 + n, 70 + 2 * n);
    const seen = new Set(img.label);
    for (const v of seen) assert.ok(v >= 0 && v <= 6, `label ${v}`);
    assert.ok(seen.has(1));
    for (let i = 0; i < img.label.length; i++) {
      const l = img.label[i];
      if (l < 2) continue;
      const p = img.pixels.subarray(i * 3, i * 3 + 3);
      const ok = img.shapes.some((s) => s.label === l && s.color[0] === p[0] && s.color[1] === p[1] && s.color[2] === p[2]);
      if (!ok) assert.fail(`pixel ${i} (label ${l}) is ${[...p]}, not a colour of a shape of that class`);
    }
  }
  assert.equal(SHAPES_SEG_CLASSES.length, 6);
  assert.equal(SHAPES_SEG_PALETTE.length, 6);

  const out = path.join(tmp, 'sem');
  const res = await generateShapes({ out, seed: 9, train: 3, val: 1, minSize: 60, maxSize: 90, what: ['semantic'], log: quiet });
  assert.equal(res.instances, undefined);
  const files = readdirSync(res.semantic!.train.annotations).sort();
  assert.deepEqual(files, ['000001.png', '000002.png', '000003.png']);
  for (const f of files) {
    const lab = await readLabelPng(path.join(res.semantic!.train.annotations, f));
    const meta = await sharp(path.join(res.semantic!.train.annotations, f)).metadata();
    assert.equal(meta.channels, 1);
    const jpg = await sharp(path.join(res.semantic!.train.images, f.replace('.png', '.jpg'))).metadata();
    assert.deepEqual([jpg.width, jpg.height], [lab.width, lab.height]);
    for (const v of lab.data) assert.ok(v <= 6);
  }
  // The stamp records the generator version and the options, so stale folders can be told apart.
  assert.deepEqual(readShapesStamp(out), {
    generator_version: SHAPES_GENERATOR_VERSION, seed: 9, train: 3, val: 1, min_size: 60, max_size: 90, what: ['semantic'],
  });
  assert.equal(readShapesStamp(path.join(tmp, 'no-such-folder')), null);
});

test('semantic PNG read back equals the in-memory label map', async () => {
  const img = drawSemanticImage(new Rng(2), 77, 63);
  const file = path.join(tmp, 'one.png');
  await sharp(img.label, { raw: { width: 77, height: 63, channels: 1 } }).toColourspace('b-w').png().toFile(file);
  const lab = await readLabelPng(file);
  assert.deepEqual([lab.width, lab.height], [77, 63]);
  assert.deepEqual(Array.from(lab.data), Array.from(img.label));
});

test('make_shapes CLI writes both layouts and rejects bad options', () => {
  const out = path.join(tmp, 'cli');
  const run = (args: string[]) => runTool('make_shapes.ts', args);
  const r = run(['--out', out, '--train', '2', '--val', '1', '--min-size', '64', '--max-size', '80']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim().split('\n').length, 4, r.stdout);
  assert.match(r.stdout, /instances train: 2 images/);
  for (const f of ['coco/annotations/instances_train.json', 'coco/annotations/instances_val.json', 'coco/images/train/000002.jpg',
    'coco/images/val/000001.jpg', 'ade/images/training/000002.jpg', 'ade/annotations/training/000002.png',
    'ade/images/validation/000001.jpg', 'ade/annotations/validation/000001.png']) {
    assert.ok(existsSync(path.join(out, f)), f);
  }
  const bad = run(['--out', out, '--what', 'panoptic']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: .*--what/);
});

test('classification tiles: deterministic, every class, one shape of bright pixels on dark ground', () => {
  const a = makeShapeBatch(40, 48, new Rng(3));
  const b = makeShapeBatch(40, 48, new Rng(3));
  assert.deepEqual(a.shape, [40, 48, 48, 3]);
  assert.deepEqual(a.images, b.images);
  assert.deepEqual(a.labels, b.labels);
  assert.deepEqual([...new Set(a.labels)].sort(), SHAPE_CLASSES.map((_, i) => i));
  const px = 48 * 48;
  for (let n = 0; n < 40; n++) {
    let bright = 0;
    for (let i = 0; i < px; i++) {
      const rgb = a.images.subarray((n * px + i) * 3, (n * px + i) * 3 + 3);
      for (const v of rgb) assert.ok(v >= 0 && v <= 1);
      // Shapes use channels >= 150/255 and the ground <= 90 + texture; nothing should sit between.
      if (Math.min(...rgb) >= 150 / 255) bright++;
    }
    // Circumradius 0.15..0.45 of the side: > 1% of the tile for the thinnest class, < π·0.45² for a circle.
    assert.ok(bright > 0.01 * px && bright < Math.PI * 0.45 ** 2 * px, `tile ${n}: ${bright} shape pixels`);
  }
});
