/**
 * Our convolution gradients (built from forward ops) against tfjs's own gradients on cpu, and the
 * same ops running on wasm, where tfjs lacks several convolution gradient kernels.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { conv2d, convOutSize, depthwiseFilterGradByTaps, dilateKernel, type ConvGeometry } from '../src/nn/conv_ops.ts';
import { maxRelDiff } from './helpers/fixtures.ts';

interface Case {
  name: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  g: ConvGeometry;
}

const geo = (stride: number | [number, number], pad: number | [[number, number], [number, number]], groups = 1, dilation = 1): ConvGeometry => ({
  stride: typeof stride === 'number' ? [stride, stride] : stride,
  padding: typeof pad === 'number' ? [[pad, pad], [pad, pad]] : pad,
  dilation: [dilation, dilation],
  groups,
});

const CASES: Case[] = [
  { name: 'dense 1x1', x: [2, 7, 9, 5], w: [1, 1, 5, 6], g: geo(1, 0) },
  { name: 'dense 3x3 stride 2', x: [2, 9, 8, 4], w: [3, 3, 4, 5], g: geo(2, 1) },
  { name: 'dense 3x3 stride 1', x: [1, 6, 7, 3], w: [3, 3, 3, 4], g: geo(1, 1) },
  { name: 'dense 2x2 stride 2', x: [2, 8, 10, 3], w: [2, 2, 3, 6], g: geo(2, 0) },
  { name: 'dense 2x2 stride 2, odd size', x: [2, 9, 11, 3], w: [2, 2, 3, 6], g: geo(2, 0) },
  { name: 'dense 5x5 stride (3,2) asymmetric pad', x: [1, 11, 10, 2], w: [5, 5, 2, 3], g: geo([3, 2], [[2, 1], [0, 2]]) },
  { name: 'dense 3x3 dilation 2', x: [1, 9, 9, 3], w: [3, 3, 3, 4], g: geo(1, 2, 1, 2) },
  // kh*kw*cin > 64: the filter gradient is a convolution (or per-tap matmuls for stride and dilation > 1)
  { name: 'dense 3x3 stride 1, wide', x: [2, 6, 7, 8], w: [3, 3, 8, 5], g: geo(1, 1) },
  { name: 'dense 3x3 stride 2, wide', x: [2, 9, 8, 8], w: [3, 3, 8, 5], g: geo(2, 1) },
  { name: 'dense 2x2 stride 2, odd size, wide', x: [2, 9, 11, 17], w: [2, 2, 17, 6], g: geo(2, 0) },
  { name: 'dense 5x5 stride (3,2) asymmetric pad, wide', x: [1, 11, 10, 3], w: [5, 5, 3, 3], g: geo([3, 2], [[2, 1], [0, 2]]) },
  { name: 'dense 3x3 dilation 2, wide', x: [1, 9, 9, 8], w: [3, 3, 8, 4], g: geo(1, 2, 1, 2) },
  { name: 'dense 3x3 stride 2 dilation 2, wide', x: [1, 11, 11, 8], w: [3, 3, 8, 3], g: geo(2, 2, 1, 2) },
  // The native filter gradient's row chunks (4 MB of patches: 455 rows here) and threads.
  { name: 'dense 3x3 stride 1, 256 channels', x: [1, 24, 24, 256], w: [3, 3, 256, 8], g: geo(1, 1) },
  { name: 'depthwise 3x3', x: [2, 6, 7, 5], w: [3, 3, 5, 1], g: geo(1, 1, 5) },
  { name: 'depthwise 11x11', x: [2, 12, 13, 4], w: [11, 11, 4, 1], g: geo(1, 5, 4) },
  { name: 'depthwise 3x3 stride 2', x: [2, 9, 8, 3], w: [3, 3, 3, 1], g: geo(2, 1, 3) },
  { name: 'depthwise 3x3 multiplier 2', x: [1, 6, 6, 3], w: [3, 3, 3, 2], g: geo(1, 1, 3) },
  { name: 'depthwise 3x3 dilation 2', x: [1, 9, 9, 3], w: [3, 3, 3, 1], g: geo(1, 2, 3, 2) },
  { name: 'depthwise 3x3 stride 2 dilation 2', x: [1, 11, 11, 2], w: [3, 3, 2, 1], g: geo(2, 2, 2, 2) },
];

function reference(x: tf.Tensor4D, w: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  // tfjs's reference gradients do not support dilation: spell the holes out in the kernel.
  const wd = dilateKernel(w, g.dilation);
  const xp = tf.pad(x, [[0, 0], g.padding[0], g.padding[1], [0, 0]]);
  return g.groups === 1 ? tf.conv2d(xp, wd, g.stride, 'valid') : tf.depthwiseConv2d(xp, wd, g.stride, 'valid');
}

function gradsOf(fn: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D, x: tf.Tensor4D, w: tf.Tensor4D, dy: tf.Tensor): tf.Tensor[] {
  return tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(fn(a as tf.Tensor4D, b as tf.Tensor4D), dy)))([x, w]);
}

test('conv2d forward and gradients equal tfjs own (cpu)', async () => {
  await tf.setBackend('cpu');
  for (const c of CASES) {
    tf.tidy(() => {
      const x = tf.randomNormal(c.x, 0, 1, 'float32', 1) as tf.Tensor4D;
      const w = tf.randomNormal(c.w, 0, 1, 'float32', 2) as tf.Tensor4D;
      const yRef = reference(x, w, c.g);
      const y = conv2d(x, w, c.g);
      assert.deepEqual(y.shape, yRef.shape, c.name);
      const ho = convOutSize(c.x[1], c.w[0], c.g.stride[0], c.g.padding[0][0], c.g.padding[0][1], c.g.dilation[0]);
      assert.equal(y.shape[1], ho, `${c.name}: PyTorch output height`);
      assert.ok(maxRelDiff(y, yRef) < 1e-5, `${c.name}: forward`);
      const dy = tf.randomNormal(yRef.shape, 0, 1, 'float32', 3);
      const [gxRef, gwRef] = gradsOf((a, b) => reference(a, b, c.g), x, w, dy);
      const [gx, gw] = gradsOf((a, b) => conv2d(a, b, c.g), x, w, dy);
      assert.ok(maxRelDiff(gx, gxRef) < 1e-4, `${c.name}: input gradient rel err ${maxRelDiff(gx, gxRef)}`);
      assert.ok(maxRelDiff(gw, gwRef) < 1e-4, `${c.name}: filter gradient rel err ${maxRelDiff(gw, gwRef)}`);
    });
  }
});

test('grouped conv equals per-group convs', async () => {
  await tf.setBackend('cpu');
  tf.tidy(() => {
    const x = tf.randomNormal([1, 6, 6, 4], 0, 1, 'float32', 4) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 2, 6], 0, 1, 'float32', 5) as tf.Tensor4D;
    const y = conv2d(x, w, geo(1, 1, 2));
    const [x0, x1] = tf.split(x, 2, 3) as tf.Tensor4D[];
    const [w0, w1] = tf.split(w, 2, 3) as tf.Tensor4D[];
    const yRef = tf.concat([reference(x0, w0, geo(1, 1)), reference(x1, w1, geo(1, 1))], 3);
    assert.ok(maxRelDiff(y, yRef) < 1e-5);
  });
});

test('conv2d forward and gradients on wasm equal the cpu results', async () => {
  const results: Record<string, { y: Float32Array; gx: Float32Array; gw: Float32Array }[]> = {};
  for (const backend of ['cpu', 'wasm']) {
    assert.ok(await tf.setBackend(backend), `backend ${backend}`);
    results[backend] = CASES.map((c) => tf.tidy(() => {
      const x = tf.tensor(Float32Array.from({ length: c.x.reduce((a, b) => a * b) }, (_, i) => Math.sin(i * 0.37)), c.x) as tf.Tensor4D;
      const w = tf.tensor(Float32Array.from({ length: c.w.reduce((a, b) => a * b) }, (_, i) => Math.cos(i * 0.53)), c.w) as tf.Tensor4D;
      const y = conv2d(x, w, c.g);
      const dy = tf.tensor(Float32Array.from({ length: y.size }, (_, i) => Math.sin(i * 0.11)), y.shape);
      const [gx, gw] = gradsOf((a, b) => conv2d(a, b, c.g), x, w, dy);
      return { y: y.dataSync() as Float32Array, gx: gx.dataSync() as Float32Array, gw: gw.dataSync() as Float32Array };
    }));
  }
  CASES.forEach((c, i) => {
    for (const k of ['y', 'gx', 'gw'] as const) {
      const a = results.wasm[i][k];
      const b = results.cpu[i][k];
      const scale = b.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
      const err = a.reduce((m, v, j) => Math.max(m, Math.abs(v - b[j])), 0);
      assert.ok(err / scale < 1e-4, `${c.name} ${k}: wasm vs cpu rel err ${err / scale}`);
    }
  });
});

for (const backend of ['cpu', 'wasm']) {
  test(`depthwise filter gradient tap by tap (large maps) equals the convolution form on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const cases: { k: number; stride: number; dilation: number; pad: number; m: number }[] = [
      { k: 3, stride: 1, dilation: 1, pad: 1, m: 1 },
      { k: 5, stride: 2, dilation: 1, pad: 2, m: 1 },
      { k: 3, stride: 1, dilation: 2, pad: 2, m: 2 },
    ];
    for (const { k, stride, dilation, pad, m } of cases) {
      tf.tidy(() => {
        const c = 3;
        const x = tf.randomNormal([2, 9, 11, c], 0, 1, 'float32', 11) as tf.Tensor4D;
        const w = tf.randomNormal([k, k, c, m], 0, 1, 'float32', 12) as tf.Tensor4D;
        const g: ConvGeometry = { stride: [stride, stride], padding: [[pad, pad], [pad, pad]], dilation: [dilation, dilation], groups: c };
        const y = conv2d(x, w, g);
        const dy = tf.randomNormal(y.shape, 0, 1, 'float32', 13) as tf.Tensor4D;
        const ref = tf.grad((ww: tf.Tensor) => tf.sum(tf.mul(conv2d(x, ww as tf.Tensor4D, g), dy)))(w);
        let xPad = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]]) as tf.Tensor4D;
        if (m > 1) xPad = tf.tile(xPad.reshape([...xPad.shape.slice(0, 3), c, 1]), [1, 1, 1, 1, m]).reshape([...xPad.shape.slice(0, 3), c * m]) as tf.Tensor4D;
        const got = depthwiseFilterGradByTaps(xPad, dy, w.shape, g);
        const err = maxRelDiff(got, ref);
        assert.ok(err < 1e-5, `k${k} s${stride} d${dilation} m${m}: rel err ${err}`);
      });
    }
  });
}
