/**
 * UperNet on Conv2Former: resize/pool ops vs hand computations, cross entropy + accuracy, heads,
 * EncoderDecoder training (gradients, overfit), whole/slide inference, TTA, memory, state-dict keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createConv2Former } from '../src/backbone/conv2former.ts';
import type { Batch, ImgMeta } from '../src/datasets/collate.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { FCNHead } from '../src/heads/seg/fcn_head.ts';
import { UPerHead } from '../src/heads/seg/uper_head.ts';
import { buildModel as buildFromConfig } from '../src/models/build.ts';
import { EncoderDecoder } from '../src/models/encoder_decoder.ts';
import { sumLosses } from '../src/models/model.ts';
import type { Module } from '../src/nn/module.ts';
import { GroupNorm } from '../src/nn/norm.ts';
import { manualSeed } from '../src/nn/random.ts';
import { accuracy, crossEntropy } from '../src/ops/losses.ts';
import { adaptiveAvgPool2d, applySeparable, bilinearMatrix, resizeBilinear } from '../src/ops/resize.ts';

const K = 4;

function buildModel(opts: { aux?: boolean; norm?: 'BN' | 'GN'; kernelSize?: number } = {}): EncoderDecoder {
  manualSeed(0);
  const backbone = createConv2Former({ dims: [16, 32, 64, 128], depths: [1, 1, 1, 1], kernelSize: opts.kernelSize ?? 3 }, { outNorms: true });
  const inChannels = backbone.featureInfo.map((f) => f.channels);
  const norm = opts.norm ?? 'BN';
  const decodeHead = new UPerHead({ inChannels, channels: 32, numClasses: K, norm });
  const auxiliaryHead = opts.aux === false ? undefined : new FCNHead({ inChannels: inChannels[2], channels: 32, numClasses: K, inIndex: 2, norm });
  return new EncoderDecoder({ backbone, decodeHead, auxiliaryHead });
}

/** Two 64x64 images: noise + a bright square (label 1); one row per image ignored (255). */
function syntheticBatch(n = 2, size = 64): Batch {
  const img = new Float32Array(n * size * size * 3);
  const seg = new Int32Array(n * size * size);
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296);
  for (let b = 0; b < n; b++) {
    const y0 = 8 + 16 * b, x0 = 12 + 8 * b, side = 24;
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      const inside = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side;
      const p = (b * size + y) * size + x;
      for (let c = 0; c < 3; c++) img[p * 3 + c] = (inside ? 1.5 : -0.5) + 0.3 * (rnd() - 0.5);
      seg[p] = y === size - 1 ? 255 : inside ? 1 : 0;
    }
  }
  const imgs = tf.tensor4d(img, [n, size, size, 3]);
  const gtSegMaps = tf.tensor3d(seg, [n, size, size], 'int32');
  const metas: ImgMeta[] = Array.from({ length: n }, () => ({
    oriShape: [size, size], imgShape: [size, size], padShape: [size, size], batchInputShape: [size, size], scaleFactor: [1, 1], flip: false,
  }));
  return {
    imgs, metas, gtSegMaps, gtBboxes: [], gtLabels: [], gtMasks: [], gtBboxesIgnore: [],
    dispose() { tf.dispose([imgs, gtSegMaps]); },
  };
}

const maxAbs = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

for (const backend of ['cpu', 'wasm']) {
  test(`bilinear resize = PyTorch align_corners=False by hand, gradient correct (${backend})`, async () => {
    assert.ok(await tf.setBackend(backend));
    tf.tidy(() => {
      // 1-D by hand: in [0, 10, 20, 30] (4) → 6: src = (d+0.5)*4/6-0.5 = -1/6, 0.5, 7/6, 11/6, 2.5, 19/6.
      const x = tf.tensor4d([0, 10, 20, 30], [1, 1, 4, 1]);
      const y = resizeBilinear(x, [1, 6]).dataSync();
      const expect = [0, 5, 11.6666667, 18.3333333, 25, 30];
      expect.forEach((e, i) => assert.ok(Math.abs(y[i] - e) < 1e-4, `up ${i}: ${y[i]} vs ${e}`));
      // Downsample 5 → 2: src = (d+0.5)*2.5-0.5 = 0.75, 3.25.
      const x5 = tf.tensor4d([0, 1, 2, 3, 4], [1, 5, 1, 1]);
      const y5 = resizeBilinear(x5, [2, 1]).dataSync();
      assert.ok(Math.abs(y5[0] - 0.75) < 1e-5 && Math.abs(y5[1] - 3.25) < 1e-5, `down: ${y5}`);
      // 2-D random tensor: tf forward = separable matrix form; gradient = autodiff of matrix form.
      manualSeed(1);
      const r = tf.randomNormal([2, 5, 7, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const w = tf.randomNormal([2, 8, 4, 3], 0, 1, 'float32', 4);
      // applySeparable takes the maps as [in, out].
      const A = tf.tensor2d(bilinearMatrix(8, 5), [8, 5]).transpose() as tf.Tensor2D;
      const B = tf.tensor2d(bilinearMatrix(4, 7), [4, 7]).transpose() as tf.Tensor2D;
      assert.ok(maxAbs(resizeBilinear(r, [8, 4]), applySeparable(r, A, B)) < 1e-5);
      const g1 = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(resizeBilinear(t as tf.Tensor4D, [8, 4]), w)))(r);
      const g2 = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(applySeparable(t as tf.Tensor4D, A, B), w)))(r);
      assert.ok(maxAbs(g1, g2) < 1e-4, `grad err ${maxAbs(g1, g2)}`);
      // Finite difference on one element.
      const f = (t: tf.Tensor4D) => tf.sum(tf.mul(resizeBilinear(t, [8, 4]), w)).dataSync()[0];
      const e = tf.oneHot([37], r.size).reshape(r.shape).mul(1e-2) as tf.Tensor4D;
      const fd = (f(r.add(e) as tf.Tensor4D) - f(r.sub(e) as tf.Tensor4D)) / 2e-2;
      assert.ok(Math.abs(fd - g1.dataSync()[37]) < 1e-2, `fd ${fd} vs ${g1.dataSync()[37]}`);
    });
  });
}

test('adaptive average pooling bins: 5x7 → 3x2 by hand', async () => {
  assert.ok(await tf.setBackend('cpu'));
  tf.tidy(() => {
    const x = tf.tensor4d(Array.from({ length: 35 }, (_, i) => i), [1, 5, 7, 1]); // x[h][w] = 7h + w
    const y = adaptiveAvgPool2d(x, [3, 2]).dataSync();
    // Rows: [0,2) [1,4) [3,5) → mean h 0.5, 2, 3.5; cols: [0,4) [3,7) → mean w 1.5, 4.5.
    const rm = [0.5, 2, 3.5], cm = [1.5, 4.5];
    for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) {
      assert.ok(Math.abs(y[i * 2 + j] - (7 * rm[i] + cm[j])) < 1e-4, `bin ${i},${j}: ${y[i * 2 + j]}`);
    }
    const y1 = adaptiveAvgPool2d(x, [1, 1]).dataSync();
    assert.ok(Math.abs(y1[0] - 17) < 1e-4);
  });
});

test('cross entropy and accuracy vs a hand computation (ignore index, class weights, gradient)', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const L = [[2, 1, 0.1], [0.5, 2.5, 0.3], [1000, -1000, 3], [0, 0, 4]]; // large values: stability
  const y = [0, 2, 255, 2];
  const lse = (r: number[]) => { const m = Math.max(...r); return m + Math.log(r.reduce((s, v) => s + Math.exp(v - m), 0)); };
  const nll = L.map((r, i) => (y[i] === 255 ? 0 : lse(r) - r[y[i]]));
  const sum = nll.reduce((a, b) => a + b, 0);
  tf.tidy(() => {
    const logits = tf.tensor4d(L.flat(), [1, 2, 2, 3]);
    const labels = tf.tensor3d(y, [1, 2, 2], 'int32');
    const mean = crossEntropy(logits, labels).dataSync()[0];
    assert.ok(Math.abs(mean - sum / 4) < 1e-5, `mmseg default (all pixels): ${mean} vs ${sum / 4}`);
    const nonIgn = crossEntropy(logits, labels, { avgNonIgnore: true }).dataSync()[0];
    assert.ok(Math.abs(nonIgn - sum / 3) < 1e-5, `avg_non_ignore: ${nonIgn} vs ${sum / 3}`);
    const cw = [1, 0.5, 2];
    const wsum = nll.reduce((a, v, i) => a + (y[i] === 255 ? 0 : cw[y[i]] * v), 0);
    const weighted = crossEntropy(logits, labels, { classWeights: cw, lossWeight: 0.4 }).dataSync()[0];
    assert.ok(Math.abs(weighted - 0.4 * wsum / 4) < 1e-5, `class weights: ${weighted}`);
    // Gradient: (softmax - onehot) / 4 on valid pixels, 0 on the ignored one.
    const g = tf.grad((t: tf.Tensor) => crossEntropy(t, labels))(logits).dataSync();
    L.forEach((r, i) => r.forEach((v, c) => {
      const p = Math.exp(v - lse(r));
      const e = y[i] === 255 ? 0 : (p - (c === y[i] ? 1 : 0)) / 4;
      assert.ok(Math.abs(g[i * 3 + c] - e) < 1e-6, `grad ${i},${c}: ${g[i * 3 + c]} vs ${e}`);
    }));
    // Accuracy: argmax = [0, 1, 0(ignored), 2] vs [0, 2, -, 2] → 2/3.
    const acc = accuracy(logits, labels).dataSync()[0];
    assert.ok(Math.abs(acc - 200 / 3) < 1e-4, `acc ${acc}`);
    const allIgn = tf.fill([1, 2, 2], 255, 'int32');
    assert.equal(accuracy(logits, allIgn).dataSync()[0], 0);
    assert.equal(crossEntropy(logits, allIgn, { avgNonIgnore: true }).dataSync()[0], 0);
  });
});

test('state-dict keys follow MMSegmentation', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const m = buildModel();
  const keys = new Set(m.namedStates().map(([k]) => k));
  for (const k of [
    'decode_head.conv_seg.weight', 'decode_head.conv_seg.bias',
    'decode_head.psp_modules.0.1.conv.weight', 'decode_head.psp_modules.3.1.bn.running_var', 'decode_head.bottleneck.conv.weight',
    'decode_head.bottleneck.bn.weight', 'decode_head.lateral_convs.0.conv.weight', 'decode_head.lateral_convs.0.bn.weight',
    'decode_head.lateral_convs.2.bn.num_batches_tracked', 'decode_head.fpn_convs.0.conv.weight', 'decode_head.fpn_convs.2.bn.bias',
    'decode_head.fpn_bottleneck.conv.weight', 'auxiliary_head.convs.0.conv.weight', 'auxiliary_head.convs.0.bn.weight',
    'auxiliary_head.conv_seg.weight', 'auxiliary_head.conv_seg.bias',
  ]) assert.ok(keys.has(k), `missing ${k}`);
  assert.ok([...keys].some((k) => k.startsWith('backbone.')));
  assert.ok(!keys.has('decode_head.lateral_convs.3.conv.weight') && !keys.has('decode_head.bottleneck.conv.bias'));
  const sd = m.stateDict();
  assert.deepEqual(sd.get('decode_head.fpn_bottleneck.conv.weight')!.shape, [32, 4 * 32, 3, 3]);
  assert.deepEqual(sd.get('decode_head.bottleneck.conv.weight')!.shape, [32, 128 + 4 * 32, 3, 3]);
  assert.deepEqual(sd.get('auxiliary_head.convs.0.conv.weight')!.shape, [32, 64, 3, 3]);
  assert.deepEqual(sd.get('decode_head.conv_seg.weight')!.shape, [K, 32, 1, 1]);
  const gn = buildModel({ norm: 'GN' });
  assert.ok(gn.namedStates().some(([k]) => k === 'decode_head.fpn_bottleneck.gn.weight'));
  m.dispose();
  gn.dispose();
});

for (const backend of ['cpu', 'wasm']) {
  test(`forward/backward shapes; every trainable parameter gets a gradient (${backend})`, async () => {
    assert.ok(await tf.setBackend(backend));
    const m = buildModel({ kernelSize: backend === 'cpu' ? 3 : 5 });
    const batch = syntheticBatch();
    tf.tidy(() => {
      const logits = m.forwardLogits(batch.imgs);
      assert.deepEqual(logits.shape, [2, 16, 16, K]);
      const aux = m.auxiliaryHead!.forward(m.extractFeat(batch.imgs));
      assert.deepEqual(aux.shape, [2, 4, 4, K]);
      const losses = m.loss(batch);
      assert.deepEqual(Object.keys(losses).sort(), ['aux.acc', 'aux.loss_ce', 'decode.acc', 'decode.loss_ce']);
      const d = losses['decode.loss_ce'].dataSync()[0];
      const a = losses['aux.loss_ce'].dataSync()[0];
      // Near-uniform initial logits: CE ≈ ln K (times 63/64 valid pixels), aux × 0.4.
      assert.ok(Math.abs(d - Math.log(K) * 63 / 64) < 0.3, `decode loss ${d}`);
      assert.ok(Math.abs(a - 0.4 * Math.log(K) * 63 / 64) < 0.15, `aux loss ${a}`);
      const vars = m.trainableVariables();
      const { value, grads } = tf.variableGrads(() => sumLosses(m.loss(batch)), vars);
      assert.ok(Number.isFinite(value.dataSync()[0]));
      const names = m.namedParameters().filter(([, p]) => p.trainable);
      for (const [k, p] of names) {
        const g = grads[p.variable.name];
        assert.ok(g, `no gradient for ${k}`);
        const norm = tf.sum(tf.abs(g)).dataSync()[0];
        assert.ok(Number.isFinite(norm) && norm > 0, `zero/non-finite gradient for ${k}: ${norm}`);
      }
    });
    batch.dispose();
    m.dispose();
  });
}

test('overfit one batch (wasm): summed loss falls by >= 90%; tensor count flat over training and inference', async () => {
  // wasm: ~10x faster than the pure-JS cpu backend for this model.
  assert.ok(await tf.setBackend('wasm'));
  const m = buildModel();
  const batch = syntheticBatch();
  const opt = new AdamW(m, { lr: 3e-3, weightDecay: 0.01 });
  const step = (): number => {
    const { value, grads } = tf.variableGrads(() => sumLosses(m.loss(batch)), opt.variables);
    opt.step(grads);
    const v = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    return v;
  };
  const first = step();
  const counts: number[] = [tf.memory().numTensors];
  let last = first;
  let iters = 1;
  while (iters < 60 && last > 0.1 * first) {
    last = step();
    iters++;
    if (iters <= 4) counts.push(tf.memory().numTensors);
  }
  console.log(`overfit: loss ${first.toFixed(4)} → ${last.toFixed(4)} in ${iters} iterations (${(100 * (1 - last / first)).toFixed(1)}% drop)`);
  assert.ok(last <= 0.1 * first, `loss ${first} → ${last} after ${iters} iterations`);
  assert.ok(counts.every((c) => c === counts[0]), `tensor count grows in training: ${counts}`);
  m.eval();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    await m.segment(batch.imgs, batch.metas);
    await m.segment(batch.imgs, batch.metas, { mode: 'slide', cropSize: [48, 48], stride: [32, 32] });
    await m.segment(batch.imgs, batch.metas, { flip: true, scales: [0.75, 1] });
    tf.dispose(await m.inferenceLogits(batch.imgs, batch.metas, { flip: true }));
    await m.predict(batch, { augTest: true });
    assert.equal(tf.memory().numTensors, before, `tensor count grows in inference (call ${i})`);
  }
  // The trained model segments its training batch.
  const pred = await m.segment(batch.imgs, batch.metas);
  const labels = batch.gtSegMaps!.dataSync();
  let ok = 0, n = 0;
  pred.forEach((p, b) => p.forEach((v, i) => { const l = labels[b * 4096 + i]; if (l !== 255) { n++; if (v === l) ok++; } }));
  assert.ok(ok / n > 0.9, `eval-mode pixel accuracy ${ok / n}`);
  opt.dispose();
  batch.dispose();
  m.dispose();
});

test('slide = whole when one crop covers the image; slide averaging matches a manual reference', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const m = buildModel().eval();
  const batch = syntheticBatch();
  const whole = await m.inferenceLogits(batch.imgs, batch.metas, { mode: 'whole' });
  const slide = await m.inferenceLogits(batch.imgs, batch.metas, { mode: 'slide', cropSize: [64, 64], stride: [32, 32] });
  const big = await m.inferenceLogits(batch.imgs, batch.metas, { mode: 'slide', cropSize: [96, 96], stride: [64, 64] });
  assert.deepEqual(whole[0].shape, [64, 64, K]);
  for (let i = 0; i < 2; i++) {
    assert.ok(maxAbs(whole[i], slide[i]) <= 1e-5, `slide vs whole ${maxAbs(whole[i], slide[i])}`);
    assert.ok(maxAbs(whole[i], big[i]) <= 1e-5);
  }
  tf.dispose([...whole, ...slide, ...big]);
  // 64x48 input, crop [64, 32], stride [64, 16]: crops at x 0..32 and 16..48.
  const x = tf.slice(batch.imgs, [0, 0, 0, 0], [2, 64, 48, 3]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const got = await m.slideLogits(x, [64, 32], [64, 16]);
  assert.equal(tf.memory().numTensors, before + 1, 'slideLogits leaves only its result');
  // Border shift: 64 wide, crop 48, stride 32 → crops at 0 and 16 (shifted from 32).
  const s = await m.slideLogits(batch.imgs, [48, 48], [32, 32]);
  assert.deepEqual(s.shape, [2, 64, 64, K]);
  tf.tidy(() => {
    const a = m.encodeDecode(tf.slice(x, [0, 0, 0, 0], [2, 64, 32, 3]) as tf.Tensor4D);
    const b = m.encodeDecode(tf.slice(x, [0, 0, 16, 0], [2, 64, 32, 3]) as tf.Tensor4D);
    const left = tf.slice(a, [0, 0, 0, 0], [2, 64, 16, K]);
    const mid = tf.div(tf.add(tf.slice(a, [0, 0, 16, 0], [2, 64, 16, K]), tf.slice(b, [0, 0, 0, 0], [2, 64, 16, K])), 2);
    const right = tf.slice(b, [0, 0, 16, 0], [2, 64, 16, K]);
    const ref = tf.concat([left, mid, right], 2);
    assert.ok(maxAbs(got, ref) <= 1e-5, `slide reference ${maxAbs(got, ref)}`);
  });
  tf.dispose([x, got, s]);
  batch.dispose();
  m.dispose();
});

test('predict: padding cropped, resized to oriShape; flip TTA is mirror-symmetric; multi-scale', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const m = buildModel().eval();
  const batch = syntheticBatch();
  const metas: ImgMeta[] = batch.metas.map((mt) => ({ ...mt, imgShape: [48, 56], oriShape: [24, 28] }));
  const pred = await m.segment(batch.imgs, metas);
  assert.equal(pred.length, 2);
  assert.equal(pred[0].length, 24 * 28);
  assert.ok(pred[0].every((v) => v >= 0 && v < K));
  // Logits of the padded-crop path equal a manual crop + resize of the whole logits.
  const before = tf.memory().numTensors;
  const [l0, l1] = await m.inferenceLogits(batch.imgs, metas);
  assert.equal(tf.memory().numTensors, before + 2, 'inferenceLogits leaves only its results');
  tf.tidy(() => {
    const full = m.encodeDecode(batch.imgs);
    const ref = resizeBilinear(tf.slice(full, [0, 0, 0, 0], [1, 48, 56, K]) as tf.Tensor4D, [24, 28]).squeeze([0]);
    assert.ok(maxAbs(l0, ref) <= 1e-5);
  });
  tf.dispose([l0, l1]);
  const mirrored = tf.reverse(batch.imgs, 2) as tf.Tensor4D;
  const a = await m.inferenceLogits(batch.imgs, batch.metas, { flip: true });
  const b = await m.inferenceLogits(mirrored, batch.metas, { flip: true });
  const ms = await m.inferenceLogits(batch.imgs, batch.metas, { scales: [0.5, 1, 1.5], flip: true, mode: 'slide', cropSize: [64, 64], stride: [48, 48] });
  tf.tidy(() => {
    assert.ok(maxAbs(a[0], tf.reverse(b[0], 1)) <= 1e-5, 'flip TTA not symmetric');
    const sumP = tf.sum(a[0], -1);
    assert.ok(maxAbs(sumP, tf.onesLike(sumP)) < 1e-5, 'TTA output is averaged probabilities');
    assert.deepEqual(ms[1].shape, [64, 64, K]);
    assert.ok(Number.isFinite(tf.sum(ms[1]).dataSync()[0]));
  });
  tf.dispose([mirrored, ...a, ...b, ...ms]);
  batch.dispose();
  m.dispose();
});

test('norm_cfg GN takes num_groups (every head conv, the 1x1 PPM branch included); BN rejects it', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const cfg = (normCfg: unknown) => ({
    type: 'EncoderDecoder',
    backbone: { type: 'Conv2Former', variant: { dims: [8, 8, 8, 8], depths: [1, 1, 1, 1], kernel_size: 3 }, drop_path_rate: 0 },
    decode_head: { type: 'UPerHead', channels: 16, num_classes: 3, norm_cfg: normCfg },
    auxiliary_head: { type: 'FCNHead', channels: 16, num_classes: 3, norm_cfg: normCfg },
  });
  const m = (await buildFromConfig(cfg({ type: 'GN', num_groups: 4 }), { file: 'c', log: () => {} })) as EncoderDecoder;
  const gns: [string, number][] = [];
  const walk = (mod: Module, name: string): void => {
    if (mod instanceof GroupNorm) gns.push([name, mod.groups]);
    for (const [n, c] of mod.namedChildren()) walk(c, name ? `${name}.${n}` : n);
  };
  walk(m, '');
  assert.ok(gns.some(([k]) => k === 'decode_head.psp_modules.0.1.gn') && gns.some(([k]) => k.startsWith('auxiliary_head.')));
  assert.deepEqual([...new Set(gns.map(([, g]) => g))], [4]);
  // A 1x1 pooled map with 4 channels per group still has something to normalise: outputs differ by image.
  const out = tf.tidy(() => m.forwardLogits(tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 1)).arraySync());
  assert.notDeepEqual(out[0], out[1]);
  await assert.rejects(buildFromConfig(cfg({ type: 'BN', num_groups: 4 }), { file: 'c' }), /c: model\.decode_head\.norm_cfg: num_groups is only for type 'GN'/);
  await assert.rejects(buildFromConfig(cfg({ type: 'GN', num_groups: 5 }), { file: 'c' }), /not divisible by 5 groups/);
  m.dispose();
});
