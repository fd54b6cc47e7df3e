/**
 * The browser example's plain-JS port of the test pipeline (examples/browser/preprocess.js) against
 * the TypeScript it copies, so the two cannot drift apart: keep-ratio size rule, bilinear image
 * resize and Normalize bit for bit; the logits' resize back to the original size against tfjs
 * (`resizeBilinear` of src/ops/resize.ts) to float32 rounding, with the same argmax.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import * as port from '../examples/browser/preprocess.js';
import { rescaleSize, resizeImageBilinear } from '../src/datasets/transforms/resize.ts';
import { Normalize } from '../src/datasets/transforms/normalize.ts';
import { makeSample } from '../src/datasets/transforms/types.ts';
import { Rng } from '../src/nn/random.ts';
import { resizeBilinear } from '../src/ops/resize.ts';

await tf.setBackend('cpu');
const rng = new Rng(2024);
const int = (lo: number, hi: number): number => lo + Math.floor(rng.uniform() * (hi - lo + 1));

function randomImage(w: number, h: number): Uint8Array {
  const a = new Uint8Array(w * h * 3);
  for (let i = 0; i < a.length; i++) a[i] = int(0, 255);
  return a;
}

/** Sizes around the shapes config's: up- and down-scaling, 1-pixel edges, odd ratios. */
const SIZES: [number, number, number, number][] = [
  [64, 72, 144, 128], [80, 64, 160, 128], [300, 200, 192, 128], [1, 5, 3, 9], [17, 1, 4, 2], [33, 47, 33, 47], [256, 128, 97, 61],
];

test('preprocess.js rescaleSize = Resize keep-ratio rule (resize.ts rescaleSize)', () => {
  for (let i = 0; i < 500; i++) {
    const w = int(1, 2000), h = int(1, 2000);
    const scale: [number, number] = [int(1, 1400), int(1, 1400)];
    assert.deepEqual(port.rescaleSize(w, h, scale), rescaleSize(w, h, scale), `${w}x${h} to ${scale}`);
  }
  assert.deepEqual(port.rescaleSize(72, 64, [256, 128]), [144, 128]);
});

test('preprocess.js resizeImageBilinear = resize.ts resizeImageBilinear, bit for bit', () => {
  for (const [w, h, ow, oh] of SIZES) {
    const data = randomImage(w, h);
    const ref = resizeImageBilinear({ data, width: w, height: h, channels: 3 }, ow, oh);
    const got = port.resizeImageBilinear(data, w, h, ow, oh);
    assert.equal(got.length, ref.data.length);
    assert.deepEqual(Buffer.from(got), Buffer.from(ref.data as Uint8Array), `${w}x${h} -> ${ow}x${oh}`);
  }
});

test('preprocess.js normalizeToNchw = Normalize then HWC -> CHW, bit for bit', () => {
  const norm = { mean: [123.675, 116.28, 103.53] as [number, number, number], std: [58.395, 57.12, 57.375] as [number, number, number] };
  const w = 37, h = 23;
  const data = randomImage(w, h);
  const hwc = new Normalize(norm).apply(makeSample({ data, width: w, height: h, channels: 3 })).img.data as Float32Array;
  const chw = port.normalizeToNchw(data, w, h, norm);
  for (let p = 0; p < w * h; p++) {
    for (let k = 0; k < 3; k++) assert.equal(chw[k * w * h + p], hwc[p * 3 + k]);
  }
});

test('preprocess.js logits resize + argmax = tfjs resizeBilinear (align_corners=False) + argMax', async () => {
  for (const [iw, ih, ow, oh] of SIZES) {
    const k = int(2, 7);
    const chw = new Float32Array(k * ih * iw);
    for (let i = 0; i < chw.length; i++) chw[i] = rng.normal() * 4;
    const ref = tf.tidy(() => {
      const nhwc = tf.tensor4d(chw, [1, k, ih, iw]).transpose([0, 2, 3, 1]) as tf.Tensor4D;
      const r = resizeBilinear(nhwc, [oh, ow]);
      return [r.transpose([0, 3, 1, 2]), tf.argMax(r.squeeze([0]), -1)];
    });
    const [refLogits, refLabels] = await Promise.all(ref.map((t) => t.data()));
    tf.dispose(ref);
    const got = port.resizeLogitsBilinear(chw, k, ih, iw, oh, ow);
    assert.equal(got.length, refLogits.length);
    for (let i = 0; i < got.length; i++) assert.ok(Math.abs(got[i] - refLogits[i]) <= 1e-5 * (1 + Math.abs(refLogits[i])), `${iw}x${ih} -> ${ow}x${oh} at ${i}`);
    assert.deepEqual(Array.from(port.resizeArgmax(chw, k, ih, iw, oh, ow)), Array.from(refLabels), `labels ${iw}x${ih} -> ${ow}x${oh}`);
  }
});
