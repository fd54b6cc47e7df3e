/**
 * The optional native kernels (native/, src/kernels/native.ts) against the cpu backend's kernels:
 * every case the overrides take (and a few they hand back to wasm). Skipped where the addon is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { nativeKernelsStatus, registerNativeKernels } from '../src/kernels/native.ts';
import { maxAbsDiff } from './helpers/fixtures.ts';

const skip = nativeKernelsStatus().why?.startsWith('addon not loaded') ? `native kernels not built (${nativeKernelsStatus().why})` : false;

/** `f` on cpu and on wasm with the native kernels; max abs difference relative to the cpu result's scale. */
async function compare(f: () => tf.Tensor): Promise<number> {
  await tf.setBackend('cpu');
  const ref = f();
  const refData = ref.dataSync();
  await tf.setBackend('wasm');
  const got = f();
  const g = tf.tensor(got.dataSync(), got.shape);
  await tf.setBackend('cpu');
  const r = tf.tensor(refData, ref.shape);
  const scale = Math.max(1, ...Array.from(refData, Math.abs));
  assert.deepEqual(got.shape, ref.shape);
  return maxAbsDiff(g, r) / scale;
}

test('native kernels: matmul, conv2d, depthwise, exp, erf equal the cpu backend', { skip }, async () => {
  assert.ok(await tf.setBackend('wasm'));
  assert.ok(registerNativeKernels(2));
  assert.equal(nativeKernelsStatus().active, true);
  const rnd = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    const a = () => rnd(ta ? [3, 40, 70] : [3, 70, 40], 1), b = () => rnd(tb ? [3, 30, 40] : [3, 40, 30], 2);
    assert.ok(await compare(() => tf.matMul(a(), b(), ta, tb)) < 1e-5, `batched matmul ${ta} ${tb}`);
    // Batch broadcast (one side 1).
    const b1 = () => rnd(tb ? [1, 30, 40] : [1, 40, 30], 3);
    assert.ok(await compare(() => tf.matMul(a(), b1(), ta, tb)) < 1e-5, `broadcast matmul ${ta} ${tb}`);
  }
  assert.ok(await compare(() => tf.matMul(rnd([1, 300], 4), rnd([300, 1], 5))) < 1e-5, 'vector product');
  const convs: [number[], number[], number | [number, number], number | [number, number], 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]]][] = [
    [[2, 9, 11, 5], [3, 3, 5, 7], 1, 1, 'same'],
    [[2, 9, 11, 5], [3, 3, 5, 7], 2, 1, 'valid'],
    [[1, 16, 13, 3], [3, 3, 3, 8], 2, 1, [[0, 0], [1, 1], [1, 1], [0, 0]]],
    [[2, 12, 12, 4], [3, 3, 4, 6], 1, 2, [[0, 0], [2, 2], [2, 2], [0, 0]]],
    [[4, 6, 6, 2], [6, 6, 2, 3], 1, 1, 'valid'],
  ];
  for (const [xs, ws, s, d, p] of convs) {
    assert.ok(await compare(() => tf.conv2d(rnd(xs, 6) as tf.Tensor4D, rnd(ws, 7) as tf.Tensor4D, s, p, 'NHWC', d)) < 1e-5, `conv2d ${xs} ${ws} s${s} d${d} ${p}`);
    const dws = [ws[0], ws[1], xs[3], 1];
    assert.ok(await compare(() => tf.depthwiseConv2d(rnd(xs, 8) as tf.Tensor4D, rnd(dws, 9) as tf.Tensor4D, s, p, 'NHWC', d)) < 1e-5, `depthwise ${xs} ${dws} s${s} d${d} ${p}`);
  }
  // Channel multiplier 2: the wasm kernel's case.
  assert.ok(await compare(() => tf.depthwiseConv2d(rnd([1, 8, 8, 3], 10) as tf.Tensor4D, rnd([3, 3, 3, 2], 11) as tf.Tensor4D, 1, 'same')) < 1e-5);
  assert.ok(await compare(() => tf.exp(tf.mul(rnd([5000], 12), 5))) < 1e-6, 'exp');
  assert.ok(await compare(() => tf.erf(tf.mul(rnd([70000], 13), 2))) < 1e-6, 'erf');
});

test('native Concat and SplitV: the same values and shapes as the cpu backend, on every axis', { skip }, async () => {
  assert.ok(await tf.setBackend('wasm'));
  assert.ok(registerNativeKernels(2));
  const a = () => tf.range(0, 2 * 3 * 4 * 5).reshape([2, 3, 4, 5]).toFloat();
  const b = () => tf.range(100, 100 + 2 * 3 * 4 * 7).reshape([2, 3, 4, 7]).toFloat();
  for (let axis = -1; axis < 4; axis++) {
    const ax = axis < 0 ? 3 : axis;
    // Inputs sized along the axis: a's shape with 2 and 6 there.
    const x = () => tf.slice(tf.concat([a(), a()], ax), 0, [2, 3, 4, 5].map((d, i) => (i === ax ? 2 : d)));
    const y = () => tf.concat([a(), a(), a()], ax).slice(0, [2, 3, 4, 5].map((d, i) => (i === ax ? 6 : d)));
    assert.equal(await compare(() => tf.concat([x(), y(), tf.zeros([2, 3, 4, 5].map((d, i) => (i === ax ? 0 : d)))], axis)), 0, `concat axis ${axis}`);
    const d = 2 * [2, 3, 4, 5][ax];
    assert.equal(await compare(() => tf.concat(tf.split(tf.concat([a(), a()], ax), [1, 0, d - 1], axis).reverse(), ax)), 0, `split axis ${axis}`);
  }
  assert.equal(await compare(() => tf.concat([a(), b()], 3)), 0);
  const pieces = tf.split(b(), [2, 5], 3);
  assert.deepEqual(pieces.map((p) => p.shape), [[2, 3, 4, 2], [2, 3, 4, 5]]);
  assert.equal(await compare(() => tf.split(b(), 7, -1)[4]), 0);
  // int32 keeps the wasm kernels.
  assert.deepEqual(Array.from(tf.concat([tf.tensor1d([1, 2], 'int32'), tf.tensor1d([3], 'int32')]).dataSync()), [1, 2, 3]);
  await tf.setBackend('cpu');
});
