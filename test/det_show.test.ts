/**
 * Detection `--show-dir`: buildPredictionWriters draws the detections scoring at least the
 * threshold (translucent mask, box outline, label) over the image and writes `<stem>.png`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { ImgMeta } from '../src/datasets/collate.ts';
import { buildPredictionWriters } from '../src/evaluation/prediction_writers.ts';
import { makeInstances } from '../src/structures/instances.ts';
import { FakeImages } from './helpers/fake_images.ts';

const [W, H] = [64, 48];

test('detection --show-dir writes a PNG with the detections above the score threshold drawn', async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-det-show-'));
  const imgPath = path.join(tmp, 'street.jpg');
  await sharp({ create: { width: W, height: H, channels: 3, background: { r: 100, g: 100, b: 100 } } }).png().toFile(imgPath);
  const palette: [number, number, number][] = [[255, 0, 0], [0, 0, 255]];
  const dataset = Object.assign(new FakeImages(1), { classes: ['cat', 'dog'], palette });
  const showDir = path.join(tmp, 'show');
  const writers = await buildPredictionWriters({ task: 'detection', dataset, numClasses: 2, showDir, showScoreThr: 0.3 });
  assert.equal(writers.length, 1);
  const mask = new Uint8Array(H * W);
  for (let y = 25; y < 35; y++) for (let x = 10; x < 20; x++) mask[y * W + x] = 1;
  const instances = makeInstances({
    boxes: Float32Array.from([8, 20, 30, 40, 40, 20, 60, 40]),
    labels: Int32Array.from([0, 1]),
    scores: Float32Array.from([0.9, 0.1]),
    masks: { kind: 'bitmaps', height: H, width: W, masks: [mask, new Uint8Array(H * W).fill(1)] },
  });
  const meta: ImgMeta = { imageId: 1, imgPath, oriShape: [H, W], imgShape: [H, W], padShape: [H, W], batchInputShape: [H, W], scaleFactor: [1, 1], flip: false };
  await writers[0].write({ index: 0, meta }, { instances });
  assert.match(await writers[0].finish(), /score >= 0\.3/);
  const out = path.join(showDir, 'street.png');
  assert.ok(existsSync(out));
  const { data, info } = await sharp(out).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height], [W, H]);
  const px = (x: number, y: number) => Array.from(data.subarray((y * W + x) * info.channels, (y * W + x) * info.channels + 3));
  assert.deepEqual(px(15, 40), [255, 0, 0], 'the box of class 0 in its palette colour');
  assert.notDeepEqual(px(15, 30), [100, 100, 100], 'the mask is blended in');
  assert.deepEqual(px(22, 30), [100, 100, 100], 'outside the mask and box: the image');
  assert.deepEqual(px(50, 40), [100, 100, 100], 'the detection scoring 0.1 is not drawn');
  // Predictions without instances are an error naming the sample.
  await assert.rejects(writers[0].write({ index: 3, meta }, {}), /sample 3 has no instances/);
});
