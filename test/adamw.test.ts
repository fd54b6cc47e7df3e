/** AdamW against the textbook update, and its no-decay rule for rank <= 1 parameters. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { AdamW } from '../src/engine/adamw.ts';
import { warmupCosineLr } from '../src/engine/lr_schedule.ts';
import { Linear } from '../src/nn/linear.ts';
import { Conv2d } from '../src/nn/conv2d.ts';
import '@tensorflow/tfjs-backend-wasm';

await tf.setBackend('cpu');

test('AdamW matches torch.optim.AdamW arithmetic over two steps', () => {
  const lin = new Linear(1, 1);
  lin.weight.variable.assign(tf.tensor2d([[2]]));
  lin.bias!.variable.assign(tf.tensor1d([1]));
  const opt = new AdamW(lin, { lr: 0.1, weightDecay: 0.5 });
  const w = lin.weight.variable;
  const b = lin.bias!.variable;
  // Reference in plain JS: p <- p(1 - lr wd) - lr mhat/(sqrt(vhat)+eps).
  let pw = 2, pb = 1, mw = 0, vw = 0, mb = 0, vb = 0;
  for (const [t, gw, gb] of [[1, 0.3, -1], [2, -0.2, 0.5]]) {
    opt.step({ [w.name]: tf.tensor2d([[gw]]), [b.name]: tf.tensor1d([gb]) });
    mw = 0.9 * mw + 0.1 * gw; vw = 0.999 * vw + 0.001 * gw * gw;
    mb = 0.9 * mb + 0.1 * gb; vb = 0.999 * vb + 0.001 * gb * gb;
    const c1 = 1 - 0.9 ** t, c2 = 1 - 0.999 ** t;
    pw = pw * (1 - 0.1 * 0.5) - 0.1 * (mw / c1) / (Math.sqrt(vw / c2) + 1e-8);
    pb = pb - 0.1 * (mb / c1) / (Math.sqrt(vb / c2) + 1e-8); // bias: no decay
    assert.ok(Math.abs(w.dataSync()[0] - pw) < 1e-6, `weight after step ${t}`);
    assert.ok(Math.abs(b.dataSync()[0] - pb) < 1e-6, `bias after step ${t}`);
  }
  opt.dispose();
  lin.dispose();
});

for (const backend of ['cpu', 'wasm']) {
  test(`fused AdamW (one pass per parameter) is bit-identical to the kernel chain, and the convs see the new weights, on ${backend}`, async () => {
    assert.ok(await tf.setBackend(backend));
    const make = () => new Conv2d(3, 5, 3, { padding: 1 });
    const a = make(), b = make();
    b.loadStateDict(a.stateDict());
    const groups = [{ name: 'all', params: ['weight', 'bias'], lrScale: 0.7, weightDecay: 0.05 }];
    const fused = new AdamW(a, { lr: 0.01, paramGroups: groups });
    const chain = new AdamW(b, { lr: 0.01, paramGroups: groups, fused: false });
    const x = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    for (let step = 0; step < 3; step++) {
      for (const [m, opt] of [[a, fused], [b, chain]] as const) {
        // The loss reads the weights through a conv: a stale packed copy of them would show.
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(m.forward(x))) as tf.Scalar, m.trainableVariables());
        opt.step(Object.fromEntries(Object.values(m.namedParameters()).map(([name, p]) => [p.variable.name, grads[p.variable.name]]).filter(([, g]) => g)) as Record<string, tf.Tensor>);
        tf.dispose([value, ...Object.values(grads)]);
      }
      for (const [name, p] of a.namedParameters()) {
        const q = b.namedParameters().find(([n]) => n === name)![1];
        assert.deepEqual(Array.from(p.variable.dataSync()), Array.from(q.variable.dataSync()), `${name} after step ${step + 1}`);
      }
    }
    assert.deepEqual(fused.state().tensors, chain.state().tensors);
    tf.dispose(x);
    fused.dispose();
    chain.dispose();
    a.dispose();
    b.dispose();
    await tf.setBackend('cpu');
  });
}

test('warmup then cosine', () => {
  assert.equal(warmupCosineLr(1, 5, 10, 110), 0.5);
  assert.equal(warmupCosineLr(1, 10, 10, 110), 1);
  assert.ok(Math.abs(warmupCosineLr(1, 60, 10, 110) - 0.5) < 1e-12);
  assert.equal(warmupCosineLr(1, 110, 10, 110), 0);
});
