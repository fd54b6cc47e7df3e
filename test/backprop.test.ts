/**
 * The memory-frugal backward pass (`src/nn/backprop.ts`) and activation checkpointing
 * (`src/nn/recompute.ts`, Conv2Former `withCp`): the same gradients as tfjs's own pass, fewer bytes
 * alive at the peak, no leaked tensors; on cpu and wasm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createConv2Former } from '../src/backbone/conv2former.ts';
import { gradientsFreeing, variableGradsFreeing } from '../src/nn/backprop.ts';
import { recomputeInBackward } from '../src/nn/recompute.ts';
import { manualSeed } from '../src/nn/random.ts';
import { BatchNorm2d } from '../src/nn/norm.ts';
import { addSavingNothing, reluSavingOutput } from '../src/nn/frugal.ts';

const TINY = { dims: [8, 16, 32, 64] as [number, number, number, number], depths: [1, 1, 2, 1] as [number, number, number, number], kernelSize: 7 };

function assertClose(a: tf.Tensor, b: tf.Tensor, tol: number, what: string): void {
  assert.deepEqual(a.shape, b.shape, `${what}: shape`);
  const da = a.dataSync();
  const db = b.dataSync();
  let worst = 0;
  for (let i = 0; i < da.length; i++) worst = Math.max(worst, Math.abs(da[i] - db[i]));
  assert.ok(worst <= tol, `${what}: max abs diff ${worst} > ${tol}`);
}

/** A graph with a reused tensor, a multi-output kernel (split), a broadcast and a constant branch. */
function graph(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor {
  const h = tf.relu(tf.matMul(x, w));
  const [a, b] = tf.split(h, 2, 1);
  const c = tf.mul(tf.sigmoid(a), tf.add(b, tf.scalar(0.5)));
  return tf.sum(tf.add(tf.mul(c, c), tf.mul(h.slice([0, 0], [-1, 2]), tf.ones([1, 2]))));
}

for (const backend of ['cpu', 'wasm']) {
  test(`gradientsFreeing equals tfjs's gradients and leaks nothing on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const x = tf.randomNormal([5, 3], 0, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.randomNormal([3, 4], 0, 1, 'float32', 2) as tf.Tensor2D;
    const unused = tf.ones([2]);
    const before = tf.memory().numTensors;
    const ref = tf.engine().gradients(() => graph(x, w), [x, w], undefined, true);
    const ours = gradientsFreeing(() => graph(x, w), [x, w, unused]);
    assertClose(ours.value, ref.value, 0, 'value');
    assertClose(ours.grads[0]!, ref.grads[0], 0, 'dx');
    assertClose(ours.grads[1]!, ref.grads[1], 0, 'dw');
    assert.equal(ours.grads[2], null, 'a tensor f does not read gets no gradient');
    tf.dispose([ref.value, ...ref.grads, ours.value, ...ours.grads.filter((g): g is tf.Tensor => g !== null)]);
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    const dy = tf.scalar(3);
    const scaled = gradientsFreeing(() => graph(x, w), [w], dy);
    assert.ok(!dy.isDisposed, 'the caller\'s dy is not disposed');
    const plain = gradientsFreeing(() => graph(x, w), [w]);
    assertClose(scaled.grads[0]!, tf.mul(plain.grads[0]!, 3), 1e-5, 'dy scales the gradient');
    tf.dispose([x, w, unused, dy, scaled.value, plain.value, scaled.grads[0]!, plain.grads[0]!]);
  });

  test(`the backward pass releases as it goes (tfjs's grows) on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const v = tf.variable(tf.randomNormal([64, 256], 0, 1, 'float32', 3));
    const f = () => {
      let h: tf.Tensor = v;
      for (let i = 0; i < 30; i++) h = tf.tanh(tf.mul(h, 1.01));
      return tf.sum(h) as tf.Scalar;
    };
    // Bytes alive at the last kernel of the backward pass (the forward's peak is the same for both).
    const atEnd = async (run: () => tf.Tensor[]) => {
      const { kernels } = await tf.profile(() => tf.dispose(run()));
      return kernels[kernels.length - 1].totalBytesSnapshot;
    };
    const tfjs = await atEnd(() => { const r = tf.variableGrads(f, [v]); return [r.value, ...Object.values(r.grads)]; });
    const ours = await atEnd(() => { const r = variableGradsFreeing(f, [v]); return [r.value, ...Object.values(r.grads)]; });
    assert.ok(ours < 0.25 * tfjs, `${ours} bytes alive at the end of the backward pass, tfjs's pass ${tfjs}`);
    const a = tf.variableGrads(f, [v]);
    const b = variableGradsFreeing(f, [v]);
    assertClose(b.grads[v.name], a.grads[v.name], 0, 'same gradient');
    tf.dispose([a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads), v]);
  });

  test(`recomputeInBackward: same gradients, replayed DropPath draws, under either outer pass, on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const plain = createConv2Former(TINY, { dropPathRate: 0.5 }).train();
    const cp = createConv2Former(TINY, { dropPathRate: 0.5, withCp: true }).train();
    cp.loadStateDict(plain.stateDict());
    const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 4) as tf.Tensor4D;
    const loss = (m: typeof plain) => () => tf.addN(m.forward(x).map((o) => tf.mean(tf.square(o)))) as tf.Scalar;
    manualSeed(7);
    const ref = tf.variableGrads(loss(plain), plain.trainableVariables());
    const before = tf.memory().numTensors;
    for (const outer of [tf.variableGrads, variableGradsFreeing]) {
      manualSeed(7);
      const got = outer(loss(cp), cp.trainableVariables());
      assertClose(got.value, ref.value, 1e-6, 'loss');
      const names = Object.keys(got.grads);
      assert.equal(names.length, Object.keys(ref.grads).length);
      const cpVars = cp.trainableVariables();
      plain.trainableVariables().forEach((v, i) => assertClose(got.grads[cpVars[i].name], ref.grads[v.name], 1e-5, v.name));
      tf.dispose([got.value, ...Object.values(got.grads)]);
      assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    }
    // Eval mode and inference ignore withCp: plain forward, no tape. (Three training forwards of
    // cp, one of plain, moved the stem's BN statistics: copy them.)
    cp.loadStateDict(plain.stateDict());
    cp.eval();
    plain.eval();
    tf.tidy(() => assertClose(cp.forward(x)[3], plain.forward(x)[3], 0, 'eval forward'));
    tf.dispose([x, ref.value, ...Object.values(ref.grads)]);
    plain.dispose();
    cp.dispose();
  });
}

test('recomputeInBackward keeps fewer bytes alive than storing the activations', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const v = tf.variable(tf.randomNormal([32, 512], 0, 1, 'float32', 5));
  const block = (h: tf.Tensor) => {
    let t = h;
    for (let i = 0; i < 8; i++) t = tf.tanh(tf.mul(t, v));
    return t;
  };
  const loss = (cp: boolean) => () => {
    let h: tf.Tensor = tf.ones([32, 512]);
    for (let b = 0; b < 4; b++) h = cp ? recomputeInBackward(block, h, [v]) : block(h);
    return tf.sum(h) as tf.Scalar;
  };
  const peak = async (cp: boolean) => (await tf.profile(() => {
    const r = variableGradsFreeing(loss(cp), [v]);
    tf.dispose([r.value, ...Object.values(r.grads)]);
  })).peakBytes;
  const stored = await peak(false);
  const recomputed = await peak(true);
  assert.ok(recomputed < 0.6 * stored, `peak ${recomputed} bytes with recomputation, ${stored} without`);
  v.dispose();
});

test('a checkpointed BatchNorm counts its batch once: the re-run in the backward pass updates no running statistics', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const x = tf.randomNormal([2, 6, 6, 4], 1, 2, 'float32', 6) as tf.Tensor4D;
  const run = (cp: boolean) => {
    const bn = new BatchNorm2d(4).train();
    const vars = bn.trainableVariables();
    const f = (t: tf.Tensor4D) => bn.forward(t);
    const r = variableGradsFreeing(() => tf.sum(tf.square(cp ? recomputeInBackward(f, x, vars) : f(x))) as tf.Scalar, vars);
    const out = { grads: vars.map((v) => r.grads[v.name]), mean: bn.runningMean.value.clone(), count: bn.numBatchesTracked.value };
    r.value.dispose();
    bn.dispose();
    return out;
  };
  const plain = run(false), cp = run(true);
  assert.equal(cp.count, 1);
  assert.equal(plain.count, 1);
  assertClose(cp.mean, plain.mean, 0, 'running mean');
  cp.grads.forEach((g, i) => assertClose(g, plain.grads[i], 0, `grad ${i}`));
  tf.dispose([x, plain.mean, cp.mean, ...plain.grads, ...cp.grads]);
});

test('the temporaries of a custom gradient are freed when its node is done, not at the end of the pass', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const v = tf.variable(tf.randomNormal([64, 64], 0, 1, 'float32', 8));
  // Each op's gradient makes a 16x larger temporary; 12 of them alive together is the leak.
  const op = tf.customGrad((...args: unknown[]) => {
    const x = args[0] as tf.Tensor;
    return { value: tf.mul(x, 1.5), gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.mean(tf.tile(dy, [16, 1]))) };
  });
  const f = () => {
    let h: tf.Tensor = v;
    for (let i = 0; i < 12; i++) h = op(h) as tf.Tensor;
    return tf.sum(h) as tf.Scalar;
  };
  const { peakBytes } = await tf.profile(() => {
    const r = variableGradsFreeing(f, [v]);
    tf.dispose([r.value, ...Object.values(r.grads)]);
  });
  const temporary = 16 * v.size * 4;
  assert.ok(peakBytes < 3 * temporary, `peak ${peakBytes} bytes: more than two of the ${temporary}-byte temporaries alive`);
  v.dispose();
});

for (const backend of ['cpu', 'wasm']) {
  test(`addSavingNothing and reluSavingOutput: tfjs's values and gradients, two fewer buffers kept per layer, on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const x = tf.variable(tf.randomNormal([2, 5, 5, 8], 0, 1, 'float32', 9));
    const b = tf.variable(tf.randomNormal([8], 0, 1, 'float32', 10));
    const chain = (add: typeof addSavingNothing, relu: typeof reluSavingOutput) => () => {
      let h: tf.Tensor = x;
      for (let i = 0; i < 6; i++) h = relu(add(tf.mul(h, 1.25), b));
      return tf.sum(tf.add(h, tf.sum(add(b, tf.ones([3, 8])))) ) as tf.Scalar;
    };
    const ref = chain((p, q) => tf.add(p, q), tf.relu);
    const ours = chain(addSavingNothing, reluSavingOutput);
    const a = tf.variableGrads(ref, [x, b]);
    const c = tf.variableGrads(ours, [x, b]);
    assertClose(c.value, a.value, 0, 'value');
    assertClose(c.grads[x.name], a.grads[x.name], 0, 'dx');
    assertClose(c.grads[b.name], a.grads[b.name], 0, 'dbias (broadcast)');
    // Buffers alive when the backward pass starts: what the forward kept for it (the probe's
    // gradient runs first).
    const keptBuffers = (f: () => tf.Scalar) => {
      let n = 0;
      const probe = tf.customGrad((...args: unknown[]) => ({
        value: tf.clone(args[0] as tf.Tensor),
        gradFunc: (dy: tf.Tensor) => { n = tf.memory().numDataBuffers; return tf.clone(dy); },
      }));
      const r = variableGradsFreeing(() => probe(f()) as tf.Scalar, [x, b]);
      tf.dispose([r.value, ...Object.values(r.grads)]);
      return n - tf.memory().numDataBuffers;
    };
    const kept = keptBuffers(ours), tfjsKept = keptBuffers(ref);
    // Per layer tfjs keeps the product (saved by Add) and the sum (saved by Relu) on top of the
    // layer's output, which both keep (saved by the next Multiply).
    assert.ok(tfjsKept - kept >= 2 * 6, `${kept} buffers kept for the backward pass, with tf.add/tf.relu ${tfjsKept}`);
    tf.dispose([a.value, c.value, ...Object.values(a.grads), ...Object.values(c.grads), x, b]);
  });
}
