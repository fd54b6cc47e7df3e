/**
 * Detector speed: Conv2Former-T Mask R-CNN (configs/maskrcnn_c2f_t.yaml's model, 81-way heads) at
 * 800x1333 (padded 800x1344), batch 1: one training step (forward, backward, AdamW update) and one
 * inference with 100 detections whose masks are pasted at full size; and the s/iter of the shapes
 * config's training step (batch 2 of its real data); the same rows for Cascade Mask R-CNN (`cascade-*`).
 * Wasm backend by default.
 *
 * Inference of an untrained model scores every class near 1/81, under the 0.05 threshold, so the
 * inference row uses `score_thr: 0` to produce the 100 detections the reference pastes.
 *
 *   npm run bench:det [-- --backend wasm --iters 2 --rows t-train,t-infer,shapes,cascade-t-train,cascade-t-infer,cascade-shapes]
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend, wasmHeapBytes } from '../src/backend.ts';
import { loadConfig } from '../src/config/load.ts';
import { applyCfgOptions } from '../src/config/cfg_options.ts';
import { batchOf, type Batch } from '../src/datasets/collate.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { batchGradients } from '../src/engine/gradients.ts';
import { buildModel } from '../src/models/build.ts';
import type { Model } from '../src/models/model.ts';
import { Rng, manualSeed } from '../src/nn/random.ts';
import { median, timeRuns } from './timing.ts';

const argv = await yargs(hideBin(process.argv))
  .option('backend', { type: 'string', default: 'wasm' })
  .option('iters', { type: 'number', default: 2, describe: 'timed iterations (after one warm-up)' })
  .option('rows', { type: 'string', default: 't-train,t-infer,shapes', describe: 'also: cascade-t-train, cascade-t-infer, cascade-shapes' })
  .option('size', { type: 'string', default: '800x1333', describe: 'HxW of the T rows\' image' })
  .strict()
  .parse();

await initBackend(argv.backend, { quiet: true });
manualSeed(0);

/** A batch of one synthetic 800x1333 image (padded to 800x1344) with `g` boxes and bitmap masks. */
function syntheticBatch(h: number, w: number, g: number, rng: Rng): Batch {
  const ph = Math.ceil(h / 32) * 32, pw = Math.ceil(w / 32) * 32;
  const boxes = new Float32Array(g * 4);
  const masks: Uint8Array[] = [];
  for (let i = 0; i < g; i++) {
    const bw = 40 + rng.uniform() * 300, bh = 40 + rng.uniform() * 300;
    const x1 = Math.floor(rng.uniform() * (w - bw)), y1 = Math.floor(rng.uniform() * (h - bh));
    const x2 = Math.floor(x1 + bw), y2 = Math.floor(y1 + bh);
    boxes.set([x1, y1, x2, y2], i * 4);
    const m = new Uint8Array(h * w);
    for (let y = y1; y < y2; y++) m.fill(1, y * w + x1, y * w + x2);
    masks.push(m);
  }
  return batchOf({
    imgs: tf.randomNormal([1, ph, pw, 3]) as tf.Tensor4D,
    metas: [{ oriShape: [h, w], imgShape: [h, w], padShape: [ph, pw], batchInputShape: [ph, pw], scaleFactor: [1, 1], flip: false }],
    gtBboxes: [boxes],
    gtLabels: [Int32Array.from({ length: g }, (_, i) => i % 80)],
    gtMasks: [{ kind: 'bitmaps', height: h, width: w, masks }],
    gtBboxesIgnore: [new Float32Array(0)],
  });
}

async function model(config: string, options: string[]): Promise<Model> {
  const cfg = applyCfgOptions(loadConfig(config), options) as { model: unknown };
  return buildModel(cfg.model, { file: config, log: () => {} });
}

function trainStep(m: Model, batch: Batch): () => void {
  const opt = new AdamW(m, { lr: 1e-4, weightDecay: 0.05 });
  const vars = m.trainableVariables();
  m.train();
  return () => {
    const g = batchGradients(m, batch, vars);
    opt.step(g.grads);
    tf.dispose(Object.values(g.grads));
  };
}

const rows = argv.rows.split(',');
const report = (name: string, times: number[], extra = '') => {
  const peak = (process.resourceUsage().maxRSS / 1024 / 1024).toFixed(2);
  const heap = wasmHeapBytes();
  const heapNote = heap === null ? '' : `, wasm heap ${(heap / 2 ** 30).toFixed(2)} GiB`;
  console.log(`${argv.backend.padEnd(5)} ${name.padEnd(34)} median ${median(times).toFixed(2)} s  (runs ${times.map((t) => t.toFixed(2)).join(', ')})  ${extra}  peak RSS so far ${peak} GiB${heapNote}`);
};

/** The train/infer rows of a full-size detector config on one synthetic image. */
async function fullSizeRows(prefix: string, name: string, config: string): Promise<void> {
  const wantTrain = rows.includes(`${prefix}-train`), wantInfer = rows.includes(`${prefix}-infer`);
  if (!wantTrain && !wantInfer) return;
  const m = await model(config, ['model.test_cfg.rcnn.score_thr=0.0']);
  console.log(`${name}: ${(m.numParameters() / 1e6).toFixed(2)}M parameters`);
  const [imgH, imgW] = argv.size.split('x').map(Number);
  if (!(imgH >= 32 && imgW >= 32)) throw new Error(`--size: expected HxW with both at least 32, got '${argv.size}'`);
  const batch = syntheticBatch(imgH, imgW, 8, new Rng(1));
  if (wantTrain) {
    const before = tf.memory().numTensors;
    report(`${prefix.toUpperCase()} train step ${argv.size} b1`, await timeRuns(trainStep(m, batch), argv.iters), `tensors ${before} -> ${tf.memory().numTensors}`);
  }
  if (wantInfer) {
    m.eval();
    let dets = 0;
    report(`${prefix.toUpperCase()} inference ${argv.size} (100 dets)`, await timeRuns(async () => { dets = (await m.predict(batch))[0].instances!.labels.length; }, argv.iters), `detections ${dets}`);
  }
  batch.dispose();
  m.dispose();
}

await fullSizeRows('t', 'Conv2Former-T Mask R-CNN', 'configs/maskrcnn_c2f_t.yaml');
await fullSizeRows('cascade-t', 'Conv2Former-T Cascade Mask R-CNN', 'configs/cascade_maskrcnn_c2f_t.yaml');

/** The training step of a shapes config on two samples of its real data. */
async function shapesRow(label: string, cfgFile: string): Promise<void> {
  const { buildDataset } = await import('../src/datasets/build.ts');
  const { collate } = await import('../src/datasets/collate.ts');
  const cfg = loadConfig(cfgFile) as { model: unknown; data: { train: unknown } };
  const m = await buildModel(cfg.model, { file: cfgFile, log: () => {} });
  const ds = await buildDataset(cfg.data.train, { file: cfgFile, path: 'data.train' });
  const rng = new Rng(0);
  const samples = [];
  for (let i = 0; samples.length < 2; i++) { const s = await ds.getSample(i, rng); if (s) samples.push(s); }
  const batch = collate(samples);
  report(`${label} train step (batch 2)`, await timeRuns(trainStep(m, batch), Math.max(argv.iters, 5)));
  batch.dispose();
  m.dispose();
}

if (rows.includes('shapes')) await shapesRow('shapes', 'configs/maskrcnn_c2f_shapes.yaml');
if (rows.includes('cascade-shapes')) await shapesRow('cascade shapes', 'configs/cascade_maskrcnn_c2f_shapes.yaml');
