/**
 * Conv2Former: parity with the official PyTorch model (fixture), parameter counts, output sizes,
 * gradients, memory, freezing, checkpoint round trips and errors; on cpu and wasm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createConv2Former, type Conv2Former } from '../src/backbone/conv2former.ts';
import { inferConv2FormerConfig } from '../src/backbone/conv2former_checkpoint.ts';
import { loadCheckpoint, readCheckpointFile, saveSafetensors } from '../src/nn/checkpoint.ts';
import { convOutSize } from '../src/nn/conv_ops.ts';
import { manualSeed } from '../src/nn/random.ts';
import { TINY_CKPT, TINY_DIR, maxAbsDiff, readF32, readTinyMeta } from './helpers/fixtures.ts';

const meta = readTinyMeta();
const TINY = { dims: meta.dims, depths: meta.depths, kernelSize: meta.kernel_size };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-backbone-'));

async function officialTiny(opts = {}): Promise<Conv2Former> {
  const m = createConv2Former(TINY, { withHead: true, init: 'zeros', ...opts });
  await loadCheckpoint(m, TINY_CKPT);
  return m.eval();
}

for (const backend of ['cpu', 'wasm']) {
  test(`parity with the official model on ${backend}: 4 stage outputs and logits`, async () => {
    assert.ok(await tf.setBackend(backend));
    const m = await officialTiny();
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const x = readF32(path.join(TINY_DIR, 'input.f32'), meta.input_shape).transpose([0, 2, 3, 1]) as tf.Tensor4D;
      const outs = m.forward(x);
      outs.forEach((o, i) => {
        const ref = readF32(path.join(TINY_DIR, `out${i + 1}.f32`), meta.out_shapes[i]);
        const err = maxAbsDiff(o.transpose([0, 3, 1, 2]), ref);
        assert.ok(err <= 1e-4, `stage ${i + 1}: max abs err ${err}`);
      });
      const logits = m.forwardLogits(x).slice([0, 0], [1, 10]).dataSync();
      meta.logits_first10.forEach((v, i) => assert.ok(Math.abs(logits[i] - v) <= 1e-4, `logit ${i}: ${logits[i]} vs ${v}`));
    });
    assert.equal(tf.memory().numTensors, before, 'forward leaks no tensors');
    m.dispose();
  });
}

test('kernel size, dims and depths are read from the checkpoint', async () => {
  const dict = await readCheckpointFile(TINY_CKPT);
  assert.deepEqual(inferConv2FormerConfig(dict, TINY_CKPT), TINY);
});

test('parameter counts with head equal the official ones', async () => {
  await tf.setBackend('cpu');
  const expected = { n: 14.99, t: 26.70, s: 50.03, b: 90.03, l: 198.89 } as const;
  for (const [v, millions] of Object.entries(expected)) {
    const m = createConv2Former(v as keyof typeof expected, { withHead: true, init: 'zeros' });
    const got = m.numParameters() / 1e6;
    assert.ok(Math.abs(got - millions) <= 0.01, `${v}: ${got.toFixed(3)}M vs ${millions}M`);
    m.dispose();
  }
});

test('output sizes follow PyTorch for any input >= 32', async () => {
  await tf.setBackend('cpu');
  const m = createConv2Former({ dims: [8, 16, 16, 16], depths: [1, 1, 1, 1], kernelSize: 3 });
  for (const [h, w] of [[32, 32], [33, 47], [45, 61], [64, 96]]) {
    let eh = convOutSize(convOutSize(h, 3, 2, 1, 1, 1), 2, 2, 0, 0, 1);
    let ew = convOutSize(convOutSize(w, 3, 2, 1, 1, 1), 2, 2, 0, 0, 1);
    const shapes = tf.tidy(() => m.forward(tf.zeros([1, h, w, 3]) as tf.Tensor4D).map((o) => o.shape));
    shapes.forEach((s, i) => {
      if (i > 0) { eh = convOutSize(eh, 2, 2, 0, 0, 1); ew = convOutSize(ew, 2, 2, 0, 0, 1); }
      assert.deepEqual(s.slice(1, 3), [eh, ew], `input ${h}x${w}, stage ${i}`);
    });
  }
  assert.throws(() => m.forward(tf.zeros([1, 31, 40, 3]) as tf.Tensor4D), /H>=32/);
  m.dispose();
});

test('safetensors round trip gives identical outputs', async () => {
  await tf.setBackend('cpu');
  const m = await officialTiny();
  const file = path.join(tmp, 'tiny.safetensors');
  await saveSafetensors(m, file);
  const m2 = createConv2Former(TINY, { withHead: true, init: 'zeros' });
  const res = await loadCheckpoint(m2, file);
  assert.deepEqual(res, { missing: [], unexpected: [] });
  m2.eval();
  tf.tidy(() => {
    const x = tf.randomNormal([1, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const a = m.forward(x);
    const b = m2.forward(x);
    a.forEach((t, i) => assert.equal(maxAbsDiff(t, b[i]), 0));
  });
  m.dispose();
  m2.dispose();
});

test('loadCheckpoint errors name the file and key', async () => {
  await tf.setBackend('cpu');
  const wrong = createConv2Former({ ...TINY, dims: [16, 32, 64, 96] }, { withHead: true, init: 'zeros' });
  await assert.rejects(loadCheckpoint(wrong, TINY_CKPT), (e: Error) =>
    e.message.includes(TINY_CKPT) && /shape mismatch for 'downsample_layers\.3\.1\.weight'/.test(e.message));
  await assert.rejects(loadCheckpoint(wrong, path.join(tmp, 'nope.pth')), /nope\.pth/);
  const corruptPth = path.join(tmp, 'corrupt.pth');
  writeFileSync(corruptPth, readFileSync(TINY_CKPT).subarray(0, 5000));
  await assert.rejects(loadCheckpoint(wrong, corruptPth), /corrupt\.pth/);
  const corruptSt = path.join(tmp, 'corrupt.safetensors');
  writeFileSync(corruptSt, Buffer.from('this is not a safetensors file'));
  await assert.rejects(loadCheckpoint(wrong, corruptSt), /corrupt\.safetensors/);
  // Without the head, the classifier keys are unexpected: strict fails, non-strict reports them.
  const noHead = createConv2Former(TINY, { init: 'zeros' });
  await assert.rejects(loadCheckpoint(noHead, TINY_CKPT), /unexpected keys \[head\.0\.weight/);
  const res = await loadCheckpoint(noHead, TINY_CKPT, { strict: false });
  assert.deepEqual(res.unexpected, ['head.0.weight', 'head.0.bias', 'head.2.weight', 'head.2.bias', 'pred.weight', 'pred.bias']);
  assert.deepEqual(res.missing, []);
  wrong.dispose();
  noHead.dispose();
});

/** A scalar loss touching every output, the head and (through them) every parameter. */
function lossOf(m: Conv2Former, x: tf.Tensor4D): tf.Scalar {
  const feats = m.forward(x).map((o) => tf.mean(tf.square(o)));
  return tf.addN([...feats, tf.mean(tf.square(m.forwardLogits(x)))]) as tf.Scalar;
}

test('train mode: one backward pass gives every parameter a non-zero gradient', async () => {
  await tf.setBackend('cpu');
  manualSeed(1);
  const m = createConv2Former(TINY, { withHead: true, outNorms: true, numClasses: 10 });
  m.train();
  const vars = m.trainableVariables();
  assert.equal(vars.length, m.namedParameters().length);
  const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const { value, grads } = tf.variableGrads(() => lossOf(m, x), vars);
  const names = new Map(m.namedParameters().map(([k, p]) => [p.variable.name, k]));
  for (const v of vars) {
    const g = grads[v.name];
    assert.ok(g, `no gradient for ${names.get(v.name)}`);
    assert.ok(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0, `zero gradient for ${names.get(v.name)}`);
  }
  tf.dispose([value, x, ...Object.values(grads)]);
  m.dispose();
});

test('DropPath is identity in eval and active in train', async () => {
  await tf.setBackend('cpu');
  manualSeed(2);
  const a = createConv2Former(TINY, { dropPathRate: 0.9 });
  const b = createConv2Former(TINY, { dropPathRate: 0 });
  b.loadStateDict(a.stateDict());
  // Layer scales of 1e-6 would hide the branches; make them matter.
  for (const m of [a, b]) for (const [k, p] of m.namedParameters()) if (k.includes('layer_scale')) p.variable.assign(tf.onesLike(p.variable));
  a.eval();
  b.eval();
  tf.tidy(() => {
    const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 6) as tf.Tensor4D;
    a.forward(x).forEach((t, i) => assert.equal(maxAbsDiff(t, b.forward(x)[i]), 0));
    a.train();
    b.train();
    assert.ok(maxAbsDiff(a.forward(x)[3], b.forward(x)[3]) > 0, 'train mode with drop path differs');
  });
  a.dispose();
  b.dispose();
});

test('frozen stages: no gradient variables, BN kept in eval', async () => {
  await tf.setBackend('cpu');
  const m = createConv2Former(TINY, { frozenStages: 1 });
  m.train();
  const frozen = m.namedParameters().filter(([, p]) => !p.trainable).map(([k]) => k);
  assert.ok(frozen.every((k) => /^(downsample_layers|stages)\.[01]\./.test(k)));
  assert.ok(frozen.includes('downsample_layers.0.0.weight') && frozen.includes('stages.1.0.mlp.fc2.bias'));
  assert.ok(!frozen.some((k) => k.startsWith('stages.2')));
  assert.equal(m.downsampleLayers.at(0).training, false);
  assert.equal(m.stages.at(2).training, true);
  m.dispose();
});

test('tensor count is flat across forward passes and training steps', async () => {
  await tf.setBackend('cpu');
  const m = createConv2Former(TINY, { withHead: true, dropPathRate: 0.2, numClasses: 10 });
  m.train();
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const step = () => {
    const { value, grads } = tf.variableGrads(() => lossOf(m, x), m.trainableVariables());
    tf.tidy(() => { for (const v of m.trainableVariables()) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.01))); });
    tf.dispose([value, ...Object.values(grads)]);
  };
  step();
  tf.dispose(tf.tidy(() => m.forward(x)));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    step();
    tf.dispose(tf.tidy(() => m.forward(x)));
  }
  assert.equal(tf.memory().numTensors, before);
  x.dispose();
  m.dispose();
});

test('a training step of the backbone runs on wasm and lowers the loss', async () => {
  assert.ok(await tf.setBackend('wasm'));
  manualSeed(3);
  const m = createConv2Former(TINY, { withHead: true, numClasses: 10 });
  m.train();
  const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 8) as tf.Tensor4D;
  const losses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(() => lossOf(m, x), m.trainableVariables());
    losses.push(value.dataSync()[0]);
    tf.tidy(() => { for (const v of m.trainableVariables()) v.assign(tf.sub(v, tf.mul(grads[v.name], 1e-3))); });
    tf.dispose([value, ...Object.values(grads)]);
  }
  assert.ok(losses[2] < losses[0], `loss ${losses.join(' -> ')}`);
  x.dispose();
  m.dispose();
});
