/** tools/seg_eval.ts run as a user would: PNG folders in, MMSeg metrics out. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { runTool } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-seg-eval-'));

const run = (args: string[]) => runTool('seg_eval.ts', args);

/** A fresh folder pair under tmp. */
function dirs(name: string): { pred: string; gt: string } {
  const pred = path.join(tmp, name, 'pred');
  const gt = path.join(tmp, name, 'gt');
  mkdirSync(pred, { recursive: true });
  mkdirSync(gt, { recursive: true });
  return { pred, gt };
}

/** 8-bit single-channel ('L') PNG via sharp (without toColourspace('b-w') sharp would write RGB). */
async function writeGray(file: string, width: number, height: number, values: number[]): Promise<void> {
  await sharp(Uint8Array.from(values), { raw: { width, height, channels: 1 } }).toColourspace('b-w').png().toFile(file);
  assert.equal((await sharp(file).metadata()).channels, 1);
}

/** A hand-made PNG (for palette and 1/16-bit files sharp cannot write as such). */
function writePng(file: string, o: { width: number; height: number; bitDepth: number; colorType: number; samples: number[]; plte?: number[] }): void {
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body) >>> 0);
    return Buffer.concat([head, body, crc]);
  };
  const channels = { 0: 1, 2: 3, 3: 1 }[o.colorType as 0 | 2 | 3];
  const rowBytes = Math.ceil((o.width * channels * o.bitDepth) / 8);
  const raw = Buffer.alloc(o.height * (rowBytes + 1)); // filter byte 0 (None) on every row
  for (let y = 0; y < o.height; y++) {
    const row = y * (rowBytes + 1) + 1;
    for (let i = 0; i < o.width * channels; i++) {
      const v = o.samples[y * o.width * channels + i]!;
      if (o.bitDepth === 16) raw.writeUInt16BE(v, row + 2 * i);
      else if (o.bitDepth === 8) raw[row + i] = v;
      else raw[row + ((i * o.bitDepth) >> 3)]! |= v << (8 - o.bitDepth - ((i * o.bitDepth) & 7));
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(o.width, 0);
  ihdr.writeUInt32BE(o.height, 4);
  ihdr[8] = o.bitDepth;
  ihdr[9] = o.colorType;
  writeFileSync(file, Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    ...(o.plte ? [chunk('PLTE', Buffer.from(o.plte))] : []),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]));
}

function closeTo(actual: number | null, expected: number | null, what: string): void {
  if (expected === null) return assert.equal(actual, null, what);
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-12, `${what}: expected ${expected}, got ${actual}`);
}

interface Json { aAcc: number | null; mIoU: number | null; mAcc: number | null; per_class: { IoU: (number | null)[]; Acc: (number | null)[] } }

function checkJson(file: string, e: { aAcc: number; mIoU: number; mAcc: number; IoU: (number | null)[]; Acc: (number | null)[] }): void {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Json;
  assert.deepEqual(Object.keys(j), ['aAcc', 'mIoU', 'mAcc', 'per_class']);
  closeTo(j.aAcc, e.aAcc, 'aAcc');
  closeTo(j.mIoU, e.mIoU, 'mIoU');
  closeTo(j.mAcc, e.mAcc, 'mAcc');
  assert.equal(j.per_class.IoU.length, e.IoU.length);
  e.IoU.forEach((x, c) => closeTo(j.per_class.IoU[c]!, x, `IoU[${c}]`));
  e.Acc.forEach((x, c) => closeTo(j.per_class.Acc[c]!, x, `Acc[${c}]`));
}

test('two 2x2 images: per-class table, summary and JSON (NaN as null)', async () => {
  const { pred, gt } = dirs('plain');
  // a: pred [0,0,1,1] gt [0,1,1,1];  b: pred [2,2,1,0] gt [2,0,2,0]  (K = 4, class 3 never appears)
  await writeGray(path.join(pred, 'a.png'), 2, 2, [0, 0, 1, 1]);
  await writeGray(path.join(gt, 'a.png'), 2, 2, [0, 1, 1, 1]);
  await writeGray(path.join(pred, 'b.png'), 2, 2, [2, 2, 1, 0]);
  await writeGray(path.join(gt, 'b.png'), 2, 2, [2, 0, 2, 0]);
  // Over both images: pred area c0=3 c1=3 c2=2; gt area c0=3 c1=3 c2=2; intersect c0=2 c1=2 c2=1 (5 of 8)
  // union c0=4 c1=4 c2=3 c3=0 → IoU 1/2, 1/2, 1/3, NaN → mIoU = 4/9; Acc 2/3, 2/3, 1/2, NaN → mAcc = 11/18; aAcc = 5/8
  const out = path.join(tmp, 'plain', 'metrics.json');
  const r = run(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '4', '--json', out, '--class-names', 'road,sky,car,boat']);
  assert.equal(r.code, 0, r.stderr);
  checkJson(out, { aAcc: 5 / 8, mIoU: 4 / 9, mAcc: 11 / 18, IoU: [1 / 2, 1 / 2, 1 / 3, null], Acc: [2 / 3, 2 / 3, 1 / 2, null] });
  assert.match(r.stdout, /^2 images, 8 pixels \(0 ignored\), 4 classes$/m);
  assert.match(r.stdout, /^\| car {3}\| 33\.33 \| 50\.00 \|$/m);
  assert.match(r.stdout, /^\| boat {2}\| {3}nan \| {3}nan \|$/m);
  assert.match(r.stdout, /^aAcc: 62\.50 {2}mIoU: 44\.44 {2}mAcc: 61\.11$/m);
  assert.equal(r.stderr, '');
});

test('--reduce-zero-label maps GT 0 to ignored and k to k-1', async () => {
  const { pred, gt } = dirs('reduce');
  await writeGray(path.join(pred, 'x.png'), 3, 2, [1, 0, 1, 0, 1, 1]);
  await writeGray(path.join(gt, 'x.png'), 3, 2, [0, 1, 2, 255, 1, 2]);
  // GT → [ign, 0, 1, ign, 0, 1]; kept: (gt0,p0) (gt1,p1) (gt0,p1) (gt1,p1)
  // pred area c0=1 c1=3; gt area c0=2 c1=2; intersect c0=1 c1=2; union c0=2 c1=3
  // IoU 1/2, 2/3 → mIoU = 7/12; Acc 1/2, 1 → mAcc = 3/4; aAcc = 3/4
  const out = path.join(tmp, 'reduce', 'm.json');
  const r = run(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2', '--reduce-zero-label', '--json', out]);
  assert.equal(r.code, 0, r.stderr);
  checkJson(out, { aAcc: 3 / 4, mIoU: 7 / 12, mAcc: 3 / 4, IoU: [1 / 2, 2 / 3], Acc: [1 / 2, 1] });
  assert.match(r.stdout, /^1 images, 6 pixels \(2 ignored\), 2 classes$/m);
  // Without the flag GT 2 is out of range for K = 2 and 255 is ignored: a warning says so.
  const plain = run(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr, /^warning: 2 ground-truth pixels are outside 0\.\.1/m);
});

test('palette PNGs are read as indices, 1-bit and 16-bit as raw values, gray-as-RGB as gray', async () => {
  // Palette GT with indices [0, 1, 2, 1] where indices 0 and 2 share one colour (so the RGB sharp
  // decodes could not tell them apart); pred is an RGB PNG holding gray values [0, 1, 2, 2].
  {
    const { pred, gt } = dirs('palette');
    writePng(path.join(gt, 'p.png'), { width: 4, height: 1, bitDepth: 8, colorType: 3, samples: [0, 1, 2, 1], plte: [9, 9, 9, 200, 0, 0, 9, 9, 9] });
    await sharp(Uint8Array.from([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2]), { raw: { width: 4, height: 1, channels: 3 } }).png().toFile(path.join(pred, 'p.png'));
    // pairs (0,0) (1,1) (2,2) (2,1): pred area c0=1 c1=1 c2=2; gt area c0=1 c1=2 c2=1; intersect 1,1,1
    // union c0 = 1, c1 = 1+2-1 = 2, c2 = 2+1-1 = 2 → IoU 1, 1/2, 1/2 (mIoU 2/3); Acc 1, 1/2, 1 (mAcc 5/6); aAcc 3/4
    const out = path.join(tmp, 'palette', 'm.json');
    const r = run(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '3', '--json', out]);
    assert.equal(r.code, 0, r.stderr);
    checkJson(out, { aAcc: 3 / 4, mIoU: 2 / 3, mAcc: 5 / 6, IoU: [1, 1 / 2, 1 / 2], Acc: [1, 1 / 2, 1] });
  }
  // 1-bit GT [0, 1, 1, 0] (sharp would scale the 1s to 255 = ignored); pred [0, 1, 0, 0]
  {
    const { pred, gt } = dirs('onebit');
    writePng(path.join(gt, 'm.png'), { width: 2, height: 2, bitDepth: 1, colorType: 0, samples: [0, 1, 1, 0] });
    await writeGray(path.join(pred, 'm.png'), 2, 2, [0, 1, 0, 0]);
    // pred area c0=3 c1=1; gt area c0=2 c1=2; intersect c0=2 c1=1; union c0 = 3+2-2 = 3, c1 = 1+2-1 = 2
    // IoU 2/3, 1/2 (mIoU 7/12); Acc 1, 1/2 (mAcc 3/4); aAcc 3/4
    const out = path.join(tmp, 'onebit', 'm.json');
    const r = run(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2', '--json', out]);
    assert.equal(r.code, 0, r.stderr);
    checkJson(out, { aAcc: 3 / 4, mIoU: 7 / 12, mAcc: 3 / 4, IoU: [2 / 3, 1 / 2], Acc: [1, 1 / 2] });
  }
  // 16-bit GT [1000, 0, 1, 300] with --ignore-index 1000; pred [5, 0, 0, 1]
  {
    const { pred, gt } = dirs('sixteen');
    writePng(path.join(gt, 's.png'), { width: 4, height: 1, bitDepth: 16, colorType: 0, samples: [1000, 0, 1, 300] });
    await writeGray(path.join(pred, 's.png'), 4, 1, [5, 0, 0, 1]);
    // kept (gt0,p0) (gt1,p0) (gt300,p1): pred area c0=2 c1=1; gt area c0=1 c1=1 (300 has no bin); intersect c0=1
    // union c0 = 2+1-1 = 2, c1 = 1+1-0 = 2 → IoU 1/2, 0 (mIoU 1/4); Acc 1, 0 (mAcc 1/2); aAcc = 1/2
    const out = path.join(tmp, 'sixteen', 'm.json');
    const r = run(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2', '--ignore-index', '1000', '--json', out]);
    assert.equal(r.code, 0, r.stderr);
    checkJson(out, { aAcc: 1 / 2, mIoU: 1 / 4, mAcc: 1 / 2, IoU: [1 / 2, 0], Acc: [1, 0] });
    assert.match(r.stderr, /^warning: 1 ground-truth pixels are outside 0\.\.1 and not --ignore-index 1000/m);
  }
});

test('bad input exits 1 with a one-line cause', async () => {
  const expectError = (args: string[], re: RegExp): void => {
    const r = run(args);
    assert.equal(r.code, 1, `${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr.trim(), re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
  };
  const { pred, gt } = dirs('errors');
  await writeGray(path.join(pred, 'a.png'), 2, 2, [0, 0, 0, 0]);
  await writeGray(path.join(gt, 'a.png'), 3, 2, [0, 0, 0, 0, 0, 0]);
  await writeGray(path.join(gt, 'c.png'), 2, 2, [0, 0, 0, 0]);
  expectError(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2'], /^error: no prediction in .*pred for 1 ground-truth map\(s\): c$/);

  await writeGray(path.join(pred, 'c.png'), 2, 2, [0, 0, 0, 0]);
  await writeGray(path.join(pred, 'd.png'), 2, 2, [0, 0, 0, 0]);
  expectError(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2'], /^error: no ground truth in .*gt for 1 prediction\(s\): d$/);

  await writeGray(path.join(gt, 'd.png'), 2, 2, [0, 0, 0, 0]);
  expectError(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2'], /^error: a: prediction .*a\.png is 2x2 but ground truth .*a\.png is 3x2/);

  expectError(['--pred-dir', pred, '--gt-dir', path.join(tmp, 'nope'), '--num-classes', '2'], /^error: --gt-dir .*nope does not exist$/);

  const empty = dirs('empty');
  expectError(['--pred-dir', empty.pred, '--gt-dir', gt, '--num-classes', '2'], /^error: --pred-dir .* contains no \.png files$/);

  const bad = dirs('undecodable');
  writeFileSync(path.join(bad.pred, 'z.png'), 'not a png at all');
  await writeGray(path.join(bad.gt, 'z.png'), 1, 1, [0]);
  expectError(['--pred-dir', bad.pred, '--gt-dir', bad.gt, '--num-classes', '2'], /^error: cannot decode .*z\.png: not a PNG file$/);

  const colour = dirs('colour');
  await sharp(Uint8Array.from([0, 0, 0, 128, 64, 128]), { raw: { width: 2, height: 1, channels: 3 } }).png().toFile(path.join(colour.gt, 'k.png'));
  await writeGray(path.join(colour.pred, 'k.png'), 2, 1, [0, 0]);
  expectError(['--pred-dir', colour.pred, '--gt-dir', colour.gt, '--num-classes', '2'], /^error: cannot decode .*k\.png: it is a colour \(RGB\) image, not a label map: pixel \(1, 0\) is \(128, 64, 128\)/);

  expectError(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '0'], /^error: --num-classes must be a positive integer/);
  expectError(['--pred-dir', pred, '--gt-dir', gt, '--num-classes', '2', '--class-names', 'a,b,c'], /^error: --class-names has 3 names but --num-classes is 2$/);
});
