/** OHEM pixel sampler (mmseg OHEMPixelSampler) and weighted cross-entropy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { kthSmallest, ohemPixelWeights } from '../src/ops/pixel_sampler.ts';
import { crossEntropy } from '../src/ops/losses.ts';
import { buildModel } from '../src/models/build.ts';
import type { EncoderDecoder } from '../src/models/encoder_decoder.ts';
import { Rng } from '../src/nn/random.ts';

await tf.setBackend('cpu');

function randomCase(seed: number, n = 2, h = 6, w = 5, c = 4) {
  const rng = new Rng(seed);
  const logits = tf.tensor4d(Float32Array.from({ length: n * h * w * c }, () => 2 * rng.normal()), [n, h, w, c]);
  const labels = tf.tensor3d(Int32Array.from({ length: n * h * w }, () => (rng.uniform() < 0.2 ? 255 : Math.floor(rng.uniform() * c))), [n, h, w], 'int32');
  return { logits, labels };
}

/** Probability of the label per pixel, straight from the definition. */
function labelProbs(logits: tf.Tensor4D, labels: tf.Tensor3D): { p: number[]; lab: number[] } {
  const c = logits.shape[3];
  const l = logits.dataSync(), lab = Array.from(labels.dataSync());
  const p = lab.map((y, i) => {
    const row = Array.from(l.slice(i * c, (i + 1) * c));
    const m = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
    return y === 255 ? NaN : Math.exp(row[y] - m) / z;
  });
  return { p, lab };
}

test('kthSmallest equals sorting', () => {
  const rng = new Rng(5);
  for (const n of [1, 2, 7, 100, 1001]) {
    const a = Float32Array.from({ length: n }, () => Math.round(rng.uniform() * 20));
    const sorted = Array.from(a).sort((x, y) => x - y);
    for (const k of [0, n >> 1, n - 1]) assert.equal(kthSmallest(Float32Array.from(a), k), sorted[k]);
  }
});

test('OHEM with thresh: keeps pixels below max(thresh, k-th smallest label probability); ignored get 0', () => {
  const { logits, labels } = randomCase(1);
  const { p, lab } = labelProbs(logits, labels);
  const validP = p.filter((v, i) => lab[i] !== 255).sort((a, b) => a - b);
  for (const [thresh, minKept] of [[0.7, 3], [0.05, 20], [0.3, 1000]] as const) {
    const got = Array.from(ohemPixelWeights(logits, labels, { thresh, minKept }).dataSync());
    const threshold = Math.max(validP[Math.min(minKept * 2, validP.length - 1)], thresh);
    const want: number[] = p.map((v, i) => (lab[i] !== 255 && v < threshold - 1e-6 ? 1 : 0));
    // Pixels within float error of the threshold may go either way.
    p.forEach((v, i) => { if (lab[i] !== 255 && Math.abs(v - threshold) < 1e-5) want[i] = got[i]; });
    assert.deepEqual(got, want, `thresh ${thresh} min_kept ${minKept}`);
  }
});

test('OHEM without thresh: exactly min_kept*N hardest non-ignored pixels', () => {
  const { logits, labels } = randomCase(2);
  const { p, lab } = labelProbs(logits, labels);
  const got = Array.from(ohemPixelWeights(logits, labels, { minKept: 5 }).dataSync());
  assert.equal(got.reduce((a, b) => a + b, 0), 10);
  const hardest = p.map((v, i) => [v, i] as const).filter(([, i]) => lab[i] !== 255).sort((a, b) => a[0] - b[0]).slice(0, 10).map(([, i]) => i);
  assert.deepEqual(got.flatMap((v, i) => (v ? [i] : [])), hardest.sort((a, b) => a - b));
  const all = Array.from(ohemPixelWeights(logits, labels, { minKept: 1000 }).dataSync());
  assert.deepEqual(all, lab.map((y) => (y === 255 ? 0 : 1)));
});

test('crossEntropy pixel weights: ones change nothing; a mask sums only the kept pixels over all pixels', () => {
  const { logits, labels } = randomCase(3);
  const plain = crossEntropy(logits, labels).dataSync()[0];
  assert.ok(Math.abs(crossEntropy(logits, labels, { pixelWeights: tf.onesLike(labels).toFloat() }).dataSync()[0] - plain) < 1e-6);
  const { p, lab } = labelProbs(logits, labels);
  const mask = lab.map((_, i) => i % 3 === 0 ? 1 : 0);
  const want = p.reduce((s, v, i) => s + (lab[i] !== 255 && mask[i] ? -Math.log(v) : 0), 0) / lab.length;
  const got = crossEntropy(logits, labels, { pixelWeights: tf.tensor3d(mask, labels.shape as [number, number, number]) }).dataSync()[0];
  assert.ok(Math.abs(got - want) < 1e-5 * Math.max(1, want), `${got} vs ${want}`);
});

test('decode_head.sampler config is parsed; unknown type and missing min_kept are clear errors', async () => {
  const cfg = (sampler?: unknown) => ({
    type: 'EncoderDecoder',
    backbone: { type: 'Conv2Former', variant: { dims: [8, 8, 8, 8], depths: [1, 1, 1, 1], kernel_size: 3 }, drop_path_rate: 0 },
    decode_head: { type: 'UPerHead', channels: 8, num_classes: 3, dropout_ratio: 0, ...(sampler ? { sampler } : {}) },
  });
  const m = (await buildModel(cfg({ type: 'OHEMPixelSampler', thresh: 0.5, min_kept: 10 }), { file: 'c', log: () => {} })) as EncoderDecoder;
  assert.deepEqual(m.decodeHead.sampler, { minKept: 10, thresh: 0.5 });
  await assert.rejects(buildModel(cfg({ type: 'OHEM', min_kept: 1 }), { file: 'c' }), /c: model\.decode_head\.sampler\.type: expected one of 'OHEMPixelSampler', got "OHEM"/);
  await assert.rejects(buildModel(cfg({ type: 'OHEMPixelSampler', thresh: 0.7 }), { file: 'c' }), /c: model\.decode_head\.sampler: missing required key 'min_kept'/);
  m.dispose();
});
