/**
 * Detection losses against hand computations (MMDet weight_reduce_loss with avg_factor), their
 * gradients on cpu and wasm, and no leaked tensors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { accuracy, l1Loss, maskBCE, sigmoidBCE, smoothL1Loss, softmaxCE, weightReduceLoss } from '../src/ops/det_losses.ts';

const EPS = 1.1920928955078125e-7;
const close = (got: tf.Tensor, want: number, tol = 1e-5, what = ''): void => {
  const v = got.dataSync()[0];
  assert.ok(Math.abs(v - want) <= tol * Math.max(1, Math.abs(want)), `${what}: got ${v}, want ${want}`);
};
const bce = (x: number, t: number): number => -(t * Math.log(1 / (1 + Math.exp(-x))) + (1 - t) * Math.log(1 - 1 / (1 + Math.exp(-x))));

/** Each loss on small inputs against its formula computed here in float64. */
function handComputations(): void {
  // sigmoid BCE: mean, weighted with avg factor, large logits stay finite
  const x = [2, -1, 0, 30, -30];
  const t = [1, 0, 1, 0, 0];
  const w = [1, 2, 0, 1, 1];
  const per = x.map((v, i) => (Math.abs(v) > 20 ? Math.max(v, 0) - v * t[i] : bce(v, t[i])));
  const logits = tf.tensor1d(x);
  close(sigmoidBCE(logits, new Float32Array(t)), per.reduce((a, b) => a + b) / 5, 1e-5, 'bce mean');
  close(sigmoidBCE(logits, tf.tensor1d(t), new Float32Array(w), 3), per.reduce((a, b, i) => a + b * w[i], 0) / (3 + EPS), 1e-5, 'bce avg');

  // softmax CE over [2, 3]; per-sample weights; avg factor; an ignored label (-100)
  const z = [[1, 2, 3], [0.5, -1, 0]];
  const lse = z.map((r) => Math.log(r.reduce((a, b) => a + Math.exp(b), 0)));
  const nll = [lse[0] - z[0][2], lse[1] - z[1][0]];
  const zt = tf.tensor2d(z);
  close(softmaxCE(zt, new Int32Array([2, 0])), (nll[0] + nll[1]) / 2, 1e-5, 'ce mean');
  close(softmaxCE(zt, tf.tensor1d([2, 0], 'int32'), new Float32Array([0.5, 2]), 4), (0.5 * nll[0] + 2 * nll[1]) / (4 + EPS), 1e-5, 'ce avg');
  close(softmaxCE(zt, new Int32Array([2, -100])), nll[0] / 2, 1e-5, 'ce ignore');

  // L1 / smooth L1 over [2, 2] with per-element and per-row weights
  const p = tf.tensor2d([[0, 1], [2, -3]]);
  const q = new Float32Array([0.5, 1, 0, 0]);
  const d = [0.5, 0, 2, 3];
  close(l1Loss(p, q), 5.5 / 4, 1e-6, 'l1 mean');
  close(l1Loss(p, q, new Float32Array([1, 2]), 2), (0.5 + 2 * 5) / (2 + EPS), 1e-6, 'l1 row weights');
  const sl1 = d.map((v) => (v < 1 ? (0.5 * v * v) / 1 : v - 0.5));
  close(smoothL1Loss(p, q, 1), sl1.reduce((a, b) => a + b) / 4, 1e-6, 'smooth l1');
  const sl1b = d.map((v) => (v < 2.5 ? (0.5 * v * v) / 2.5 : v - 1.25));
  close(smoothL1Loss(p, q, 2.5, tf.tensor2d([[1, 0], [1, 1]]), 10), (sl1b[0] + sl1b[2] + sl1b[3]) / (10 + EPS), 1e-6, 'smooth l1 beta');

  // mask BCE: mean over [2, 1, 2]
  const m = [1, -2, 0.5, 3];
  const mt = [1, 0, 0, 1];
  close(maskBCE(tf.tensor3d(m, [2, 1, 2]), new Float32Array(mt)), m.reduce((a, v, i) => a + bce(v, mt[i]), 0) / 4, 1e-5, 'mask bce');

  // accuracy: percent; empty -> 0
  close(accuracy(tf.tensor2d([[1, 2, 0], [3, 0, 0], [0, 0, 1], [0, 5, 1]]), new Int32Array([1, 0, 0, 2])), 50, 1e-6, 'accuracy');
  close(accuracy(tf.zeros([0, 3]) as tf.Tensor2D, new Int32Array(0)), 0, 0, 'accuracy empty');
  close(l1Loss(tf.zeros([0, 4]), new Float32Array(0)), 0, 0, 'l1 empty');
  close(weightReduceLoss(tf.zeros([0, 4]), undefined, 0), 0, 0, 'empty avg');
  close(softmaxCE(tf.zeros([0, 3]) as tf.Tensor2D, new Int32Array(0), new Float32Array(0), 0), 0, 0, 'ce empty');
  // per-row weights broadcast over [N, K]
  const lk = tf.tensor2d([[0, 1], [2, -1]]);
  const tk = new Float32Array([1, 0, 0, 1]);
  close(sigmoidBCE(lk, tk, new Float32Array([2, 0])), (2 * (bce(0, 1) + bce(1, 0))) / 4, 1e-5, 'bce row weights');
}

for (const backend of ['cpu', 'wasm']) {
  test(`losses equal hand computations (${backend})`, async () => {
    assert.ok(await tf.setBackend(backend));
    const before = tf.memory().numTensors;
    tf.tidy(() => handComputations());
    assert.equal(tf.memory().numTensors, before);
  });

  test(`loss gradients (${backend})`, async () => {
    assert.ok(await tf.setBackend(backend));
    const before = tf.memory().numTensors;
    const x = tf.tensor1d([2, -1, 0]);
    const t = new Float32Array([1, 0, 1]);
    // d/dx mean BCE = (sigmoid(x) - t) / N
    const g = tf.grad((v: tf.Tensor) => sigmoidBCE(v, t))(x);
    const sig = (v: number): number => 1 / (1 + Math.exp(-v));
    assert.deepEqual(Array.from(g.dataSync()).map((v) => v.toFixed(5)), [2, -1, 0].map((v, i) => ((sig(v) - t[i]) / 3).toFixed(5)));
    // d/dz CE = (softmax - onehot) * w / avg
    const z = tf.tensor2d([[1, 2, 3]]);
    const gz = tf.grad((v: tf.Tensor) => softmaxCE(v as tf.Tensor2D, new Int32Array([0]), undefined, 2))(z);
    const e = [1, 2, 3].map(Math.exp);
    const s = e.reduce((a, b) => a + b);
    Array.from(gz.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - (e[i] / s - (i === 0 ? 1 : 0)) / 2) < 1e-5, `ce grad ${i}`));
    // smooth L1: d/dp = clamp((p - q) / beta, -1, 1) / N
    const p = tf.tensor1d([0.2, 3, -2]);
    const gp = tf.grad((v: tf.Tensor) => smoothL1Loss(v, new Float32Array([0, 0, 0]), 1))(p);
    assert.deepEqual(Array.from(gp.dataSync()).map((v) => v.toFixed(5)), [0.2 / 3, 1 / 3, -1 / 3].map((v) => v.toFixed(5)));
    const gl1 = tf.grad((v: tf.Tensor) => l1Loss(v, new Float32Array([0, 0, 0]), undefined, 1))(p);
    assert.deepEqual(Array.from(gl1.dataSync()).map((v) => Math.round(v * 1e5) / 1e5), [1, 1, -1].map((v) => v / (1 + EPS)).map((v) => Math.round(v * 1e5) / 1e5));
    const gm = tf.grad((v: tf.Tensor) => maskBCE(v as tf.Tensor3D, new Float32Array([1, 0])))(tf.tensor3d([0, 0], [1, 1, 2]));
    assert.deepEqual(Array.from(gm.dataSync()), [-0.25, 0.25]);
    const ge = tf.grad((v: tf.Tensor) => l1Loss(v, new Float32Array(0), undefined, 0))(tf.zeros([0, 4]));
    assert.deepEqual(ge.shape, [0, 4]);
    tf.dispose([x, g, z, gz, p, gp, gl1, gm, ge]);
    assert.equal(tf.memory().numTensors, before + 2, 'only the two inline input tensors are left');
  });
}

test('losses leak no tensors', async () => {
  assert.ok(await tf.setBackend('cpu'));
  const p = tf.tensor2d([[0, 1], [2, -3]]);
  const z = tf.tensor2d([[1, 2, 3], [0.5, -1, 0]]);
  const before = tf.memory().numTensors;
  const outs = [
    sigmoidBCE(p, new Float32Array(4), new Float32Array(2), 3), softmaxCE(z, new Int32Array([1, 2]), new Float32Array([1, 1]), 2),
    l1Loss(p, new Float32Array(4)), smoothL1Loss(p, new Float32Array(4), 0.5), maskBCE(p.reshape([1, 2, 2]) as tf.Tensor3D, new Float32Array(4)),
    accuracy(z, new Int32Array([2, 0])),
  ];
  // one tensor per result, plus the reshape passed to maskBCE
  assert.equal(tf.memory().numTensors, before + outs.length + 1);
  tf.dispose([p, z, outs]);
});
