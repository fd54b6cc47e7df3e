/**
 * RoIAlign against torchvision's roi_align (outputs and feature gradients of sum(out * upstream),
 * 4 cases aligned x sampling_ratio) on cpu and wasm; the multi-level extractor's level mapping and
 * order; no tensors leak across forward + backward.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { roiAlign } from '../src/ops/roi_align.ts';
import { SingleRoIExtractor } from '../src/heads/roi/roi_extractor.ts';
import { fixturePath, maxAbsDiff } from './helpers/fixtures.ts';

interface RoIAlignFixture {
  features: number[][][][];
  rois: number[][];
  spatial_scale: number;
  output_size: [number, number];
  upstream_grad: number[][][][];
  cases: { sampling_ratio: number; aligned: boolean; output: number[][][][]; grad_features: number[][][][] }[];
}

const FIX = (JSON.parse(readFileSync(fixturePath('ops', 'torchvision_ops.json'), 'utf8')) as { roi_align: RoIAlignFixture }).roi_align;
const nhwc = (a: number[][][][]): tf.Tensor4D => tf.tidy(() => tf.tensor4d(a).transpose([0, 2, 3, 1]));

for (const backend of ['cpu', 'wasm']) {
  test(`roiAlign equals torchvision roi_align, outputs and feature gradients (${backend})`, async () => {
    assert.ok(await tf.setBackend(backend), `backend ${backend}`);
    const feats = nhwc(FIX.features);
    const rois = tf.tensor2d(FIX.rois);
    const dy = nhwc(FIX.upstream_grad);
    for (const c of FIX.cases) {
      const opts = { outputSize: FIX.output_size, spatialScale: FIX.spatial_scale, samplingRatio: c.sampling_ratio, aligned: c.aligned };
      const name = `aligned=${c.aligned} sampling_ratio=${c.sampling_ratio}`;
      const { value, grads } = tf.valueAndGrads((f: tf.Tensor) => tf.sum(tf.mul(roiAlign(f as tf.Tensor4D, rois, opts), dy)))([feats]);
      const out = roiAlign(feats, rois, opts);
      const want = nhwc(c.output);
      const wantGrad = nhwc(c.grad_features);
      assert.ok(maxAbsDiff(out, want) < 1e-5, `${name}: output err ${maxAbsDiff(out, want)}`);
      assert.ok(maxAbsDiff(grads[0], wantGrad) < 1e-5, `${name}: grad err ${maxAbsDiff(grads[0], wantGrad)}`);
      tf.dispose([value, grads, out, want, wantGrad]);
    }
    tf.dispose([feats, rois, dy]);
  });

  test(`roiAlign inside variableGrads leaks no tensors (${backend})`, async () => {
    assert.ok(await tf.setBackend(backend));
    const v = tf.variable(tf.randomNormal([2, 9, 11, 3], 0, 1, 'float32', 1) as tf.Tensor4D);
    const rois = tf.tensor2d([[0, 1, 1, 20, 30], [1, -4, 2, 8, 9], [1, 0, 0, 0, 0]]);
    const opts = { outputSize: [3, 2] as [number, number], spatialScale: 0.5, samplingRatio: 0, aligned: true };
    const step = (): void => {
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(roiAlign(v, rois, opts))));
      tf.dispose([value, grads]);
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) step();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([v, rois]);
  });
}

test('SingleRoIExtractor maps roi levels as MMDet (floor(log2(sqrt(wh)/56 + 1e-6)), clamped)', () => {
  const ex = new SingleRoIExtractor({ outputSize: [7, 7], featmapStrides: [4, 8, 16, 32] });
  const sides = [10, 111.9, 112, 223, 224, 447, 448, 1000];
  const rois = new Float32Array(sides.flatMap((s) => [0, 5, 5, 5 + s, 5 + s]));
  assert.deepEqual(Array.from(ex.mapRoiLevels(rois, 4)), [0, 0, 1, 1, 2, 2, 3, 3]);
  assert.deepEqual(Array.from(ex.mapRoiLevels(rois, 2)), [0, 0, 1, 1, 1, 1, 1, 1]);
  // not square: sqrt(w*h) = sqrt(56*448) = 158.4 -> level 1
  assert.deepEqual(Array.from(ex.mapRoiLevels(new Float32Array([0, 0, 0, 56, 448]), 4)), [1]);
});

test('SingleRoIExtractor pools each roi from its level, in the rois order, with gradients to every level', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const strides = [4, 8, 16];
  const feats = strides.map((s, i) => tf.randomNormal([2, 64 / s, 80 / s, 5], 0, 1, 'float32', 10 + i) as tf.Tensor4D);
  const extra = tf.zeros([2, 1, 1, 5]) as tf.Tensor4D; // a 4th map that must not be read
  const ex = new SingleRoIExtractor({ outputSize: [4, 3], samplingRatio: 2, featmapStrides: strides });
  const roiRows = [[1, 0, 0, 300, 200], [0, 3, 4, 20, 30], [1, 10, 12, 150, 140], [0, 8, 8, 40, 50]];
  const rois = new Float32Array(roiRows.flat());
  const levels = ex.mapRoiLevels(rois, 3);
  assert.deepEqual(Array.from(levels), [2, 0, 1, 0]);
  const out = ex.forward([...feats, extra], rois);
  assert.deepEqual(out.shape, [4, 4, 3, 5]);
  roiRows.forEach((row, r) => {
    const l = levels[r];
    const want = roiAlign(feats[l], tf.tensor2d([row]), { outputSize: [4, 3], spatialScale: 1 / strides[l], samplingRatio: 2, aligned: true });
    const got = out.slice([r, 0, 0, 0], [1, 4, 3, 5]);
    assert.ok(maxAbsDiff(got, want) < 1e-6, `roi ${r}`);
    tf.dispose([want, got]);
  });
  const grads = tf.grads((...fs: tf.Tensor[]) => tf.sum(ex.forward(fs as tf.Tensor4D[], rois)))(feats);
  assert.equal(grads.length, 3);
  // every roi's bins sum their (in-range) bilinear weights to 1 per channel: total gradient = bins x channels
  const total = grads.reduce((s, g) => s + tf.sum(g).dataSync()[0], 0);
  assert.ok(total > 0 && total <= 4 * 12 * 5 + 1e-3, `total grad ${total}`);
  tf.dispose([feats, extra, out, grads]);
});
