/**
 * ONNX export: onnxruntime (graph optimisations on) computes what the tfjs model computes, within
 * 1e-4 relative, for the backbone (stage outputs and ImageNet logits) and the UperNet segmentor, on
 * the official tiny fixture and on Conv2Former-T / UperNet-T at 224 and at a non-square size, and
 * the detectors' dense part; the files load back with their dynamic dims; external data.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { createConv2Former, type Conv2Former } from '../src/backbone/conv2former.ts';
import { EXPERIMENT_OPEN_PATHS, loadConfig, validateExperimentConfig } from '../src/config/index.ts';
import { buildValidatedModel, validateModelConfig } from '../src/models/build.ts';
import type { EncoderDecoder } from '../src/models/encoder_decoder.ts';
import type { MaskRCNN } from '../src/models/mask_rcnn.ts';
import { loadCheckpoint } from '../src/nn/checkpoint.ts';
import type { Module } from '../src/nn/module.ts';
import { Rng } from '../src/nn/random.ts';
import { exportOnnx, writeOnnx, type OnnxExportKind } from '../src/onnx/export.ts';
import { decodeModel } from '../src/onnx/proto.ts';
import { createSession, loadOnnxRuntime, type OrtSession } from '../src/onnx/runtime.ts';
import { TINY_CKPT, TINY_DIR, maxRelDiff, readF32, readTinyMeta } from './helpers/fixtures.ts';
import { ROOT } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-onnx-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const ready = initBackend('wasm');
// onnxruntime-node is an optional dependency: without it these tests say so instead of failing.
const noOrt = await loadOnnxRuntime().then(() => false, (e: Error) => e.message);
const opts = { skip: noOrt || undefined };

/** Weights far from their init (layer scales 0.05-0.55, BN statistics, LN affine), so every path counts. */
function randomize(m: Module, seed: number): void {
  const rng = new Rng(seed);
  const sd = m.stateDict();
  for (const [k, t] of sd) {
    if (!(t.data instanceof Float32Array)) continue;
    const d = t.data;
    for (let i = 0; i < d.length; i++) {
      if (k.includes('layer_scale')) d[i] = 0.05 + 0.5 * rng.uniform();
      else if (k.endsWith('running_var')) d[i] = 0.75 + 0.5 * rng.uniform();
      else if (k.endsWith('running_mean') || (t.shape.length === 1 && k.endsWith('.bias'))) d[i] = 0.1 * rng.normal();
      else if (t.shape.length === 1 && k.endsWith('.weight')) d[i] = 1 + 0.1 * rng.normal();
    }
  }
  m.loadStateDict(sd);
}

/** NHWC tfjs input → NCHW run of `session`; returns its outputs by name as NCHW tfjs tensors. */
async function runOrt(session: OrtSession, x: tf.Tensor4D): Promise<Record<string, tf.Tensor>> {
  const ort = await loadOnnxRuntime();
  const nchw = tf.transpose(x, [0, 3, 1, 2]);
  const out = await session.run({ input: new ort.Tensor('float32', nchw.dataSync() as Float32Array, nchw.shape) });
  nchw.dispose();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, tf.tensor(v.data as Float32Array, v.dims as number[])]));
}

const nchw = (t: tf.Tensor): tf.Tensor => (t.rank === 4 ? tf.transpose(t, [0, 3, 1, 2]) : t);

/** Exports `model`, loads it in onnxruntime and compares each output with `reference(x)` at each size. */
async function checkParity(label: string, model: Module, what: OnnxExportKind, reference: (x: tf.Tensor4D) => tf.Tensor[], sizes: [number, number][]): Promise<void> {
  const exp = exportOnnx(model, what, `${label}.onnx`);
  const session = await createSession(exp.model);
  try {
    for (const [h, w] of sizes) {
      const x = tf.randomNormal([1, h, w, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
      const got = await runOrt(session, x);
      const want = tf.tidy(() => reference(x).map(nchw));
      exp.outputs.forEach((name, i) => {
        assert.deepEqual(got[name].shape, want[i].shape, `${label} ${h}x${w} ${name}: shape`);
        const rel = maxRelDiff(got[name], want[i]);
        assert.ok(rel <= 1e-4, `${label} ${h}x${w} ${name}: max relative difference ${rel}`);
      });
      tf.dispose([x, ...Object.values(got), ...want]);
    }
  } finally {
    await session.release();
  }
}

async function segmentor(cfgPath: string): Promise<EncoderDecoder> {
  const cfg = validateExperimentConfig(loadConfig(cfgPath, { openPaths: EXPERIMENT_OPEN_PATHS }), cfgPath);
  const m = await buildValidatedModel(validateModelConfig(cfg.model, cfgPath), { file: cfgPath, log: () => undefined, loadCheckpoint: false });
  return m as unknown as EncoderDecoder;
}

test('tiny official backbone: stage outputs and logits in onnxruntime equal tfjs (fixture input)', opts, async () => {
  await ready;
  const meta = readTinyMeta();
  const m = createConv2Former({ dims: meta.dims, depths: meta.depths, kernelSize: meta.kernel_size }, { withHead: true, init: 'zeros' });
  await loadCheckpoint(m, TINY_CKPT);
  m.eval();
  const x = readF32(path.join(TINY_DIR, 'input.f32'), meta.input_shape).transpose([0, 2, 3, 1]) as tf.Tensor4D;
  for (const what of [{ kind: 'backbone' }, { kind: 'classifier' }] as const) {
    const exp = exportOnnx(m, what, 'tiny.onnx');
    const session = await createSession(exp.model);
    const got = await runOrt(session, x);
    const want = tf.tidy(() => (what.kind === 'backbone' ? m.forward(x).map(nchw) : [m.forwardLogits(x)]));
    exp.outputs.forEach((name, i) => {
      const rel = maxRelDiff(got[name], want[i]);
      assert.ok(rel <= 1e-4, `${what.kind} ${name}: max relative difference ${rel}`);
    });
    tf.dispose([...Object.values(got), ...want]);
    await session.release();
  }
  x.dispose();
  m.dispose();
});

test('Conv2Former-T (backbone and ImageNet logits) at 224x224 and 160x224', opts, async () => {
  await ready;
  const m = createConv2Former('t', { withHead: true });
  randomize(m, 1);
  m.eval();
  await checkParity('c2f_t', m, { kind: 'backbone' }, (x) => m.forward(x), [[224, 224], [160, 224]]);
  await checkParity('c2f_t_cls', m, { kind: 'classifier' }, (x) => [m.forwardLogits(x)], [[224, 224]]);
  m.dispose();
});

test('UperNet segmentors: shapes (logits at 1/4 and at the input size) and UperNet-T at 224x224 and 160x224', opts, async () => {
  await ready;
  const shapes = await segmentor(path.join(ROOT, 'configs/upernet_c2f_shapes.yaml'));
  randomize(shapes, 2);
  shapes.eval();
  await checkParity('shapes_q', shapes, { kind: 'segmentor', resize: false }, (x) => [shapes.forwardLogits(x)], [[64, 64], [96, 128]]);
  await checkParity('shapes', shapes, { kind: 'segmentor', resize: true }, (x) => [shapes.encodeDecode(x)], [[70, 90]]);
  shapes.dispose();
  const t = await segmentor(path.join(ROOT, 'configs/upernet_c2f_t_512x512_160k_ade20k.yaml'));
  randomize(t, 3);
  t.eval();
  await checkParity('upernet_t', t, { kind: 'segmentor', resize: true }, (x) => [t.encodeDecode(x)], [[224, 224], [160, 224]]);
  t.dispose();
});

test('detector dense part (backbone + FPN + RPN head) of the shapes Mask R-CNN and Cascade Mask R-CNN', opts, async () => {
  await ready;
  for (const name of ['maskrcnn_c2f_shapes', 'cascade_maskrcnn_c2f_shapes']) {
    const m = await segmentor(path.join(ROOT, `configs/${name}.yaml`)) as unknown as MaskRCNN;
    randomize(m, 5);
    m.eval();
    const reference = (x: tf.Tensor4D): tf.Tensor[] => {
      const feats = m.extractFeatures(x);
      const rpn = m.rpnHead.forward(feats);
      return feats.flatMap((f, l) => [f, rpn.cls[l], rpn.reg[l]]);
    };
    await checkParity(name, m, { kind: 'detector' }, reference, [[96, 128], [100, 70]]);
    m.dispose();
  }
});

test('the exported file loads back: opset, dynamic dims, PyTorch-path names, LayerNormalization; external data', opts, async () => {
  await ready;
  const m = createConv2Former({ dims: [16, 32, 64, 128], depths: [1, 1, 1, 1], kernelSize: 7 });
  randomize(m, 4);
  m.eval();
  const file = path.join(tmp, 'small.onnx');
  await writeOnnx(exportOnnx(m, { kind: 'backbone' }, file), file);
  const session = await createSession(file);
  assert.deepEqual(session.inputNames, ['input']);
  assert.deepEqual(session.outputNames, ['stage1', 'stage2', 'stage3', 'stage4']);
  const dims = (meta: readonly unknown[]) => meta.map((v) => (v as { shape: (number | string)[] }).shape);
  assert.deepEqual(dims(session.inputMetadata), [['batch', 3, 'height', 'width']]);
  assert.deepEqual(dims(session.outputMetadata), [
    ['batch', 16, 'height_4', 'width_4'], ['batch', 32, 'height_8', 'width_8'], ['batch', 64, 'height_16', 'width_16'], ['batch', 128, 'height_32', 'width_32'],
  ]);
  // Batch 2 and an odd size run through the same file.
  const x = tf.randomNormal([2, 67, 45, 3]) as tf.Tensor4D;
  const got = await runOrt(session, x);
  assert.deepEqual(got.stage4.shape, [2, 128, 2, 1]);
  tf.dispose([x, ...Object.values(got)]);
  await session.release();

  const proto = decodeModel((await import('node:fs')).readFileSync(file)) as {
    opset_import: { version: number }[]; graph: { node: { name: string; op_type: string }[]; initializer: { name: string }[] };
  };
  assert.equal(proto.opset_import[0].version, 17);
  const ops = new Set(proto.graph.node.map((n) => n.op_type));
  for (const op of ['Conv', 'LayerNormalization', 'Erf', 'BatchNormalization']) assert.ok(ops.has(op), `${op} in the graph`);
  assert.ok(proto.graph.node.some((n) => n.name === 'stages.0.0.attn.att.2' && n.op_type === 'Conv'), 'nodes named after module paths');
  assert.ok(proto.graph.initializer.some((t) => t.name === 'stages.3.0.mlp.fc2.weight'), 'initializers named after state-dict keys');

  // Weights in an external data file (used above 1.8 GB) load and compute the same.
  const ext = path.join(tmp, 'ext.onnx');
  const e = exportOnnx(m, { kind: 'backbone' }, ext, { externalThreshold: 0 });
  assert.equal(e.externalName, 'ext.onnx.data');
  await writeOnnx(e, ext);
  assert.ok(existsSync(`${ext}.data`));
  const s2 = await createSession(ext);
  const x2 = tf.randomNormal([1, 64, 64, 3]) as tf.Tensor4D;
  const a = await runOrt(s2, x2);
  const want = tf.tidy(() => m.forward(x2).map(nchw));
  assert.ok(maxRelDiff(a.stage4, want[3]) <= 1e-4);
  tf.dispose([x2, ...Object.values(a), ...want]);
  await s2.release();
  m.dispose();
});
