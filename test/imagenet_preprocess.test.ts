import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

import { IMAGENET_CLASSES } from '../src/datasets/imagenet_classes.ts';
import { IMAGENET_MEAN, IMAGENET_STD, loadClassificationInput } from '../src/datasets/imagenet_preprocess.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'imagenet-preprocess-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type RGB = readonly [number, number, number];

/** Expected normalised value of 8-bit channel value `v` in channel `c`. */
function norm(v: number, c: number): number {
  return (v / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
}

/** Writes a lossless PNG from raw interleaved pixels. */
async function writePng(name: string, width: number, height: number, channels: 1 | 2 | 3 | 4, px: Uint8Array): Promise<string> {
  const file = path.join(dir, name);
  const img = sharp(px, { raw: { width, height, channels } });
  // Without 'b-w' sharp would write 1/2-channel input as an RGB(A) PNG.
  await (channels <= 2 ? img.toColourspace('b-w') : img).png().toFile(file);
  return file;
}

/** An RGB image built column-wise from `colourAt(x, y)`. */
async function writeRgb(name: string, width: number, height: number, colourAt: (x: number, y: number) => RGB): Promise<string> {
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      px.set(colourAt(x, y), (y * width + x) * 3);
    }
  }
  return writePng(name, width, height, 3, px);
}

/** Asserts every pixel of an NHWC [1,s,s,3] array equals the normalised colour (within 1e-5). */
function assertSolid(data: Float32Array, colour: RGB, what: string): void {
  const expected = [norm(colour[0], 0), norm(colour[1], 1), norm(colour[2], 2)];
  let worst = 0;
  for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(data[i]! - expected[i % 3]!));
  assert.ok(worst <= 1e-5, `${what}: max |diff| ${worst} > 1e-5`);
}

test('mean/std constants', () => {
  assert.deepEqual([...IMAGENET_MEAN], [0.485, 0.456, 0.406]);
  assert.deepEqual([...IMAGENET_STD], [0.229, 0.224, 0.225]);
});

test('solid-colour 300x200 PNG: shape [1,224,224,3] and (c/255-mean)/std everywhere', async () => {
  const colour: RGB = [200, 100, 50];
  const file = await writeRgb('solid.png', 300, 200, () => colour);
  const out = await loadClassificationInput(file);
  assert.deepEqual(out.shape, [1, 224, 224, 3]);
  assert.ok(out.data instanceof Float32Array);
  assert.equal(out.data.length, 224 * 224 * 3);
  assertSolid(out.data, colour, 'solid');
});

test('custom size and cropPct', async () => {
  const colour: RGB = [10, 250, 128];
  const file = await writeRgb('solid-small.png', 90, 130, () => colour);
  const out = await loadClassificationInput(file, { size: 64, cropPct: 1 });
  assert.deepEqual(out.shape, [1, 64, 64, 3]);
  assert.equal(out.data.length, 64 * 64 * 3);
  assertSolid(out.data, colour, 'size 64');
});

test('cropPct > 1 zero-pads around the resized image like torchvision CenterCrop', async () => {
  const colour: RGB = [90, 180, 30];
  const file = await writeRgb('pad.png', 40, 40, () => colour);
  // size 64, cropPct 2 -> resized to 32x32, placed at offset 16 inside a black 64x64 canvas.
  const out = await loadClassificationInput(file, { size: 64, cropPct: 2 });
  assert.deepEqual(out.shape, [1, 64, 64, 3]);
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      const inside = y >= 16 && y < 48 && x >= 16 && x < 48;
      for (let c = 0; c < 3; c++) {
        const want = norm(inside ? colour[c]! : 0, c);
        assert.ok(Math.abs(out.data[(y * 64 + x) * 3 + c]! - want) <= 1e-5, `(${y},${x}) ch ${c}`);
      }
    }
  }
});

test('grayscale image is expanded to RGB', async () => {
  const v = 77;
  const file = await writePng('gray.png', 120, 160, 1, new Uint8Array(120 * 160).fill(v));
  assert.equal((await sharp(file).metadata()).channels, 1);
  const out = await loadClassificationInput(file);
  assert.deepEqual(out.shape, [1, 224, 224, 3]);
  assertSolid(out.data, [v, v, v], 'gray');
});

test('alpha is dropped without compositing (RGBA and gray+alpha)', async () => {
  const colour: RGB = [30, 60, 240];
  const w = 250;
  const h = 300;
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([...colour, i % 2 === 0 ? 0 : 128], i * 4);
  const file = await writePng('alpha.png', w, h, 4, rgba);
  assert.equal((await sharp(file).metadata()).hasAlpha, true);
  const out = await loadClassificationInput(file);
  assert.deepEqual(out.shape, [1, 224, 224, 3]);
  assertSolid(out.data, colour, 'rgba');

  const ga = new Uint8Array(w * h * 2);
  for (let i = 0; i < w * h; i++) ga.set([140, i % 3 === 0 ? 0 : 255], i * 2);
  const file2 = await writePng('gray-alpha.png', w, h, 2, ga);
  const meta2 = await sharp(file2).metadata();
  assert.equal(meta2.channels, 2);
  assert.equal(meta2.hasAlpha, true);
  const out2 = await loadClassificationInput(file2);
  assertSolid(out2.data, [140, 140, 140], 'gray+alpha');
});

test('JPEG input is accepted', async () => {
  const file = path.join(dir, 'solid.jpg');
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 128, g: 128, b: 128 } } })
    .jpeg({ quality: 100 })
    .toFile(file);
  const out = await loadClassificationInput(file);
  assert.deepEqual(out.shape, [1, 224, 224, 3]);
  // Flat grey survives JPEG within a level or two.
  for (let i = 0; i < out.data.length; i++) {
    assert.ok(Math.abs(out.data[i]! - norm(128, i % 3)) < 3 / 255 / 0.224, `pixel ${i}`);
  }
});

test('centre crop picks the centre (landscape: left/middle/right thirds differ)', async () => {
  const red: RGB = [255, 0, 0];
  const green: RGB = [0, 255, 0];
  const blue: RGB = [0, 0, 255];
  // 600x200 -> resized to 768x256; the 224 crop spans x in [272, 496), inside the middle third [256, 512).
  const file = await writeRgb('thirds.png', 600, 200, (x) => (x < 200 ? red : x < 400 ? green : blue));
  const out = await loadClassificationInput(file);
  assertSolid(out.data, green, 'landscape centre');

  // With cropPct 1 the short side is 224 and the long side 672; the crop covers [224, 448) = the middle third,
  // so its first / last columns sit on the colour edges and must lean towards red / blue respectively.
  const wide = await loadClassificationInput(file, { cropPct: 1 });
  const at = (y: number, x: number, c: number) => wide.data[(y * 224 + x) * 3 + c]!;
  assert.ok(at(112, 112, 1) > at(112, 112, 0) && at(112, 112, 1) > at(112, 112, 2), 'middle is green');
  assert.ok(at(112, 0, 0) > norm(0, 0), 'left edge has some red bleed');
  assert.ok(at(112, 223, 2) > norm(0, 2), 'right edge has some blue bleed');
});

test('centre crop picks the centre (portrait: top/middle/bottom thirds differ)', async () => {
  const a: RGB = [250, 250, 0];
  const b: RGB = [20, 40, 60];
  const c: RGB = [0, 200, 255];
  const file = await writeRgb('thirds-v.png', 200, 600, (_x, y) => (y < 200 ? a : y < 400 ? b : c));
  const out = await loadClassificationInput(file);
  assertSolid(out.data, b, 'portrait centre');
});

test('crop offsets follow torchvision (round half to even) and resizing is skipped at the exact size', async () => {
  // 257x256: the short side already is 256 -> no resize; left = round(33 / 2) = 16 (half-to-even), top = 16.
  const w = 257;
  const h = 256;
  const file = await writeRgb('ramp.png', w, h, (x, y) => [x % 256, y, (x * 7 + y * 3) % 256]);
  const out = await loadClassificationInput(file);
  for (const [y, x] of [[0, 0], [0, 223], [223, 0], [223, 223], [100, 57]] as const) {
    const sx = x + 16;
    const sy = y + 16;
    const src: RGB = [sx % 256, sy, (sx * 7 + sy * 3) % 256];
    for (let ch = 0; ch < 3; ch++) {
      assert.ok(Math.abs(out.data[(y * 224 + x) * 3 + ch]! - norm(src[ch]!, ch)) <= 1e-5, `(${y},${x}) ch ${ch}`);
    }
  }
});

test('missing file -> error naming the path and the cause', async () => {
  const missing = path.join(dir, 'does-not-exist.png');
  await assert.rejects(loadClassificationInput(missing), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.ok(err.message.startsWith(`cannot read image ${missing}: `), err.message);
    assert.match(err.message, /ENOENT|no such file/);
    return true;
  });
});

test('garbage bytes -> error naming the path and the cause', async () => {
  const bad = path.join(dir, 'garbage.png');
  writeFileSync(bad, Buffer.from('this is definitely not an image, just some bytes \x00\x01\x02\xff'));
  await assert.rejects(loadClassificationInput(bad), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.ok(err.message.startsWith(`cannot read image ${bad}: `), err.message);
    assert.ok(err.message.length > `cannot read image ${bad}: `.length, 'cause is present');
    return true;
  });

  // A valid PNG header followed by junk is also rejected.
  const good = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).png().toBuffer();
  const truncated = path.join(dir, 'truncated.png');
  writeFileSync(truncated, good.subarray(0, 40));
  await assert.rejects(loadClassificationInput(truncated), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.ok(err.message.startsWith(`cannot read image ${truncated}: `), err.message);
    return true;
  });
});

test('invalid options are rejected', async () => {
  const file = await writeRgb('opts.png', 32, 32, () => [1, 2, 3]);
  await assert.rejects(loadClassificationInput(file, { size: 0 }), RangeError);
  await assert.rejects(loadClassificationInput(file, { size: 12.5 }), RangeError);
  await assert.rejects(loadClassificationInput(file, { cropPct: 0 }), RangeError);
  await assert.rejects(loadClassificationInput(file, { cropPct: Number.NaN }), RangeError);
});

test('IMAGENET_CLASSES: 1000 non-empty names in the standard order', () => {
  assert.equal(IMAGENET_CLASSES.length, 1000);
  for (let i = 0; i < IMAGENET_CLASSES.length; i++) {
    const name = IMAGENET_CLASSES[i];
    assert.equal(typeof name, 'string', `index ${i}`);
    assert.ok(name!.length > 0 && name === name!.trim(), `index ${i}: ${JSON.stringify(name)}`);
  }
  const spots: Record<number, string> = {
    0: 'tench',
    1: 'goldfish',
    2: 'great white shark',
    207: 'golden retriever',
    281: 'tabby',
    409: 'analog clock',
    817: 'sports car',
    954: 'banana',
    999: 'toilet tissue',
  };
  for (const [i, name] of Object.entries(spots)) assert.equal(IMAGENET_CLASSES[Number(i)], name, `index ${i}`);
  // The source list has exactly two repeated names (134/517 "crane", 638/639 "maillot").
  const seen = new Map<string, number[]>();
  IMAGENET_CLASSES.forEach((n, i) => seen.set(n, [...(seen.get(n) ?? []), i]));
  const dups = [...seen].filter(([, idx]) => idx.length > 1);
  assert.deepEqual(dups, [['crane', [134, 517]], ['maillot', [638, 639]]]);
  assert.ok(Object.isFrozen(IMAGENET_CLASSES));
});
