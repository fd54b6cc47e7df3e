/** The fused host kernels (src/kernels/) against the tfjs kernel chains they replace, on cpu and wasm. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { labelLogSoftmax } from '../src/kernels/softmax.ts';
import { setHostKernels } from '../src/kernels/host.ts';
import { crossEntropy } from '../src/ops/losses.ts';
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
