/**
 * Writes PNGs of dataset samples after the training pipeline (without Normalize), with boxes,
 * labels and translucent instance masks, or colour-coded segmentation maps, so a user can look at
 * their data before training.
 *
 *   npx tsx tools/browse_dataset.ts configs/_base_/datasets/shapes_instance.yaml --out work_dirs/browse [--n 20] [--split train|val]
 *
 * CONFIG is a YAML config (with `_base_` inheritance) holding a `data.train` / `data.val` dataset block.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig } from '../src/config/index.ts';
import { buildDataset } from '../src/datasets/build.ts';
import type { TransformConfig } from '../src/datasets/transforms/pipeline.ts';
import { type Sample } from '../src/datasets/transforms/types.ts';
import { masksToBitmaps } from '../src/structures/masks.ts';
import { Rng } from '../src/nn/random.ts';
import { runCli } from './cli.ts';

/** A distinct colour per class index (golden-ratio hues). */
function classColour(i: number): [number, number, number] {
  const h = (i * 0.618033988749895) % 1;
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return Math.round(255 * (1 - Math.max(0, Math.min(k, 4 - k, 1)) * 0.85));
  };
  return [f(5), f(3), f(1)];
}

function toUint8(s: Sample): Uint8Array {
  const d = s.img.data;
  if (d instanceof Uint8Array) return Uint8Array.from(d);
  return Uint8Array.from(d, (v) => Math.max(0, Math.min(255, Math.round(v))));
}

function blend(px: Uint8Array, i: number, c: readonly number[], alpha: number): void {
  for (let k = 0; k < 3; k++) px[i * 3 + k] = Math.round(px[i * 3 + k] * (1 - alpha) + c[k] * alpha);
}

function drawBox(px: Uint8Array, w: number, h: number, box: ArrayLike<number>, c: readonly number[]): void {
  const [x1, y1, x2, y2] = [0, 1, 2, 3].map((k) => Math.round(box[k]));
  for (let t = 0; t < 2; t++) {
    for (let x = Math.max(0, x1); x <= Math.min(w - 1, x2); x++) {
      for (const y of [y1 + t, y2 - t]) if (y >= 0 && y < h) blend(px, y * w + x, c, 1);
    }
    for (let y = Math.max(0, y1); y <= Math.min(h - 1, y2); y++) {
      for (const x of [x1 + t, x2 - t]) if (x >= 0 && x < w) blend(px, y * w + x, c, 1);
    }
  }
}

function labelSvg(w: number, h: number, items: { x: number; y: number; text: string; colour: number[] }[]): Buffer {
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const texts = items.map(({ x, y, text, colour }) =>
    `<text x="${x}" y="${Math.max(11, y - 3)}" font-family="sans-serif" font-size="11" fill="rgb(${colour.join(',')})" stroke="black" stroke-width="0.4">${esc(text)}</text>`);
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${texts.join('')}</svg>`);
}

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 CONFIG --out DIR [--n 20] [--split train|val]')
    .positional('config', { type: 'string' })
    .option('out', { type: 'string', demandOption: true })
    .option('n', { type: 'number', default: 20 })
    .option('split', { type: 'string', choices: ['train', 'val'], default: 'train' })
    .option('seed', { type: 'number', default: 0 })
    .demandCommand(1, 'give the config file')
    .strict()
    .parse();
  const configPath = String(argv._[0]);
  // Full configs (with _base_) and dataset-only base files alike: only data.<split> is needed here.
  const config = loadConfig(configPath) as { data?: Record<string, Record<string, unknown>> };
  const block = config.data?.[argv.split];
  if (!block) throw new Error(`${configPath}: no 'data.${argv.split}' block`);
  // Show the pixels as the model's input geometry sees them, but in colour: skip Normalize.
  const pipeline = ((block.pipeline ?? []) as TransformConfig[]).filter((t) => t.type !== 'Normalize');
  const dataset = await buildDataset(block, { file: configPath, path: `data.${argv.split}` }, { pipeline });
  const classes = dataset.classes ?? [];
  const palette = dataset.palette;
  mkdirSync(argv.out, { recursive: true });
  const n = Math.min(argv.n, dataset.length);
  let written = 0;
  for (let i = 0; i < n; i++) {
    const s = await dataset.getSample(i, new Rng(argv.seed * 100003 + i));
    if (!s) continue;
    const { width: w, height: h } = s.img;
    const px = toUint8(s);
    const labels: { x: number; y: number; text: string; colour: number[] }[] = [];
    if (s.gtSegMap) {
      for (let p = 0; p < w * h; p++) {
        const v = s.gtSegMap[p];
        if (v === 255) blend(px, p, [0, 0, 0], 0.6);
        else blend(px, p, palette?.[v] ?? classColour(v), 0.5);
      }
    }
    const boxes = s.gtBboxes ?? new Float32Array(0);
    const masks = s.gtMasks ? masksToBitmaps(s.gtMasks) : undefined;
    for (let k = 0; k < boxes.length / 4; k++) {
      const label = s.gtLabels?.[k] ?? 0;
      const colour = classColour(label);
      const m = masks?.masks[k];
      if (m) for (let p = 0; p < w * h; p++) if (m[p]) blend(px, p, colour, 0.45);
      drawBox(px, w, h, boxes.subarray(k * 4, k * 4 + 4), colour);
      labels.push({ x: boxes[k * 4], y: boxes[k * 4 + 1], text: classes[label] ?? String(label), colour });
    }
    const ignore = s.gtBboxesIgnore ?? new Float32Array(0);
    for (let k = 0; k < ignore.length / 4; k++) drawBox(px, w, h, ignore.subarray(k * 4, k * 4 + 4), [128, 128, 128]);
    const stem = s.imgPath ? path.basename(s.imgPath).replace(/\.[^.]+$/, '') : String(i);
    const file = path.join(argv.out, `${String(i).padStart(4, '0')}_${stem}.png`);
    let img = sharp(Buffer.from(px), { raw: { width: w, height: h, channels: 3 } });
    if (labels.length) img = img.composite([{ input: labelSvg(w, h, labels), top: 0, left: 0 }]);
    await img.png().toFile(file);
    written++;
  }
  console.log(`wrote ${written} images to ${argv.out} (${dataset.length} samples in data.${argv.split}; ${dataset.badSamples} skipped as bad)`);
});
