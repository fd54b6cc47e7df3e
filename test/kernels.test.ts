/** The fused host kernels (src/kernels/) against the tfjs kernel chains they replace, on cpu and wasm. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { labelLogSoftmax } from '../src/kernels/softmax.ts';
import { setHostKernels } from '../src/kernels/host.ts';
import { accuracy, crossEntropy } from '../src/ops/losses.ts';
import { maxAbsDiff } from './helpers/fixtures.ts';

for (const backend of ['cpu', 'wasm']) {
  test(`labelLogSoftmax: value and gradient of the logSoftmax/one-hot chain on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const logits = tf.randomNormal([50, 7], 0, 4, 'float32', 1) as tf.Tensor2D;
    const labels = tf.tensor1d(Array.from({ length: 50 }, (_, i) => (i * 3) % 7), 'int32');
    const dy = tf.randomNormal([50], 0, 1, 'float32', 2);
    const chain = (x: tf.Tensor) => tf.sum(tf.mul(tf.logSoftmax(x, -1), tf.oneHot(labels, 7)), -1);
    const fused = (x: tf.Tensor) => labelLogSoftmax(x as tf.Tensor2D, labels);
    assert.ok(maxAbsDiff(fused(logits), chain(logits)) < 1e-5);
    const g1 = tf.grad(fused)(logits, dy), g2 = tf.grad(chain)(logits, dy);
    assert.ok(maxAbsDiff(g1, g2) < 1e-6, `grad diff ${maxAbsDiff(g1, g2)}`);
    // Large logits stay finite (max subtracted).
    const big = tf.mul(logits, 1000) as tf.Tensor2D;
    assert.ok(fused(big).dataSync().every(Number.isFinite));
    assert.throws(() => labelLogSoftmax(logits, tf.fill([50], 7, 'int32') as tf.Tensor1D), /label 7 at row 0 is outside \[0, 7\)/);
    // Rows labelled ignoreIndex: 0 and no gradient; 600 rows span the native kernel's row blocks.
    const x = tf.randomNormal([600, 6], 0, 3, 'float32', 4) as tf.Tensor2D;
    const lab = Array.from({ length: 600 }, (_, i) => (i % 7 === 0 ? 255 : (i * 5) % 6));
    const keep = tf.tensor1d(lab.map((l) => (l === 255 ? 0 : 1)));
    const safe = tf.tensor1d(lab.map((l) => (l === 255 ? 0 : l)), 'int32');
    const chainIgn = (t: tf.Tensor) => tf.mul(tf.sum(tf.mul(tf.logSoftmax(t, -1), tf.oneHot(safe, 6)), -1), keep);
    const fusedIgn = (t: tf.Tensor) => labelLogSoftmax(t as tf.Tensor2D, tf.tensor1d(lab, 'int32'), 255);
    assert.ok(maxAbsDiff(fusedIgn(x), chainIgn(x)) < 1e-5);
    const dyIgn = tf.randomNormal([600], 0, 1, 'float32', 5);
    const gf = tf.grad(fusedIgn)(x, dyIgn), gc = tf.grad(chainIgn)(x, dyIgn);
    assert.ok(maxAbsDiff(gf, gc) < 1e-6, `grad diff with ignored rows ${maxAbsDiff(gf, gc)}`);
    assert.ok(gf.slice([0, 0], [1, 6]).dataSync().every((v) => v === 0));
    await tf.setBackend('cpu');
  });

  test(`accuracy: the one-pass count equals the kernel chain on ${backend}, ties to the first maximum`, async () => {
    assert.ok(await tf.setBackend(backend));
    // Rounded logits make ties; every 5th pixel ignored.
    const logits = tf.round(tf.randomNormal([3, 7, 9, 5], 0, 1.5, 'float32', 6));
    const labels = tf.tensor3d(Array.from({ length: 189 }, (_, i) => (i % 5 === 0 ? 255 : (i * 3) % 5)), [3, 7, 9], 'int32');
    const run = (on: boolean, l: tf.Tensor) => {
      const prev = setHostKernels(on);
      const v = accuracy(logits, l).dataSync()[0];
      setHostKernels(prev);
      return v;
    };
    assert.equal(run(true, labels), run(false, labels));
    const ignored = tf.fill([3, 7, 9], 255, 'int32');
    assert.equal(run(true, ignored), 0);
    assert.equal(run(false, ignored), 0);
    await tf.setBackend('cpu');
  });

  test(`crossEntropy with ignored pixels and class weights: fused equals the kernel chain on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const logits = tf.randomNormal([2, 5, 6, 4], 0, 2, 'float32', 3);
    const labels = tf.tensor3d(Array.from({ length: 60 }, (_, i) => (i % 9 === 0 ? 255 : i % 4)), [2, 5, 6], 'int32');
    const opts = { classWeights: [1, 2, 0.5, 1], avgNonIgnore: true };
    const run = (on: boolean) => {
      const prev = setHostKernels(on);
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => crossEntropy(x, labels, opts))(logits);
      setHostKernels(prev);
      return [value, grad];
    };
    const [v1, g1] = run(true), [v2, g2] = run(false);
    assert.ok(maxAbsDiff(v1, v2) < 1e-6, `loss diff ${maxAbsDiff(v1, v2)}`);
    assert.ok(maxAbsDiff(g1, g2) < 1e-7, `grad diff ${maxAbsDiff(g1, g2)}`);
    await tf.setBackend('cpu');
  });
}
