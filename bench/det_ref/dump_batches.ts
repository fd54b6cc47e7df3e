/**
 * Dumps what `tools/train.ts configs/maskrcnn_c2f_shapes.yaml` (seed 0) trains on, so that a
 * PyTorch implementation of the same model (bench/det_ref/torch_maskrcnn.py) can be fed the
 * identical batches from the identical initial weights:
 *  - `init.safetensors`: the model as train.ts builds it in a fresh process (PyTorch layout and keys);
 *  - `train/NNNNN.json|.bin` for iterations 0..N-1: the loader's batches (seed 0, shuffle, batch 2),
 *    per image the uint8 RGB image before Normalize (recovered exactly from the normalized floats),
 *    its boxes, labels and bit-packed masks (row-major, MSB first, as numpy.packbits);
 *  - `val/NNNNN.json|.bin`: the validation samples after the val pipeline (same layout) with their
 *    COCO image id, original shape and scale factor.
 * Normalisation: x = float32((u - mean) * (1 / std)) per channel; padding is 0 after normalisation.
 *
 *   npx tsx bench/det_ref/dump_batches.ts --out /tmp/det_dump --iters 1500
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../../src/config/load.ts';
import { buildModel } from '../../src/models/build.ts';
import { buildDataset } from '../../src/datasets/build.ts';
import { collate, type Batch } from '../../src/datasets/collate.ts';
import { DataLoader } from '../../src/datasets/loader.ts';
import { saveSafetensors } from '../../src/nn/checkpoint.ts';
import { masksToBitmaps } from '../../src/structures/masks.ts';
import { Rng } from '../../src/nn/random.ts';

const argv = await yargs(hideBin(process.argv))
  .option('out', { type: 'string', demandOption: true })
  .option('iters', { type: 'number', default: 1500 })
  .option('config', { type: 'string', default: 'configs/maskrcnn_c2f_shapes.yaml' })
  .strict()
  .parse();
await tf.setBackend('cpu');
const file = argv.config;
const cfg = loadConfig(file) as { model: unknown; data: { batch_size: number; train: unknown; val: unknown } };
const MEAN = [123.675, 116.28, 103.53];
const STD = [58.395, 57.12, 57.375];

// First, as in train.ts: the model from the fresh global RNG state.
const model = await buildModel(cfg.model, { file, log: () => {} });
mkdirSync(path.join(argv.out, 'train'), { recursive: true });
mkdirSync(path.join(argv.out, 'val'), { recursive: true });
await saveSafetensors(model, path.join(argv.out, 'init.safetensors'));

function packBits(m: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(m.length / 8));
  for (let i = 0; i < m.length; i++) if (m[i]) out[i >> 3] |= 0x80 >> (i & 7);
  return out;
}

function dumpBatch(b: Batch, stem: string, extra: (i: number) => Record<string, unknown> = () => ({})): void {
  const [n, H, W] = b.imgs.shape;
  const data = b.imgs.dataSync() as Float32Array;
  const parts: Uint8Array[] = [];
  const images = b.metas.map((meta, i) => {
    const [h, w] = meta.imgShape;
    const u8 = new Uint8Array(h * w * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) {
      const v = Math.round(data[((i * H + y) * W + x) * 3 + c] * STD[c] + MEAN[c]);
      u8[(y * w + x) * 3 + c] = v;
    }
    parts.push(u8);
    const masks = b.gtMasks[i] ? masksToBitmaps(b.gtMasks[i]!) : undefined;
    if (masks) for (const m of masks.masks) parts.push(packBits(m));
    return {
      img_shape: [h, w], pad_shape: meta.padShape, boxes: Array.from(b.gtBboxes[i]), labels: Array.from(b.gtLabels[i]),
      ignore: Array.from(b.gtBboxesIgnore[i]), mask_shape: masks ? [masks.height, masks.width] : null, n_masks: masks?.masks.length ?? 0,
      image_id: meta.imageId, ori_shape: meta.oriShape, scale_factor: meta.scaleFactor, flip: meta.flip, ...extra(i),
    };
  });
  writeFileSync(`${stem}.json`, JSON.stringify({ batch_shape: [n, H, W], mean: MEAN, std: STD, images }));
  const total = parts.reduce((s, p) => s + p.length, 0);
  const buf = new Uint8Array(total);
  let off = 0;
  for (const p of parts) { buf.set(p, off); off += p.length; }
  writeFileSync(`${stem}.bin`, buf);
}

const trainSet = await buildDataset(cfg.data.train, { file, path: 'data.train' });
const loader = new DataLoader(trainSet, { batchSize: cfg.data.batch_size, shuffle: true, infinite: true, seed: 0 });
let it = 0;
for await (const b of loader) {
  dumpBatch(b, path.join(argv.out, 'train', String(it).padStart(5, '0')));
  b.dispose();
  if (++it >= argv.iters) break;
}
const valSet = await buildDataset(cfg.data.val, { file, path: 'data.val' });
for (let i = 0; i < valSet.length; i++) {
  const s = await valSet.getSample(i, new Rng(0));
  if (!s) continue;
  const b = collate([s]);
  dumpBatch(b, path.join(argv.out, 'val', String(i).padStart(5, '0')));
  b.dispose();
}
console.log(`dumped init weights, ${it} training batches and ${valSet.length} validation samples to ${argv.out}`);
process.exit(0);
