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
import { writeFile } from 'node:fs/promises';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadConfig } from '../src/config/index.ts';
import { buildDataset } from '../src/datasets/build.ts';
import type { TransformConfig } from '../src/datasets/transforms/pipeline.ts';
import { type Sample } from '../src/datasets/transforms/types.ts';
import { blendPixel, drawBox, drawInstances, encodeRgbPng, indexColour, type TextLabel } from '../src/evaluation/draw_instances.ts';
import { makeInstances } from '../src/structures/instances.ts';
import { Rng } from '../src/nn/random.ts';
import { runCli } from './cli.ts';

function toUint8(s: Sample): Uint8Array {
  const d = s.img.data;
  if (d instanceof Uint8Array) return Uint8Array.from(d);
  return Uint8Array.from(d, (v) => Math.max(0, Math.min(255, Math.round(v))));
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
    if (s.gtSegMap) {
      for (let p = 0; p < w * h; p++) {
        const v = s.gtSegMap[p];
        if (v === 255) blendPixel(px, p, [0, 0, 0], 0.6);
        else blendPixel(px, p, palette?.[v] ?? indexColour(v), 0.5);
      }
    }
    let labels: TextLabel[] = [];
    if (s.gtBboxes) {
      const inst = makeInstances({ boxes: s.gtBboxes, labels: s.gtLabels ?? new Int32Array(s.gtBboxes.length / 4), ...(s.gtMasks ? { masks: s.gtMasks } : {}) });
      labels = drawInstances(px, w, h, inst, { classes, maskAlpha: 0.45 });
    }
    const ignore = s.gtBboxesIgnore ?? new Float32Array(0);
    for (let k = 0; k < ignore.length / 4; k++) drawBox(px, w, h, ignore.subarray(k * 4, k * 4 + 4), [128, 128, 128]);
    const stem = s.imgPath ? path.basename(s.imgPath).replace(/\.[^.]+$/, '') : String(i);
    const file = path.join(argv.out, `${String(i).padStart(4, '0')}_${stem}.png`);
    await writeFile(file, await encodeRgbPng(px, w, h, labels));
    written++;
  }
  console.log(`wrote ${written} images to ${argv.out} (${dataset.length} samples in data.${argv.split}; ${dataset.badSamples} skipped as bad)`);
});
