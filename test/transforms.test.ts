/**
 * Data transforms: geometry consistency of boxes, masks (polygons and bitmaps) and seg maps through
 * Resize / RandomFlip / RandomCrop / Pad, size arithmetic, determinism under a seed, Normalize,
 * PhotoMetricDistortion, loading, and buildPipeline's errors. Samples are built in memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../src/nn/random.ts';
import { buildPipeline, clipPolygon, cropSample, flipSample, loadAnnotations, loadImage, makeSample, multiScaleShortSide, Normalize, Pad, PhotoMetricDistortion, RandomCrop, RandomFlip, rescaleSize, Resize, resizeSampleTo, rgbToHsv, hsvToRgb, runPipeline, type Sample, type Transform } from '../src/datasets/transforms/index.ts';
import { ConfigError } from '../src/config/errors.ts';
import { maskBoundingBoxes, masksToBitmaps, type InstanceMasks } from '../src/structures/masks.ts';

const W = 64, H = 48;
/** Instances: [x1, y1, x2, y2] rectangles, plus one diamond polygon. */
const RECTS = [[4, 6, 24, 30], [30, 10, 60, 20], [10, 34, 50, 46]];
const DIAMOND = [40, 24, 52, 30, 40, 40, 28, 30]; // box [28, 24, 52, 40]

/** A sample whose red channel is 40 * class and whose seg map holds the class (0 background). */
function makeTestSample(maskKind: 'polygons' | 'bitmaps' = 'polygons'): Sample {
  const img = new Uint8Array(W * H * 3);
  const seg = new Uint8Array(W * H);
  const polys: number[][][] = RECTS.map(([a, b, c, d]) => [[a, b, c, b, c, d, a, d]]);
  polys.push([DIAMOND]);
  const boxes = [...RECTS.flat(), 28, 24, 52, 40];
  RECTS.forEach(([a, b, c, d], k) => {
    for (let y = b; y < d; y++) for (let x = a; x < c; x++) seg[y * W + x] = k + 1;
  });
  for (let i = 0; i < W * H; i++) {
    img[i * 3] = seg[i] * 40;
    img[i * 3 + 1] = (i * 7) & 255;
    img[i * 3 + 2] = 100;
  }
  let masks: InstanceMasks = { kind: 'polygons', height: H, width: W, polys };
  // Bitmaps: the boxes are the rasterised masks' own (the diamond's tips may lose a pixel).
  if (maskKind === 'bitmaps') masks = masksToBitmaps(masks);
  return makeSample({ data: img, height: H, width: W, channels: 3 }, {
    gtBboxes: maskKind === 'bitmaps' ? maskBoundingBoxes(masks) : Float32Array.from(boxes),
    gtLabels: Int32Array.from([0, 1, 2, 3]),
    gtMasks: masks,
    gtSegMap: seg,
  });
}

function assertBoxesClose(a: Float32Array, b: Float32Array, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= tol, `${what}: [${i}] ${a[i]} vs ${b[i]}`);
}

/**
 * Fraction of labelled pixels whose red value is within 20 of 40 * class (bilinear blending at the
 * block edges is tolerated; a misaligned seg map scores far lower).
 */
function alignment(s: Sample): number {
  const seg = s.gtSegMap!;
  let ok = 0, n = 0;
  for (let i = 0; i < seg.length; i++) {
    if (seg[i] === 255) continue;
    n++;
    if (Math.abs(s.img.data[i * 3] - seg[i] * 40) <= 20) ok++;
  }
  return ok / n;
}

test('Resize output size for keep_ratio, boxes scaled, multi-scale list', () => {
  assert.deepEqual(rescaleSize(640, 480, [1333, 800]), [1067, 800]);
  assert.deepEqual(rescaleSize(480, 640, [1333, 800]), [800, 1067]);
  assert.deepEqual(rescaleSize(2000, 500, [1333, 800]), [1333, 333]);
  const img = new Uint8Array(640 * 480 * 3).fill(7);
  const s = makeSample({ data: img, width: 640, height: 480, channels: 3 }, { gtBboxes: Float32Array.from([10, 20, 630, 470]) });
  const r = new Resize({ scale: [1333, 800] }).apply(s, { rng: new Rng(0) });
  assert.equal(r.img.width, 1067);
  assert.equal(r.img.height, 800);
  assert.deepEqual(r.imgShape, [800, 1067]);
  assert.ok(r.img.data.every((v) => v === 7));
  const fx = 1067 / 640, fy = 800 / 480;
  assertBoxesClose(r.gtBboxes!, Float32Array.from([10 * fx, 20 * fy, 630 * fx, 470 * fy]), 1e-3, 'boxes');
  assert.ok(Math.abs(r.scaleFactor[0] - fx) < 1e-9 && Math.abs(r.scaleFactor[1] - fy) < 1e-9);
  // keepRatio false: exact size.
  const s2 = makeTestSample();
  const r2 = new Resize({ scale: [32, 96], keepRatio: false }).apply(s2, { rng: new Rng(0) });
  assert.deepEqual([r2.img.width, r2.img.height], [32, 96]);
  const ms = multiScaleShortSide();
  assert.equal(ms.length, 11);
  assert.deepEqual(ms[0], [1333, 480]);
  assert.deepEqual(ms[10], [1333, 800]);
  // A random scale from the list, deterministic by seed.
  const rz = new Resize({ scale: ms });
  const pick = (seed: number) => rz.chooseScale(new Rng(seed));
  assert.deepEqual(pick(3), pick(3));
  assert.ok(ms.some((m) => m[1] === pick(3)[1]));
  // ratioRange.
  const rr = new Resize({ scale: [100, 50], ratioRange: [0.5, 2] });
  for (let seed = 0; seed < 20; seed++) {
    const [w, h] = rr.chooseScale(new Rng(seed));
    assert.ok(w >= 50 && w <= 200 && h >= 25 && h <= 100);
  }
});

test('bilinear resize follows half-pixel centres (cv2.INTER_LINEAR)', () => {
  // A 1x4 ramp 0, 100, 200, 250 upscaled to 1x8: src = (d + 0.5) / 2 - 0.5.
  const data = new Float32Array(4 * 3);
  [0, 100, 200, 250].forEach((v, i) => data.fill(v, i * 3, i * 3 + 3));
  const s = makeSample({ data, width: 4, height: 1, channels: 3 });
  const r = resizeSampleTo(s, 8, 1);
  const got = Array.from({ length: 8 }, (_, i) => r.img.data[i * 3]);
  assert.deepEqual(got, [0, 25, 75, 125, 175, 212.5, 237.5, 250]);
});

for (const kind of ['polygons', 'bitmaps'] as const) {
  test(`masks follow boxes through Resize + Flip + Crop (${kind})`, () => {
    const pipe: Transform[] = [
      new Resize({ scale: [96, 80] }),
      new RandomFlip({ prob: 0.5 }),
      new RandomCrop({ cropSize: [50, 60] }),
    ];
    let checked = 0;
    for (let seed = 0; seed < 12; seed++) {
      const out = runPipeline(pipe, makeTestSample(kind), { rng: new Rng(seed) });
      if (!out) continue;
      checked++;
      const m = out.gtMasks!;
      assert.equal(m.kind, kind);
      assert.equal(m.width, out.img.width);
      assert.equal(m.height, out.img.height);
      const n = out.gtBboxes!.length / 4;
      assert.equal(out.gtLabels!.length, n);
      assert.equal(kind === 'polygons' ? (m as { polys: unknown[] }).polys.length : (m as { masks: unknown[] }).masks.length, n);
      assertBoxesClose(maskBoundingBoxes(m), out.gtBboxes!, 1, `seed ${seed} mask boxes`);
      if (kind === 'polygons') assertBoxesClose(maskBoundingBoxes(masksToBitmaps(m)), out.gtBboxes!, 1, `seed ${seed} rasterised`);
      assert.ok(alignment(out) > 0.95, `seed ${seed}: seg/image alignment ${alignment(out)}`);
    }
    assert.ok(checked >= 6);
  });
}

test('seg map and image stay aligned at a known pixel through each transform', () => {
  const rng = { rng: new Rng(0) };
  // Pixel (x=14, y=18) is inside rect 1 (class 1), pixel (45, 15) in rect 2.
  let s = makeTestSample();
  const at = (t: Sample, x: number, y: number) => [t.img.data[(y * t.img.width + x) * 3], t.gtSegMap![y * t.img.width + x]];
  assert.deepEqual(at(s, 14, 18), [40, 1]);
  s = resizeSampleTo(s, 128, 96); // x2
  assert.deepEqual(at(s, 28, 36), [40, 1]);
  assert.deepEqual(at(s, 90, 30), [80, 2]);
  s = flipSample(s, 'horizontal');
  assert.deepEqual(at(s, 127 - 28, 36), [40, 1]);
  assert.deepEqual(at(s, 127 - 90, 30), [80, 2]);
  s = cropSample(s, { x0: 20, y0: 10, w: 90, h: 70 })!;
  assert.deepEqual(at(s, 127 - 28 - 20, 36 - 10), [40, 1]);
  assert.deepEqual(at(s, 127 - 90 - 20, 30 - 10), [80, 2]);
  s = new Pad({ sizeDivisor: 32 }).apply(s);
  assert.deepEqual(at(s, 127 - 28 - 20, 36 - 10), [40, 1]);
  assert.ok(alignment(s) > 0.95);
  // A seg map left unflipped is caught.
  const bad = flipSample(makeTestSample(), "horizontal");
  bad.gtSegMap = makeTestSample().gtSegMap;
  assert.ok(alignment(bad) < 0.8, `misaligned scores ${alignment(bad)}`);
  // Vertical flip too.
  let v = flipSample(makeTestSample(), 'vertical');
  assert.deepEqual(at(v, 14, H - 1 - 18), [40, 1]);
  v = new RandomFlip({ prob: 1, direction: 'diagonal' }).apply(makeTestSample(), rng);
  assert.deepEqual(at(v, W - 1 - 14, H - 1 - 18), [40, 1]);
  assert.equal(v.flipDirection, 'diagonal');
});

test('RandomFlip boxes: x1 = w - x2', () => {
  const s = flipSample(makeTestSample(), 'horizontal');
  assert.deepEqual(Array.from(s.gtBboxes!.subarray(0, 4)), [W - 24, 6, W - 4, 30]);
  assert.equal(s.flip, true);
  const n = new RandomFlip({ prob: 0 }).apply(makeTestSample(), { rng: new Rng(1) });
  assert.equal(n.flip, false);
});

test('Pad values, padShape divisible, masks padded', () => {
  const s = new Pad({ sizeDivisor: 32, padVal: 9 }).apply(makeTestSample('bitmaps'));
  assert.deepEqual(s.padShape, [64, 64]);
  assert.deepEqual(s.imgShape, [H, W]);
  assert.equal(s.img.height, 64);
  assert.equal(s.img.data[(60 * 64 + 10) * 3 + 1], 9);
  assert.equal(s.gtSegMap![60 * 64 + 10], 255);
  assert.equal(s.gtSegMap![18 * 64 + 14], 1);
  const m = s.gtMasks!;
  assert.ok(m.kind === 'bitmaps' && m.masks[0].length === 64 * 64 && m.height === 64);
  assert.equal(m.masks[0][60 * 64 + 10], 0);
  const f = new Pad({ size: [50, 70], segPadVal: 7 }).apply(makeTestSample());
  assert.deepEqual(f.padShape, [50, 70]);
  assert.equal(f.gtSegMap![49 * 70 + 69], 7);
  assert.equal(f.gtMasks!.width, 70);
  assert.throws(() => new Pad({}), /exactly one/);
});

test('RandomCrop drops empty instances, returns null without instances, allowNegativeCrop', () => {
  const s = makeTestSample();
  const c = cropSample(s, { x0: 0, y0: 0, w: 26, h: 32 })!;
  // Only rect 0 remains (rect 1 starts at x=30, rect 2 at y=34, the diamond at x=28).
  assert.deepEqual(Array.from(c.gtLabels!), [0]);
  assert.deepEqual(Array.from(c.gtBboxes!), [4, 6, 24, 30]);
  assert.equal(cropSample(makeTestSample(), { x0: 0, y0: 0, w: 3, h: 3 }), null);
  const kept = cropSample(makeTestSample(), { x0: 0, y0: 0, w: 3, h: 3 }, true, true)!;
  assert.equal(kept.gtBboxes!.length, 0);
  assert.equal(kept.img.width, 3);
  // cropSize larger than the image is capped.
  const big = new RandomCrop({ cropSize: [500, 500] }).apply(makeTestSample(), { rng: new Rng(0) })!;
  assert.deepEqual([big.img.height, big.img.width], [H, W]);
  // Sutherland–Hodgman clipping.
  assert.deepEqual(clipPolygon([-5, -5, 5, -5, 5, 5, -5, 5], 10, 10), [0, 0, 5, 0, 5, 5, 0, 5]);
  assert.equal(clipPolygon([20, 20, 30, 20, 30, 30], 10, 10).length, 0);
});

test('RandomCrop cat_max_ratio (segmentation)', () => {
  // 100x100 map, class 0 everywhere but a 50x50 block of class 1 in the corner and an ignore column.
  const n = 100;
  const seg = new Uint8Array(n * n);
  for (let y = 0; y < 50; y++) for (let x = 0; x < 50; x++) seg[y * n + x] = 1;
  for (let y = 0; y < n; y++) seg[y * n + 99] = 255;
  const mk = () => makeSample({ data: new Uint8Array(n * n * 3), width: n, height: n, channels: 3 }, { gtSegMap: seg.slice() });
  const crop = new RandomCrop({ cropSize: [40, 40], catMaxRatio: 0.75 });
  let good = 0, goodPlain = 0;
  const ratio = (m: Uint8Array) => {
    const cnt = new Map<number, number>();
    for (const v of m) if (v !== 255) cnt.set(v, (cnt.get(v) ?? 0) + 1);
    const vals = [...cnt.values()];
    return vals.length > 1 ? Math.max(...vals) / vals.reduce((a, b) => a + b) : 1;
  };
  for (let seed = 0; seed < 40; seed++) {
    const out = crop.apply(mk(), { rng: new Rng(seed) })!;
    assert.equal(out.gtSegMap!.length, 1600);
    if (ratio(out.gtSegMap!) < 0.75) good++;
    const plain = new RandomCrop({ cropSize: [40, 40] }).apply(mk(), { rng: new Rng(seed) })!;
    if (ratio(plain.gtSegMap!) < 0.75) goodPlain++;
  }
  assert.ok(good > goodPlain, `cat_max_ratio helps: ${good} vs ${goodPlain}`);
  assert.ok(good >= 30, `good crops ${good} of 40 (plain ${goodPlain})`);
});

test('determinism: same seed same output, different seeds differ', () => {
  const pipe = buildPipeline([
    { type: 'Resize', scale: multiScaleShortSide([32, 64], 8, 100) },
    { type: 'RandomFlip', prob: 0.5 },
    { type: 'PhotoMetricDistortion' },
    { type: 'RandomCrop', crop_size: [30, 30], allow_negative_crop: true },
    { type: 'Normalize' },
    { type: 'Pad', size_divisor: 16 },
  ]).transforms;
  const run = (seed: number) => runPipeline(pipe, makeTestSample(), { rng: new Rng(seed) })!;
  const a = run(5), b = run(5);
  assert.deepEqual(a.img.data, b.img.data);
  assert.deepEqual(a.gtBboxes, b.gtBboxes);
  assert.deepEqual(a.gtSegMap, b.gtSegMap);
  const outs = new Set([1, 2, 3, 4, 6].map((sd) => Buffer.from(run(sd).img.data.buffer).toString('base64')));
  outs.add(Buffer.from(a.img.data.buffer).toString('base64'));
  assert.ok(outs.size >= 5);
  assert.ok(a.img.data instanceof Float32Array);
  assert.equal(a.padShape![0] % 16, 0);
  assert.equal(a.padShape![1] % 16, 0);
});

test('Normalize values', () => {
  const s = makeSample({ data: Uint8Array.from([123, 116, 103, 255, 0, 10]), width: 2, height: 1, channels: 3 });
  const r = new Normalize().apply(s);
  const exp = [(123 - 123.675) / 58.395, (116 - 116.28) / 57.12, (103 - 103.53) / 57.375, (255 - 123.675) / 58.395, (0 - 116.28) / 57.12, (10 - 103.53) / 57.375];
  exp.forEach((e, i) => assert.ok(Math.abs(r.img.data[i] - e) < 1e-5));
  const t = new Normalize({ mean: [0, 0, 0], std: [1, 1, 1], toRgb: true }).apply(
    makeSample({ data: Uint8Array.from([1, 2, 3]), width: 1, height: 1, channels: 3 }),
  );
  assert.deepEqual(Array.from(t.img.data), [3, 2, 1]);
});

test('PhotoMetricDistortion: shape, range, identity with probabilities 0, HSV round trip', () => {
  const base = makeTestSample();
  const off = new PhotoMetricDistortion({ brightnessProb: 0, contrastProb: 0, saturationProb: 0, hueProb: 0, swapProb: 0 });
  const id = off.apply(makeTestSample(), { rng: new Rng(0) });
  assert.ok(id.img.data instanceof Float32Array);
  assert.deepEqual(Array.from(id.img.data), Array.from(base.img.data));
  // Saturation x1 and hue +0 through HSV give back the image (float error only).
  const rt = new PhotoMetricDistortion({ brightnessProb: 0, contrastProb: 0, saturationProb: 1, hueProb: 1, swapProb: 0, saturationRange: [1, 1], hueDelta: 0 })
    .apply(makeTestSample(), { rng: new Rng(0) });
  for (let i = 0; i < rt.img.data.length; i++) assert.ok(Math.abs(rt.img.data[i] - base.img.data[i]) < 1e-3);
  let changed = 0;
  for (let seed = 0; seed < 10; seed++) {
    const out = new PhotoMetricDistortion().apply(makeTestSample(), { rng: new Rng(seed) });
    assert.equal(out.img.data.length, W * H * 3);
    assert.deepEqual([out.img.width, out.img.height], [W, H]);
    for (const v of out.img.data) assert.ok(v >= 0 && v <= 255 && Number.isFinite(v));
    if (out.img.data.some((v, i) => Math.abs(v - base.img.data[i]) > 1e-3)) changed++;
  }
  assert.ok(changed >= 7);
  // OpenCV HSV convention, H in [0, 180): red 0, green 60, blue 120; a shift of 60 turns red green.
  assert.deepEqual(rgbToHsv(200, 0, 0), [0, 1, 200]);
  assert.deepEqual(rgbToHsv(0, 200, 0), [60, 1, 200]);
  assert.deepEqual(rgbToHsv(0, 0, 200), [120, 1, 200]);
  const [r, g, b] = hsvToRgb(60, 1, 200);
  assert.ok(Math.abs(r) < 1e-9 && Math.abs(g - 200) < 1e-9 && Math.abs(b) < 1e-9);
});

/** Runs `fn`, expecting a ConfigError; returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('buildPipeline: ConfigErrors name the file, the key path and the alternatives', () => {
  const at = { file: 'x.yaml', path: 'data.train.pipeline' };
  const KNOWN = ['LoadImage', 'LoadImageFromFile', 'LoadAnnotations', 'Resize', 'RandomFlip', 'RandomCrop', 'PhotoMetricDistortion', 'Normalize', 'Pad'];
  // Unknown type: the known ones, with a suggestion.
  let e = configError(() => buildPipeline([{ type: 'RandomFlip' }, { type: 'Resise', scale: [10, 10] }], at));
  assert.equal(e.message, `x.yaml: data.train.pipeline.1.type: unknown pipeline step type 'Resise'; known: ${KNOWN.join(', ')} (did you mean 'Resize'?)`);
  assert.deepEqual(e.details, { file: 'x.yaml', path: 'data.train.pipeline.1.type', value: 'Resise', allowed: KNOWN });
  // Unknown key: the allowed ones, with a suggestion; camelCase is not a config key.
  e = configError(() => buildPipeline([{ type: 'Resize', scale: [10, 10], keep_ratoi: true }], at));
  assert.equal(e.message, "x.yaml: data.train.pipeline.0.keep_ratoi: unknown key 'keep_ratoi'; allowed: scale, keep_ratio, ratio_range (did you mean 'keep_ratio'?)");
  assert.deepEqual(e.details.allowed, ['scale', 'keep_ratio', 'ratio_range']);
  e = configError(() => buildPipeline([{ type: 'Pad', sizeDivisor: 32 }], at));
  assert.match(e.message, /pipeline\.0\.sizeDivisor: unknown key 'sizeDivisor'; allowed: size_divisor, size, pad_val, seg_pad_val \(did you mean 'size_divisor'\?\)/);
  // Wrong value type and range.
  e = configError(() => buildPipeline([{ type: 'Resize', scale: [10, 10], keep_ratio: 3 }], at));
  assert.equal(e.message, 'x.yaml: data.train.pipeline.0.keep_ratio: expected true or false, got 3');
  assert.deepEqual(e.details, { file: 'x.yaml', path: 'data.train.pipeline.0.keep_ratio', value: 3, allowed: 'true or false' });
  e = configError(() => buildPipeline([{ type: 'Resize', scale: [10, 10], ratio_range: [0.5, 'x'] }], at));
  assert.match(e.message, /^x\.yaml: data\.train\.pipeline\.0\.ratio_range\.1: expected a number > 0, got "x"$/);
  e = configError(() => buildPipeline([{ type: 'Pad', size_divisor: 0 }], at));
  assert.match(e.message, /pipeline\.0\.size_divisor: expected an integer >= 1, got 0/);
  e = configError(() => buildPipeline([{ type: 'RandomFlip', direction: 'horizontl' }], at));
  assert.match(e.message, /pipeline\.0\.direction: expected one of 'horizontal', 'vertical', 'diagonal', got "horizontl" \(did you mean 'horizontal'\?\)/);
  assert.deepEqual(e.details.allowed, ['horizontal', 'vertical', 'diagonal']);
  // A constraint checked by the constructor still names the entry.
  e = configError(() => buildPipeline([{ type: 'Pad' }], at));
  assert.equal(e.message, 'x.yaml: data.train.pipeline.0: Pad: give exactly one of size and size_divisor');
  e = configError(() => buildPipeline([{ type: 'Resize', scale: [[10, 10], [20, 20]], ratio_range: [0.5, 2] }], at));
  assert.match(e.message, /pipeline\.0: Resize: ratio_range needs a single scale/);
  // Not a list / not a dict / no type.
  assert.match(configError(() => buildPipeline({ type: 'Resize' }, at)).message, /^x\.yaml: data\.train\.pipeline: expected a list/);
  assert.match(configError(() => buildPipeline(['Resize'], at)).message, /^x\.yaml: data\.train\.pipeline\.0: expected a dict/);
  assert.match(configError(() => buildPipeline([{ scale: [1, 1] }], at)).message, /pipeline\.0\.type: expected a pipeline step type \(one of LoadImage, .*\), got nothing/);
  // Without a place, paths start at 'pipeline'.
  assert.match(configError(() => buildPipeline([{ type: 'Nope' }])).message, /^pipeline\.0\.type: unknown pipeline step type 'Nope'/);
  assert.throws(() => new Pad({}), /exactly one/);
  const p = buildPipeline([{ type: 'RandomFlip', prob: 1, direction: 'vertical' }]).transforms;
  assert.equal(p[0].name, 'RandomFlip');
  assert.deepEqual(buildPipeline([{ type: 'Pad', size_divisor: 32, pad_val: 3 }]).transforms[0], new Pad({ sizeDivisor: 32, padVal: 3 }));
});

test('loadImage / loadAnnotations', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tf-'));
  try {
    const raw = Buffer.alloc(4 * 3 * 3);
    raw[0] = 255; raw[(1 * 4 + 2) * 3 + 1] = 200;
    const p = path.join(dir, 'a.png');
    await sharp(raw, { raw: { width: 4, height: 3, channels: 3 } }).png().toFile(p);
    const s = await loadImage(p, { imageId: 7 });
    assert.deepEqual([s.img.width, s.img.height, s.imageId], [4, 3, 7]);
    assert.equal(s.img.data[0], 255);
    assert.equal(s.img.data[(1 * 4 + 2) * 3 + 1], 200);
    await assert.rejects(loadImage(path.join(dir, 'missing.png')), /missing\.png/);
    writeFileSync(path.join(dir, 'bad.jpg'), 'not an image');
    await assert.rejects(loadImage(path.join(dir, 'bad.jpg')), /bad\.jpg/);
    const big = makeSample({ data: new Uint8Array(W * H * 3), width: W, height: H, channels: 3 });
    loadAnnotations(big, [
      { id: 1, image_id: 1, category_id: 5, bbox: [4, 6, 20, 24], area: 480, iscrowd: 0, segmentation: [[4, 6, 24, 6, 24, 30, 4, 30]] },
      { id: 2, image_id: 1, category_id: 9, bbox: [1, 1, 5, 5], area: 25, iscrowd: 1 },
      { id: 3, image_id: 1, category_id: 5, bbox: [1, 1, 0.5, 5], area: 2, iscrowd: 0 },
      { id: 4, image_id: 1, category_id: 77, bbox: [1, 1, 5, 5], area: 25, iscrowd: 0 },
    ], { cat2label: new Map([[5, 0], [9, 1]]) });
    assert.deepEqual(Array.from(big.gtBboxes!), [4, 6, 24, 30]);
    assert.deepEqual(Array.from(big.gtLabels!), [0]);
    assert.deepEqual(Array.from(big.gtBboxesIgnore!), [1, 1, 6, 6]);
    assert.equal(big.gtMasks!.kind, 'bitmaps');
    assertBoxesClose(maskBoundingBoxes(big.gtMasks!), big.gtBboxes!, 1, 'loaded mask');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('buildPipeline: MMDet loading entries at the head carry options; elsewhere they are errors', () => {
  const { load, transforms } = buildPipeline([
    { type: 'LoadImageFromFile' },
    { type: 'LoadAnnotations', with_bbox: true, with_mask: true, poly2mask: true },
    { type: 'RandomFlip', prob: 0.5 },
  ]);
  assert.deepEqual(load, { image: {}, annotations: { withMask: true, poly2mask: true } });
  assert.deepEqual(transforms.map((t) => t.name), ['RandomFlip']);
  assert.deepEqual(buildPipeline([{ type: 'LoadImage', auto_orient: false }]).load, { image: { autoOrient: false }, annotations: {} });
  assert.throws(() => buildPipeline([{ type: 'RandomFlip' }, { type: 'LoadAnnotations' }]), /^ConfigError: pipeline\.1: LoadAnnotations: loading steps must come first/);
  assert.throws(() => buildPipeline([{ type: 'LoadAnnotations', with_maks: true }]),
    /pipeline\.0\.with_maks: unknown key 'with_maks'; allowed: with_bbox, with_label, with_mask, with_seg, poly2mask \(did you mean 'with_mask'\?\)/);
  assert.throws(() => buildPipeline([{ type: 'LoadAnnotations', with_bbox: false }]), /^ConfigError: pipeline\.0\.with_bbox: false is not supported/);
});
