/**
 * seg_inference.ts with an asynchronous forward (as an onnxruntime session gives): the same numbers
 * as a synchronous one, no tensor leaks (also when the forward fails or returns a wrong shape).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { ImgMeta } from '../src/datasets/collate.ts';
import {
  inferenceLogits, labelsToPredictions, predictSegmentation, segmentLabels, slideLogits, testCfgOptions,
  type EncodeDecodeFn, type PredictOptions, type SegTestCfg,
} from '../src/models/seg_inference.ts';

const K = 3;

/** A per-pixel forward: a fixed 1x1 convolution 3 → K plus a 3x3 box blur (so crops see borders). */
function syncForward(): (x: tf.Tensor4D) => tf.Tensor4D {
  const w = tf.tensor4d([0.5, -1, 0.2, 0.3, 0.8, -0.4, -0.7, 0.1, 0.9], [1, 1, 3, K]);
  return (x) => tf.tidy(() => tf.avgPool(tf.conv2d(x, w, 1, 'same'), 3, 1, 'same'));
}

function batch(): { imgs: tf.Tensor4D; metas: ImgMeta[] } {
  let s = 99;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  const imgs = tf.tensor4d(Float32Array.from({ length: 2 * 40 * 52 * 3 }, () => rnd() * 2 - 1), [2, 40, 52, 3]);
  const base = { padShape: [40, 52], flip: false } as unknown as ImgMeta;
  const metas: ImgMeta[] = [
    { ...base, imgShape: [40, 52], oriShape: [40, 52] },
    { ...base, imgShape: [33, 45], oriShape: [20, 27], flip: true, flipDirection: 'horizontal' },
  ];
  return { imgs, metas };
}

const CASES: PredictOptions[] = [
  {}, { mode: 'slide', cropSize: [24, 24], stride: [16, 20] }, { flip: true }, { scales: [0.5, 1, 1.5] },
  { scales: [0.75, 1.25], flip: true, mode: 'slide', cropSize: [20, 32], stride: [12, 24] },
];

test('an async forward gives exactly the sync results; only the results remain', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const fwd = syncForward();
  let calls = 0;
  const asyncFwd: EncodeDecodeFn = async (x) => {
    calls++;
    await new Promise((r) => setImmediate(r));
    return fwd(x);
  };
  const { imgs, metas } = batch();
  for (const opts of CASES) {
    const before = tf.memory().numTensors;
    const a = await inferenceLogits(fwd, imgs, metas, K, opts);
    const b = await inferenceLogits(asyncFwd, imgs, metas, K, opts);
    assert.equal(tf.memory().numTensors, before + 4, `only the results remain (${JSON.stringify(opts)})`);
    assert.deepEqual(a[1].shape, [20, 27, K]);
    for (let i = 0; i < 2; i++) assert.deepEqual(await b[i].data(), await a[i].data(), JSON.stringify(opts));
    tf.dispose([...a, ...b]);
    const la = await segmentLabels(fwd, imgs, metas, K, opts);
    const lb = await segmentLabels(asyncFwd, imgs, metas, K, opts);
    assert.deepEqual(lb, la);
    assert.equal(tf.memory().numTensors, before);
  }
  // Slide: one forward per crop (2 rows x 3 columns for 40x52, crop 24, stride 16x20: y 0, 16; x 0, 20, 28).
  calls = 0;
  const s = await slideLogits(asyncFwd, imgs, K, [24, 24], [16, 20]);
  assert.equal(calls, 6);
  // A per-pixel forward away from crop borders: slide ≈ whole in the interior.
  const whole = fwd(imgs);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(s, [0, 8, 8, 0], [2, 8, 8, K]), tf.slice(whole, [0, 8, 8, 0], [2, 8, 8, K])))).dataSync()[0]);
  assert.ok(diff < 1e-6, `slide interior vs whole ${diff}`);
  tf.dispose([s, whole, imgs]);
});

test('predictSegmentation follows test_cfg; labelsToPredictions sizes; errors leak nothing', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const fwd = syncForward();
  const { imgs, metas } = batch();
  const cfg: SegTestCfg = { mode: 'slide', cropSize: [24, 24], stride: [16, 16], aug: { scales: [0.5, 1], flip: true } };
  assert.deepEqual(testCfgOptions(cfg), { mode: 'slide', cropSize: [24, 24], stride: [16, 16] });
  assert.deepEqual(testCfgOptions(cfg, { augTest: true }), { mode: 'slide', cropSize: [24, 24], stride: [16, 16], flip: true, scales: [0.5, 1] });
  const before = tf.memory().numTensors;
  const preds = await predictSegmentation(async (x) => fwd(x), imgs, metas, K, cfg, { augTest: true });
  const labels = await segmentLabels(fwd, imgs, metas, K, testCfgOptions(cfg, { augTest: true }));
  assert.deepEqual(preds.map((p) => [p.semSeg!.height, p.semSeg!.width]), [[40, 52], [20, 27]]);
  assert.deepEqual(preds.map((p) => p.semSeg!.data), labels);
  assert.throws(() => labelsToPredictions([new Int32Array(3)], [metas[1]]), /oriShape \[20, 27\]/);

  const wrong: EncodeDecodeFn = async (x) => tf.zeros([x.shape[0], x.shape[1], x.shape[2], K + 1]);
  await assert.rejects(inferenceLogits(wrong, imgs, metas, K), /expected logits \[2, 40, 52, 3\].*got \[2,40,52,4\]/);
  await assert.rejects(slideLogits(wrong, imgs, K, [24, 24], [16, 16]), /expected logits/);
  let n = 0;
  const failing: EncodeDecodeFn = async (x) => {
    if (++n === 3) throw new Error('engine failed');
    return fwd(x);
  };
  await assert.rejects(inferenceLogits(failing, imgs, metas, K, { scales: [1, 0.5], flip: true }), /engine failed/);
  n = 0;
  await assert.rejects(slideLogits(failing, imgs, K, [24, 24], [16, 16]), /engine failed/);
  await assert.rejects(inferenceLogits(fwd, imgs, metas, K, { mode: 'slide' }), /needs cropSize and stride/);
  await assert.rejects(inferenceLogits(fwd, imgs, metas.slice(1), K), /1 metas for 2 images/);
  assert.equal(tf.memory().numTensors, before, 'no tensor escapes on success or failure');
  imgs.dispose();
});
