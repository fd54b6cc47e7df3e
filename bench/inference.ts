/**
 * Inference engines side by side, batch 1, same run, same machine: Conv2Former-T forward at 224 on
 * tfjs cpu, tfjs wasm and onnxruntime (our export; and a PyTorch-exported graph of the same model
 * when `--torch-onnx FILE` is given or Debian's python3-torch can make one), and UperNet-T whole
 * inference at 512x512 on wasm and onnxruntime. Seconds per image (median of the timed runs).
 *
 *   npm run bench [-- --threads 2 --iters 10 --skip-cpu]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { createConv2Former } from '../src/backbone/conv2former.ts';
import { EXPERIMENT_OPEN_PATHS, loadConfig, validateExperimentConfig } from '../src/config/index.ts';
import { buildValidatedModel, validateModelConfig } from '../src/models/build.ts';
import type { EncoderDecoder } from '../src/models/encoder_decoder.ts';
import { exportOnnx, type OnnxExportKind } from '../src/onnx/export.ts';
import { createSession, loadOnnxRuntime } from '../src/onnx/runtime.ts';
import type { Module } from '../src/nn/module.ts';
import { median, timeRuns } from './timing.ts';

const argv = await yargs(hideBin(process.argv))
  .option('threads', { type: 'number', default: 2, describe: 'wasm and onnxruntime threads' })
  .option('iters', { type: 'number', default: 10, describe: 'timed runs per row (after warm-up); cpu rows use 2' })
  .option('skip-cpu', { type: 'boolean', default: false, describe: 'skip the (slow) tfjs cpu row' })
  .option('torch-onnx', { type: 'string', describe: 'a PyTorch-exported Conv2Former-T backbone ONNX file to time beside ours' })
  .strict()
  .parse();

const rows: [string, number][] = [];
const report = (name: string, runs: number[]) => {
  const s = median(runs);
  rows.push([name, s]);
  console.log(`${name.padEnd(56)} ${s.toFixed(3)} s`);
};
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-bench-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** tfjs forward of `fn` on `backend` (one warm-up). */
async function tfjsRow(name: string, backend: string, build: () => Promise<{ model: Module; run: (x: tf.Tensor4D) => tf.Tensor | tf.Tensor[] }>, shape: number[], iters: number): Promise<void> {
  await initBackend(backend, { quiet: true, wasmThreads: argv.threads });
  const { model, run } = await build();
  const x = tf.randomNormal(shape as [number, number, number, number]) as tf.Tensor4D;
  const once = async () => {
    const out = tf.tidy(() => run(x));
    const outs = Array.isArray(out) ? out : [out];
    await outs[outs.length - 1].data();
    tf.dispose(outs);
  };
  await once();
  report(name, await timeRuns(once, iters));
  x.dispose();
  model.dispose();
}

/** onnxruntime run of an exported model (or a file) on a random NCHW input. */
async function ortRow(name: string, model: Uint8Array | string, nchw: number[]): Promise<void> {
  const ort = await loadOnnxRuntime();
  const session = await createSession(model, { threads: argv.threads });
  const x = new ort.Tensor('float32', Float32Array.from({ length: nchw.reduce((a, b) => a * b) }, () => Math.random() - 0.5), nchw);
  const once = async () => { await session.run({ [session.inputNames[0]]: x }); };
  for (let i = 0; i < 3; i++) await once();
  report(name, await timeRuns(once, argv.iters));
  await session.release();
}

async function exported(model: Module, what: OnnxExportKind): Promise<Uint8Array> {
  await initBackend('cpu', { quiet: true });
  model.eval();
  return exportOnnx(model, what, 'bench.onnx').model;
}

const c2fT = async () => {
  const model = createConv2Former('t');
  model.eval();
  return { model, run: (x: tf.Tensor4D) => model.forward(x) };
};
const upernetT = async () => {
  const cfgPath = path.resolve(import.meta.dirname, '../configs/upernet_c2f_t_512x512_160k_ade20k.yaml');
  const cfg = validateExperimentConfig(loadConfig(cfgPath, { openPaths: EXPERIMENT_OPEN_PATHS }), cfgPath);
  const model = await buildValidatedModel(validateModelConfig(cfg.model, cfgPath), { file: cfgPath, log: () => undefined, loadCheckpoint: false }) as unknown as EncoderDecoder;
  model.eval();
  return { model, run: (x: tf.Tensor4D) => model.encodeDecode(x) };
};

console.log(`batch 1, ${argv.threads} threads (wasm pool / native kernels, onnxruntime intra-op)`);
if (!argv['skip-cpu']) await tfjsRow('Conv2Former-T 224 forward, tfjs cpu', 'cpu', c2fT, [1, 224, 224, 3], 2);
await tfjsRow('Conv2Former-T 224 forward, tfjs wasm', 'wasm', c2fT, [1, 224, 224, 3], argv.iters);
const t = await c2fT();
await ortRow('Conv2Former-T 224 forward, onnxruntime (our export)', await exported(t.model, { kind: 'backbone' }), [1, 3, 224, 224]);
t.model.dispose();
let torchOnnx = argv['torch-onnx'];
if (!torchOnnx) {
  // The same architecture exported by PyTorch (the reference model of the parity fixtures), when Debian's torch is there.
  const file = path.join(tmp, 'torch_t.onnx');
  const script = `import sys; sys.path.insert(0, ${JSON.stringify(path.resolve(import.meta.dirname, '../../shared/reference'))})
import torch; from conv2former_ref import C2F, VARIANTS
d, n, k = VARIANTS['t']; m = C2F(d, n, k).eval()
class S(torch.nn.Module):
    def __init__(s, m): super().__init__(); s.m = m
    def forward(s, x): return tuple(s.m(x)[0])
torch.onnx.export(S(m), torch.randn(1, 3, 224, 224), ${JSON.stringify(file)}, opset_version=17, input_names=['input'],
    dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'}})`;
  writeFileSync(path.join(tmp, 'export.py'), script);
  const r = spawnSync('/usr/bin/python3', [path.join(tmp, 'export.py')], { encoding: 'utf8' });
  if (r.status === 0 && existsSync(file)) torchOnnx = file;
  else console.log(`(no PyTorch-exported row: /usr/bin/python3 with torch could not export: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()})`);
}
if (torchOnnx) await ortRow('Conv2Former-T 224 forward, onnxruntime (PyTorch export)', torchOnnx, [1, 3, 224, 224]);
await tfjsRow('UperNet-T 512x512 whole inference, tfjs wasm', 'wasm', upernetT, [1, 512, 512, 3], Math.min(argv.iters, 3));
const u = await upernetT();
await ortRow('UperNet-T 512x512 whole inference, onnxruntime', await exported(u.model, { kind: 'segmentor', resize: true }), [1, 3, 512, 512]);
u.model.dispose();
