/**
 * FPN (MMDetection 2.x): shapes and strides, the top-down path against a hand computation, torch
 * `nearest` semantics for sizes that do not divide, the extra levels of each `add_extra_convs`,
 * PyTorch keys, Xavier init, gradients, memory and the config builder's errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { ConfigError } from '../src/config/errors.ts';
import { validate } from '../src/config/schema.ts';
import { FPN, buildFPN, fpnSchema, resizeNearest, type FPNOptions } from '../src/necks/fpn.ts';
import type { RawTensor } from '../src/io/tensor_data.ts';
import { manualSeed } from '../src/nn/random.ts';
import { maxAbsDiff } from './helpers/fixtures.ts';

await tf.setBackend('cpu');
manualSeed(0);

/** Backbone-like outputs of a 50x38 image at strides 4, 8, 16, 32 (odd sizes: ceil at each stride). */
const SIZES: [number, number][] = [[13, 10], [7, 5], [4, 3], [2, 2]];
const CHANNELS = [4, 8, 16, 32];
const STRIDES = [4, 8, 16, 32];

function inputs(sizes = SIZES, channels = CHANNELS, n = 1): tf.Tensor4D[] {
  return sizes.map(([h, w], l) => tf.tidy(() => tf.sin(tf.add(tf.mul(tf.range(0, n * h * w * channels[l]), 0.37 + l * 0.1), l)).reshape([n, h, w, channels[l]]) as tf.Tensor4D));
}

/** torch `F.interpolate(mode='nearest', size=out)` index: `min(floor(dst * in / out), in - 1)`. */
const nearestSrc = (dst: number, inSize: number, outSize: number) => Math.min(Math.floor((dst * inSize) / outSize), inSize - 1);

/** Nearest-upsample an HWC array by the torch formula. */
function upsampleHand(x: Float32Array, [h, w]: [number, number], c: number, [ho, wo]: [number, number]): Float32Array {
  const y = new Float32Array(ho * wo * c);
  for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) for (let k = 0; k < c; k++) {
    y[(i * wo + j) * c + k] = x[(nearestSrc(i, h, ho) * w + nearestSrc(j, w, wo)) * c + k];
  }
  return y;
}

const raw = (shape: number[], data: Float32Array): RawTensor => ({ dtype: 'float32', shape, data });

/** 1x1 identity (PyTorch layout `[c, c, 1, 1]`) and a 3x3 kernel passing the centre through. */
function identityWeights(c: number, k: 1 | 3): RawTensor {
  const d = new Float32Array(c * c * k * k);
  const centre = (k * k - 1) / 2;
  for (let o = 0; o < c; o++) d[(o * c + o) * k * k + centre] = 1;
  return raw([c, c, k, k], d);
}

test('resizeNearest = torch nearest (src = floor(dst * in / out)) for sizes that do not divide, forward and gradient, batch 2, cpu and wasm', async () => {
  const cases: [[number, number], [number, number]][] = [[[3, 5], [7, 10]], [[2, 3], [5, 7]], [[4, 4], [8, 8]], [[3, 3], [5, 6]], [[5, 7], [9, 13]]];
  for (const backend of ['cpu', 'wasm']) {
    assert.ok(await tf.setBackend(backend));
    for (const [[h, w], [ho, wo]] of cases) {
      const c = 2, n = 2; // two images: tfjs-backend-cpu's own gradient mixed them up
      const xd = Float32Array.from({ length: n * h * w * c }, (_, i) => i);
      const wd = Float32Array.from({ length: n * ho * wo * c }, (_, i) => Math.sin(i) + 2);
      const x = tf.tensor4d(xd, [n, h, w, c]);
      const wts = tf.tensor4d(wd, [n, ho, wo, c]);
      const y = resizeNearest(x, [ho, wo]);
      const hand = [0, 1].flatMap((b) => [...upsampleHand(xd.subarray(b * h * w * c, (b + 1) * h * w * c), [h, w], c, [ho, wo])]);
      assert.deepEqual([...y.dataSync()], hand, `${backend} ${h}x${w} -> ${ho}x${wo}`);
      // d/dx sum(y * wts): each input cell collects the weights of the outputs that copy it.
      const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(resizeNearest(t as tf.Tensor4D, [ho, wo]), wts)))(x);
      const expected = new Float32Array(n * h * w * c);
      for (let b = 0; b < n; b++) for (let i = 0; i < ho; i++) for (let j = 0; j < wo; j++) for (let k = 0; k < c; k++) {
        expected[((b * h + nearestSrc(i, h, ho)) * w + nearestSrc(j, w, wo)) * c + k] += wd[((b * ho + i) * wo + j) * c + k];
      }
      assert.ok(maxAbsDiff(g, tf.tensor(expected, g.shape)) < 1e-5, `${backend} gradient ${h}x${w} -> ${ho}x${wo}`);
      tf.dispose([x, wts, y, g]);
    }
  }
  await tf.setBackend('cpu');
});

test('outputs: numOuts maps of outChannels at the input sizes, then ceil(H/2) per extra level; featureInfo strides', () => {
  for (const addExtraConvs of [false, 'on_input', 'on_lateral', 'on_output'] as const) {
    const fpn = new FPN({ inChannels: CHANNELS, outChannels: 8, numOuts: 5, addExtraConvs });
    const xs = inputs();
    const before = tf.memory().numTensors;
    const outs = fpn.forward(xs);
    assert.deepEqual(outs.map((o) => o.shape), [[1, 13, 10, 8], [1, 7, 5, 8], [1, 4, 3, 8], [1, 2, 2, 8], [1, 1, 1, 8]], String(addExtraConvs));
    assert.equal(tf.memory().numTensors, before + 5, 'only the outputs stay');
    assert.deepEqual(fpn.featureInfo(CHANNELS.map((channels, i) => ({ channels, stride: STRIDES[i] }))),
      [4, 8, 16, 32, 64].map((stride) => ({ channels: 8, stride })));
    tf.dispose([...outs, ...xs]);
    fpn.dispose();
  }
  // start_level 1 (RetinaNet-style): levels from the second input on, two extra ones.
  const fpn = new FPN({ inChannels: CHANNELS, outChannels: 6, numOuts: 5, startLevel: 1, addExtraConvs: 'on_input' });
  const xs = inputs();
  const outs = fpn.forward(xs);
  assert.deepEqual(outs.map((o) => o.shape), [[1, 7, 5, 6], [1, 4, 3, 6], [1, 2, 2, 6], [1, 1, 1, 6], [1, 1, 1, 6]]);
  assert.deepEqual(fpn.featureInfo(CHANNELS.map((channels, i) => ({ channels, stride: STRIDES[i] }))).map((f) => f.stride), [8, 16, 32, 64, 128]);
  tf.dispose([...outs, ...xs]);
  fpn.dispose();
});

test('top-down path with identity convs equals the hand computation: P_i = C_i + nearest(P_{i+1}) + biases', () => {
  const c = 3;
  const sizes: [number, number][] = [[7, 5], [4, 3], [2, 2]];
  const fpn = new FPN({ inChannels: [c, c, c], outChannels: c, numOuts: 3 });
  const lateralBias = [0.5, -0.25, 1];
  const fpnBias = [0.125, 2, -1];
  const dict = new Map<string, RawTensor>();
  for (let i = 0; i < 3; i++) {
    dict.set(`lateral_convs.${i}.conv.weight`, identityWeights(c, 1));
    dict.set(`lateral_convs.${i}.conv.bias`, raw([c], new Float32Array(c).fill(lateralBias[i])));
    dict.set(`fpn_convs.${i}.conv.weight`, identityWeights(c, 3));
    dict.set(`fpn_convs.${i}.conv.bias`, raw([c], new Float32Array(c).fill(fpnBias[i])));
  }
  fpn.loadStateDict(dict);
  const xs = inputs(sizes, [c, c, c]);
  const data = xs.map((x) => x.dataSync() as Float32Array);
  // Hand: laterals, top-down from the coarsest, then the (identity) output conv plus its bias.
  const lat = data.map((d, i) => d.map((v) => v + lateralBias[i]));
  for (let i = 2; i > 0; i--) {
    const up = upsampleHand(lat[i], sizes[i], c, sizes[i - 1]);
    lat[i - 1] = lat[i - 1].map((v, k) => v + up[k]);
  }
  const outs = fpn.forward(xs);
  outs.forEach((o, i) => {
    assert.ok(maxAbsDiff(o, tf.tensor(lat[i].map((v) => v + fpnBias[i]), o.shape)) < 1e-5, `level ${i}`);
  });
  tf.dispose([...outs, ...xs]);
  fpn.dispose();
});

test('without extra convs P6 = max_pool2d(P5, 1, stride=2): every other row/col, odd sizes give ceil', () => {
  for (const top of [[5, 3], [4, 7], [1, 1]] as [number, number][]) {
    const fpn = new FPN({ inChannels: [4, 8], outChannels: 4, numOuts: 4 });
    const xs = inputs([[2 * top[0], 2 * top[1]], top], [4, 8]);
    const outs = fpn.forward(xs);
    const [p5, p6, p7] = outs.slice(1);
    const ceil2 = (n: number) => Math.ceil(n / 2);
    assert.deepEqual(p6.shape, [1, ceil2(top[0]), ceil2(top[1]), 4]);
    assert.deepEqual(p7.shape, [1, ceil2(ceil2(top[0])), ceil2(ceil2(top[1])), 4]);
    tf.tidy(() => {
      const strided = tf.stridedSlice(p5, [0, 0, 0, 0], p5.shape, [1, 2, 2, 1]);
      assert.equal(maxAbsDiff(p6, strided), 0);
      assert.equal(maxAbsDiff(p7, tf.stridedSlice(p6, [0, 0, 0, 0], p6.shape, [1, 2, 2, 1])), 0);
    });
    tf.dispose([...outs, ...xs]);
    fpn.dispose();
  }
});

test("extra convs read the last input / lateral / output ('on_input' | 'on_lateral' | 'on_output'); relu_before_extra_convs", () => {
  for (const addExtraConvs of ['on_input', 'on_lateral', 'on_output'] as const) {
    for (const reluBeforeExtraConvs of [false, true]) {
      const fpn = new FPN({ inChannels: CHANNELS, outChannels: 8, numOuts: 6, addExtraConvs, reluBeforeExtraConvs });
      const xs = inputs();
      const outs = fpn.forward(xs);
      tf.tidy(() => {
        const lateralTop = fpn.lateralConvs.at(3).forward(xs[3]);
        const source = addExtraConvs === 'on_input' ? xs[3] : addExtraConvs === 'on_lateral' ? lateralTop : fpn.fpnConvs.at(3).forward(lateralTop);
        assert.ok(maxAbsDiff(outs[3], fpn.fpnConvs.at(3).forward(lateralTop)) < 1e-6, 'the top level has no top-down input');
        assert.ok(maxAbsDiff(outs[4], fpn.fpnConvs.at(4).forward(source)) < 1e-6, `${addExtraConvs}: P6`);
        const prev = (p: tf.Tensor4D) => (reluBeforeExtraConvs ? tf.relu(p) : p);
        assert.ok(maxAbsDiff(outs[5], fpn.fpnConvs.at(5).forward(prev(outs[4]))) < 1e-6, `${addExtraConvs} relu ${reluBeforeExtraConvs}: P7`);
      });
      tf.dispose([...outs, ...xs]);
      fpn.dispose();
    }
  }
});

test("PyTorch keys and shapes as MMDet's FPN (extra convs continue fpn_convs); Xavier-uniform weights, zero biases", () => {
  const fpn = new FPN({ inChannels: [8, 16, 32], outChannels: 16, numOuts: 5, addExtraConvs: 'on_input' });
  const shapes = fpn.namedParameters().map(([k, p]) => `${k} [${p.torchShape().join(',')}]`);
  assert.deepEqual(shapes, [
    'lateral_convs.0.conv.weight [16,8,1,1]', 'lateral_convs.0.conv.bias [16]',
    'lateral_convs.1.conv.weight [16,16,1,1]', 'lateral_convs.1.conv.bias [16]',
    'lateral_convs.2.conv.weight [16,32,1,1]', 'lateral_convs.2.conv.bias [16]',
    'fpn_convs.0.conv.weight [16,16,3,3]', 'fpn_convs.0.conv.bias [16]',
    'fpn_convs.1.conv.weight [16,16,3,3]', 'fpn_convs.1.conv.bias [16]',
    'fpn_convs.2.conv.weight [16,16,3,3]', 'fpn_convs.2.conv.bias [16]',
    'fpn_convs.3.conv.weight [16,32,3,3]', 'fpn_convs.3.conv.bias [16]',
    'fpn_convs.4.conv.weight [16,16,3,3]', 'fpn_convs.4.conv.bias [16]',
  ]);
  for (const [k, p] of fpn.namedParameters()) {
    const v = p.variable.dataSync() as Float32Array;
    if (k.endsWith('bias')) {
      assert.ok(v.every((x) => x === 0), `${k} is zero`);
      continue;
    }
    const [o, i, kh, kw] = p.torchShape();
    const bound = Math.sqrt(6 / ((i + o) * kh * kw));
    assert.ok(v.every((x) => Math.abs(x) <= bound), `${k} within ±${bound}`);
    // U(-b, b) has variance b²/3; a few hundred draws get within 25%.
    const variance = v.reduce((s, x) => s + x * x, 0) / v.length;
    assert.ok(Math.abs(variance / (bound * bound / 3) - 1) < 0.25, `${k} variance ${variance} vs ${bound * bound / 3}`);
  }
  // Without extra convs there are no extra parameters.
  const plain = new FPN({ inChannels: [8, 16, 32], outChannels: 16, numOuts: 5 });
  assert.equal(plain.namedParameters().length, 12);
  // A state dict round trip through the PyTorch names.
  plain.loadStateDict(fpn.stateDict(), { strict: false });
  fpn.dispose();
  plain.dispose();
});

test('gradients reach every parameter and input; a training step leaks no tensors', () => {
  const opts: FPNOptions = { inChannels: CHANNELS, outChannels: 8, numOuts: 5, addExtraConvs: 'on_output', reluBeforeExtraConvs: true };
  const fpn = new FPN(opts);
  const xs = inputs(SIZES, CHANNELS, 2);
  const vars = fpn.trainableVariables();
  assert.equal(vars.length, 2 * (4 + 4 + 1));
  const loss = () => tf.addN(fpn.forward(xs).map((o) => tf.mean(tf.square(o)))) as tf.Scalar;
  for (let step = 0; step < 2; step++) {
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(loss, vars);
    for (const v of vars) {
      const g = grads[v.name];
      assert.ok(g, `gradient for ${v.name}`);
      assert.ok(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0, `non-zero gradient for ${v.name}`);
    }
    tf.dispose([value, ...Object.values(grads)]);
    assert.equal(tf.memory().numTensors, before, `step ${step}: tensor count unchanged`);
  }
  const dx = tf.grads((...ins: tf.Tensor[]) => tf.addN(fpn.forward(ins as tf.Tensor4D[]).map((o) => tf.sum(o))))(xs);
  dx.forEach((g, i) => assert.deepEqual(g.shape, xs[i].shape));
  tf.dispose([...dx, ...xs]);
  fpn.dispose();
});

test('the constructor and forward reject bad arguments with what was expected', () => {
  assert.throws(() => new FPN({ inChannels: [4, 8], outChannels: 4, numOuts: 1 }), /numOuts must be an integer >= 2/);
  assert.throws(() => new FPN({ inChannels: [4, 8], outChannels: 4, numOuts: 3, startLevel: 2 }), /startLevel must be in \[0, 1\]/);
  const fpn = new FPN({ inChannels: [4, 8], outChannels: 4, numOuts: 2 });
  const xs = inputs([[4, 4], [2, 2]], [4, 4]);
  assert.throws(() => fpn.forward(xs), /input 1 has shape \[1, 2, 2, 4\], expected \[N, H, W, 8\]/);
  assert.throws(() => fpn.forward(xs.slice(0, 1)), /1 inputs, expected 2/);
  tf.dispose(xs);
  fpn.dispose();
});

test('config: buildFPN defaults in_channels to the backbone, maps add_extra_convs, and names the bad key', () => {
  const f = 'configs/x.yaml';
  const at = { file: f, path: 'model.neck' };
  const block = (extra: Record<string, unknown>) => validate(fpnSchema, { type: 'FPN', out_channels: 8, num_outs: 5, ...extra }, 'model.neck', f);
  const fpn = buildFPN(block({}), [4, 8, 16, 32], at);
  assert.deepEqual([fpn.inChannels, fpn.startLevel, fpn.addExtraConvs, fpn.reluBeforeExtraConvs], [[4, 8, 16, 32], 0, false, false]);
  fpn.dispose();
  const retina = buildFPN(block({ in_channels: [4, 8, 16, 32], start_level: 1, add_extra_convs: 'on_output', relu_before_extra_convs: true }), [4, 8, 16, 32], at);
  assert.deepEqual([retina.startLevel, retina.addExtraConvs, retina.reluBeforeExtraConvs, retina.fpnConvs.length], [1, 'on_output', true, 5]);
  retina.dispose();
  const legacy = buildFPN(block({ add_extra_convs: true }), [4, 8, 16, 32], at);
  assert.equal(legacy.addExtraConvs, 'on_input', "MMDet: add_extra_convs true is 'on_input'");
  legacy.dispose();

  const fails = (fn: () => unknown, message: string) => assert.throws(fn, (e: unknown) => e instanceof ConfigError && e.message.startsWith(message), message);
  fails(() => buildFPN(block({ in_channels: [4, 8] }), [4, 8, 16, 32], at), 'configs/x.yaml: model.neck.in_channels: [4, 8] does not match the backbone outputs [4, 8, 16, 32]');
  fails(() => buildFPN(block({ num_outs: 3 }), [4, 8, 16, 32], at), 'configs/x.yaml: model.neck.num_outs: 3 is fewer than the 4 backbone outputs used from start_level 0');
  fails(() => buildFPN(block({ start_level: 4 }), [4, 8, 16, 32], at), 'configs/x.yaml: model.neck.start_level: 4 is past the last backbone output (4 outputs)');
  fails(() => block({ add_extra_convs: 'on_inputs' }), "configs/x.yaml: model.neck.add_extra_convs: expected true or false or one of 'on_input', 'on_lateral', 'on_output', got \"on_inputs\"");
  fails(() => block({ out_chanels: 8 }), "configs/x.yaml: model.neck.out_chanels: unknown key 'out_chanels'");
});
