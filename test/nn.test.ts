/** The nn layer: state dicts in PyTorch layout, layers against hand-computed values, RNG state. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { gelu } from '../src/nn/activation.ts';
import { Sequential } from '../src/nn/container.ts';
import { Conv2d } from '../src/nn/conv2d.ts';
import { DropPath } from '../src/nn/drop_path.ts';
import { Linear } from '../src/nn/linear.ts';
import { BatchNorm2d, GroupNorm, LayerNorm, layerNormLastAxis } from '../src/nn/norm.ts';
import '@tensorflow/tfjs-backend-wasm';
import { Rng, globalRng, manualSeed } from '../src/nn/random.ts';
import type { RawTensor } from '../src/io/tensor_data.ts';
import { maxAbsDiff } from './helpers/fixtures.ts';
import { setHostKernels } from '../src/kernels/host.ts';
import { runningStatsUpdate } from '../src/kernels/norm.ts';

/** Bit-for-bit equal, or (`close`) within 1e-6 of each other. */
function sameValues(a: tf.Tensor, b: tf.Tensor, close: boolean): void {
  if (!close) assert.deepEqual(Array.from(a.dataSync()), Array.from(b.dataSync()));
  else assert.ok(maxAbsDiff(a, b) < 1e-6, `max abs diff ${maxAbsDiff(a, b)}`);
}

await tf.setBackend('cpu');

const raw = (shape: number[], f: (i: number) => number): RawTensor => ({
  dtype: 'float32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)),
});

/** Direct NCHW convolution from PyTorch-layout weights, as the reference for our layouts. */
function naiveConvNCHW(x: Float32Array, [n, c, h, w]: number[], wt: Float32Array, [o, cg, kh, kw]: number[], groups: number, pad: number, stride: number): { y: Float32Array; shape: number[] } {
  const ho = Math.floor((h + 2 * pad - kh) / stride) + 1;
  const wo = Math.floor((w + 2 * pad - kw) / stride) + 1;
  const y = new Float32Array(n * o * ho * wo);
  const og = o / groups;
  for (let b = 0; b < n; b++) for (let oc = 0; oc < o; oc++) for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) {
    let s = 0;
    const g = Math.floor(oc / og);
    for (let ci = 0; ci < cg; ci++) for (let p = 0; p < kh; p++) for (let q = 0; q < kw; q++) {
      const yy = i * stride + p - pad;
      const xx = j * stride + q - pad;
      if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
      s += x[((b * c + g * cg + ci) * h + yy) * w + xx] * wt[((oc * cg + ci) * kh + p) * kw + q];
    }
    y[((b * o + oc) * ho + i) * wo + j] = s;
  }
  return { y, shape: [n, o, ho, wo] };
}

test('Conv2d loads PyTorch-layout weights (dense, depthwise with multiplier, grouped)', () => {
  const configs = [
    { cin: 3, cout: 4, k: 3, groups: 1, pad: 1, stride: 2 },
    { cin: 3, cout: 6, k: 3, groups: 3, pad: 1, stride: 1 },
    { cin: 4, cout: 6, k: 3, groups: 2, pad: 0, stride: 1 },
  ];
  for (const cfg of configs) {
    const conv = new Conv2d(cfg.cin, cfg.cout, cfg.k, { groups: cfg.groups, padding: cfg.pad, stride: cfg.stride });
    const wShape = [cfg.cout, cfg.cin / cfg.groups, cfg.k, cfg.k];
    const w = raw(wShape, (i) => Math.sin(i * 1.3));
    const b = raw([cfg.cout], (i) => i * 0.1);
    conv.loadStateDict(new Map([['weight', w], ['bias', b]]));
    const xShape = [2, cfg.cin, 7, 6];
    const x = raw(xShape, (i) => Math.cos(i * 0.7));
    const ref = naiveConvNCHW(x.data as Float32Array, xShape, w.data as Float32Array, wShape, cfg.groups, cfg.pad, cfg.stride);
    tf.tidy(() => {
      const y = conv.forward(tf.tensor(x.data, xShape).transpose([0, 2, 3, 1]) as tf.Tensor4D);
      const refT = tf.add(tf.tensor(ref.y, ref.shape).transpose([0, 2, 3, 1]), b.data as Float32Array);
      assert.ok(maxAbsDiff(y, refT) < 1e-5, JSON.stringify(cfg));
    });
    // stateDict gives back the exact PyTorch layout.
    const sd = conv.stateDict();
    assert.deepEqual(sd.get('weight')!.shape, wShape);
    assert.deepEqual([...sd.get('weight')!.data], [...w.data]);
    conv.dispose();
  }
});

test('Linear keeps PyTorch [out, in] weights', () => {
  const lin = new Linear(3, 2);
  lin.loadStateDict(new Map([['weight', raw([2, 3], (i) => i)], ['bias', raw([2], () => 1)]]));
  const y = tf.tidy(() => lin.forward(tf.tensor2d([[1, 2, 3]])).arraySync());
  assert.deepEqual(y, [[0 + 2 + 6 + 1, 3 + 8 + 15 + 1]]);
  lin.dispose();
});

test('loadStateDict: strict and non-strict, shape mismatch names the key', () => {
  const seq = new Sequential([new Conv2d(2, 2, 1), new BatchNorm2d(2)]);
  const keys = [...seq.stateDict().keys()];
  assert.deepEqual(keys, ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked']);
  assert.equal(seq.stateDict().get('1.num_batches_tracked')!.dtype, 'int64');
  const partial = new Map([['0.weight', raw([2, 2, 1, 1], () => 1)], ['extra', raw([1], () => 0)]]);
  assert.throws(() => seq.loadStateDict(partial), /missing keys \[0\.bias.*unexpected keys \[extra\]/);
  const res = seq.loadStateDict(partial, { strict: false });
  assert.deepEqual(res.unexpected, ['extra']);
  assert.equal(res.missing.length, 6);
  assert.throws(() => seq.loadStateDict(new Map([['0.weight', raw([3, 2, 1, 1], () => 1)]]), { strict: false }),
    /shape mismatch for '0\.weight': checkpoint has \[3, 2, 1, 1\], model expects \[2, 2, 1, 1\]/);
  seq.dispose();
});

for (const backend of ['cpu', 'wasm']) {
  // The kernel chains reproduce the formula's kernels bit for bit; the fused kernels
  // (src/kernels/norm.ts) sum in float64 in another order: within float32 rounding.
  for (const fused of [false, true]) {
    const label = fused ? ', fused kernels' : ', kernel chains';
    const valueCheck = fused ? 'within 1e-6' : 'bit for bit';
    test(`layerNormLastAxis: the autodiffed formula's value (${valueCheck}) and gradients (1e-5) on ${backend}${label}`, async () => {
      assert.ok(await tf.setBackend(backend));
      const prev = setHostKernels(fused);
      const x = tf.randomNormal([2, 5, 3, 8], 0.5, 2, 'float32', 1);
      const w = tf.randomNormal([8], 1, 0.5, 'float32', 2), b = tf.randomNormal([8], 0, 1, 'float32', 3);
      const dy = tf.randomNormal([2, 5, 3, 8], 0, 1, 'float32', 4);
      const textbook = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
        const { mean, variance } = tf.moments(xi, 3, true);
        return tf.add(tf.mul(tf.mul(tf.sub(xi, mean), tf.rsqrt(tf.add(variance, 1e-6))), wi), bi);
      };
      const ref = tf.grads(textbook)([x, w, b], dy);
      const got = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => layerNormLastAxis(xi, wi, bi, 1e-6))([x, w, b], dy);
      sameValues(layerNormLastAxis(x, w, b, 1e-6), textbook(x, w, b), fused);
      ['dx', 'dweight', 'dbias'].forEach((name, i) => {
        const diff = maxAbsDiff(got[i], ref[i]);
        assert.ok(diff < 1e-5, `${name}: max abs diff ${diff}`);
      });
      tf.dispose([x, w, b, dy, ...ref, ...got]);
      setHostKernels(prev);
      await tf.setBackend('cpu');
    });

    test(`BatchNorm2d in training: the autodiffed formula's value (${valueCheck}), gradients (1e-5) and running stats on ${backend}${label}`, async () => {
      assert.ok(await tf.setBackend(backend));
      const prev = setHostKernels(fused);
      const x = tf.randomNormal([3, 4, 5, 6], 0.5, 2, 'float32', 5) as tf.Tensor4D;
      const dy = tf.randomNormal([3, 4, 5, 6], 0, 1, 'float32', 6);
      const bn = new BatchNorm2d(6).train();
      bn.weight.variable.assign(tf.randomNormal([6], 1, 0.5, 'float32', 7));
      bn.bias.variable.assign(tf.randomNormal([6], 0, 1, 'float32', 8));
      const [w, b] = [bn.weight.variable, bn.bias.variable];
      const textbook = (xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor) => {
        const { mean, variance } = tf.moments(xi, [0, 1, 2]);
        return tf.add(tf.mul(tf.sub(xi, mean), tf.mul(wi, tf.rsqrt(tf.add(variance, 1e-5)))), bi);
      };
      const ref = tf.grads(textbook)([x, w, b], dy);
      const got = tf.grads((xi: tf.Tensor) => bn.forward(xi as tf.Tensor4D))([x], dy);
      const wb = tf.variableGrads(() => tf.sum(tf.mul(bn.forward(x), dy)) as tf.Scalar, [w, b]);
      sameValues(tf.tidy(() => bn.forward(x)), tf.tidy(() => textbook(x, w, b)), fused);
      for (const [name, g, r] of [['dx', got[0], ref[0]], ['dweight', wb.grads[w.name], ref[1]], ['dbias', wb.grads[b.name], ref[2]]] as const) {
        const diff = maxAbsDiff(g, r);
        assert.ok(diff < 1e-5, `${name}: max abs diff ${diff}`);
      }
      // Three training forwards: the running mean moved three times towards the batch mean.
      assert.equal(bn.numBatchesTracked.value, 3);
      const batchMean = tf.tidy(() => tf.mean(x, [0, 1, 2]));
      const expected = tf.tidy(() => tf.mul(batchMean, 1 - 0.9 ** 3));
      assert.ok(maxAbsDiff(bn.runningMean.value, expected) < 1e-6);
      tf.dispose([x, dy, ...ref, ...got, wb.value, ...Object.values(wb.grads), batchMean, expected]);
      bn.dispose();
      setHostKernels(prev);
      await tf.setBackend('cpu');
    });
  }
}

test('LayerNorm and GroupNorm equal the textbook formulas', () => {
  const x = tf.tensor4d(Float32Array.from({ length: 2 * 3 * 2 * 4 }, (_, i) => Math.sin(i) * 3), [2, 3, 2, 4]);
  const ln = new LayerNorm(4, 1e-6);
  ln.loadStateDict(new Map([['weight', raw([4], (i) => i + 1)], ['bias', raw([4], (i) => -i)]]));
  const v = x.arraySync();
  const y = ln.forward(x).arraySync();
  for (const [b, i, j] of [[0, 0, 0], [1, 2, 1]]) {
    const row = v[b][i][j];
    const mu = row.reduce((a, c) => a + c) / 4;
    const va = row.reduce((a, c) => a + (c - mu) ** 2, 0) / 4;
    row.forEach((c, k) => assert.ok(Math.abs(y[b][i][j][k] - ((c - mu) / Math.sqrt(va + 1e-6) * (k + 1) - k)) < 1e-5));
  }
  const gn = new GroupNorm(2, 4);
  const yg = gn.forward(x).arraySync();
  // Group 0 of sample 0: channels 0,1 over all pixels.
  const vals: number[] = [];
  for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) vals.push(v[0][i][j][0], v[0][i][j][1]);
  const mu = vals.reduce((a, c) => a + c) / vals.length;
  const va = vals.reduce((a, c) => a + (c - mu) ** 2, 0) / vals.length;
  assert.ok(Math.abs(yg[0][1][1][1] - (v[0][1][1][1] - mu) / Math.sqrt(va + 1e-5)) < 1e-5);
  ln.dispose();
  gn.dispose();
  x.dispose();
});

test('BatchNorm2d: batch stats and running update in train, running stats in eval', () => {
  const bn = new BatchNorm2d(1);
  const x = tf.tensor4d([1, 2, 3, 6], [1, 2, 2, 1]); // mean 3, biased var 3.5, unbiased 14/3
  const yTrain = bn.forward(x).dataSync();
  assert.ok(Math.abs(yTrain[0] - (1 - 3) / Math.sqrt(3.5 + 1e-5)) < 1e-5);
  assert.ok(Math.abs(bn.runningMean.value.dataSync()[0] - 0.3) < 1e-6);
  assert.ok(Math.abs(bn.runningVar.value.dataSync()[0] - (0.9 + 0.1 * 14 / 3)) < 1e-6);
  assert.equal(bn.numBatchesTracked.value, 1);
  bn.eval();
  const yEval = bn.forward(x).dataSync();
  assert.ok(Math.abs(yEval[0] - (1 - 0.3) / Math.sqrt(0.9 + 0.1 * 14 / 3 + 1e-5)) < 1e-5);
  assert.equal(bn.numBatchesTracked.value, 1);
  bn.dispose();
  x.dispose();
});

test('GELU is the exact erf form, with a correct gradient', () => {
  const xs = [-3, -0.5, 0, 0.7, 2.5];
  const y = tf.tidy(() => gelu(tf.tensor1d(xs)).dataSync());
  const erf = (v: number) => { // Abramowitz-Stegun 7.1.26 is too coarse for 1e-6; use a series.
    let s = 0; let term = v; let k = 0;
    while (Math.abs(term) > 1e-17 && k < 200) { s += term / (2 * k + 1); k++; term *= -v * v / k; }
    return (2 / Math.sqrt(Math.PI)) * s;
  };
  xs.forEach((v, i) => assert.ok(Math.abs(y[i] - 0.5 * v * (1 + erf(v / Math.SQRT2))) < 2e-6, `gelu(${v})`));
  const g = tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(tf.tensor1d(xs)).dataSync());
  xs.forEach((v, i) => {
    const h = 1e-3;
    const f = (u: number) => 0.5 * u * (1 + erf(u / Math.SQRT2));
    assert.ok(Math.abs(g[i] - (f(v + h) - f(v - h)) / (2 * h)) < 1e-4, `gelu'(${v})`);
  });
});

test('DropPath: identity in eval, per-sample 0 or 1/keep in train', () => {
  const dp = new DropPath(0.5);
  const x = tf.ones([64, 2, 2, 1]);
  dp.eval();
  assert.equal(dp.forward(x), x);
  dp.train();
  const y = (dp.forward(x).reshape([64, 4]) as tf.Tensor2D).arraySync();
  for (const row of y) assert.ok(row.every((v) => v === 0) || row.every((v) => v === 2));
  const kept = y.filter((r) => r[0] === 2).length;
  assert.ok(kept > 10 && kept < 54, `kept ${kept} of 64`);
  x.dispose();
});

test('Rng: seeded, and its state restores the exact stream', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  assert.equal(a.nextUint32(), b.nextUint32());
  const s = a.getState();
  const next = [a.uniform(), a.uniform()];
  a.setState(s);
  assert.deepEqual([a.uniform(), a.uniform()], next);
  manualSeed(7);
  const first = globalRng.uniform();
  manualSeed(7);
  assert.equal(globalRng.uniform(), first);
  // Bounds are absolute, as in PyTorch's trunc_normal_(std, a=-2, b=2).
  for (let i = 0; i < 1000; i++) assert.ok(Math.abs(a.truncNormal(1)) <= 2);
});

test('stateDict leaves no tensors behind', () => {
  const seq = new Sequential([new Conv2d(2, 4, 3), new Conv2d(4, 4, 3, { groups: 4 }), new BatchNorm2d(4)]);
  const lin = new Linear(3, 2);
  const before = tf.memory().numTensors;
  seq.stateDict();
  lin.stateDict();
  assert.equal(tf.memory().numTensors, before);
  seq.dispose();
  lin.dispose();
});

for (const backend of ['cpu', 'wasm']) {
  test(`BatchNorm2d running statistics: the one-pass update equals the kernel chain bit for bit on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const [rm, rv, mean, variance] = [0, 1, 2, 3].map((i) => tf.abs(tf.randomNormal([37], i, 1 + i, 'float32', 20 + i)));
    const run = (host: boolean) => {
      const prev = setHostKernels(host);
      const out = runningStatsUpdate(rm, rv, mean, variance, 24, 0.1).map((t) => Array.from(t.dataSync()));
      setHostKernels(prev);
      return out;
    };
    assert.deepEqual(run(true), run(false));
    await tf.setBackend('cpu');
  });
}

test('BatchNorm2d with a StatReducer (SyncBN) on one process: the plain BN\'s value, gradients and running stats', async () => {
  await tf.setBackend('cpu');
  const x = tf.randomNormal([3, 5, 4, 6], 0.5, 2, 'float32', 11) as tf.Tensor4D;
  const dy = tf.randomNormal([3, 5, 4, 6], 0, 1, 'float32', 12);
  const run = (sync: boolean) => {
    const bn = new BatchNorm2d(6).train();
    bn.weight.variable.assign(tf.linspace(0.5, 1.5, 6));
    bn.bias.variable.assign(tf.linspace(-0.2, 0.3, 6));
    let calls = 0;
    if (sync) bn.sync = { sumSync: () => { calls++; } };
    const f = (xi: tf.Tensor) => tf.sum(tf.mul(bn.forward(xi as tf.Tensor4D), dy));
    const { value, grads } = tf.variableGrads(() => f(x) as tf.Scalar, [bn.weight.variable, bn.bias.variable]);
    const dx = tf.grad(f)(x);
    const out = { value: value.dataSync()[0], dw: grads[bn.weight.variable.name].dataSync(), db: grads[bn.bias.variable.name].dataSync(),
      dx: dx.dataSync(), rm: bn.runningMean.value.dataSync(), rv: bn.runningVar.value.dataSync(), calls };
    bn.dispose();
    return out;
  };
  const plain = run(false);
  const synced = run(true);
  assert.ok(synced.calls >= 4, 'statistics and gradient sums went through the reducer');
  assert.ok(Math.abs(plain.value - synced.value) <= 1e-4 * Math.abs(plain.value));
  for (const k of ['dw', 'db', 'dx', 'rm', 'rv'] as const) {
    const a = plain[k], b = synced[k];
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) <= 1e-4 * (1 + Math.abs(a[i])), `${k}[${i}]: ${a[i]} vs ${b[i]}`);
  }
  tf.dispose([x, dy]);
});
