/**
 * Evaluates a trained segmentor (MMSeg `tools/test.py`): builds `data.test` (else `data.val`) and the
 * model of CONFIG, loads CHECKPOINT strictly, runs the config's `test:` mode (whole / slide with
 * crop_size and stride), prints the per-class table and aAcc/mIoU/mAcc.
 *
 *   npx tsx tools/test.ts CONFIG CHECKPOINT [--out PRED_DIR] [--metrics-out FILE.json] [--aug-test]
 *     [--show-dir DIR] [--cfg-options k=v ...] [--backend NAME]
 *
 * CHECKPOINT: weights (`iter_<n>.safetensors`, or a .pth/.bin tfjs-readable checkpoint), a pointer
 * JSON written by tools/train.ts (`latest.json`, `best.json`), or such a pointer without its `.json`
 * (`work_dirs/x/latest`).
 * - `--metrics-out`: `{"aAcc", "mIoU", "mAcc", "per_class": {"IoU": [...], "Acc": [...]}}` as
 *   fractions, NaN written as null; written atomically.
 * - `--out`: predicted label maps as 8-bit grayscale PNGs of class ids, `<image stem>.png`.
 * - `--show-dir`: the predictions in the dataset's palette blended 50% over the image.
 * - `--aug-test`: horizontal flip + scales [0.5, 0.75, 1, 1.25, 1.5, 1.75] (MMSeg's TTA; `test.aug`
 *   `{scales, flip}` in the config overrides these), softmax probabilities averaged.
 */
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/backend.ts';
import { loadConfig, validateExperimentConfig } from '../src/config/index.ts';
import { buildDataset } from '../src/datasets/build.ts';
import type { ImgMeta } from '../src/datasets/collate.ts';
import { isSegLabelSource } from '../src/datasets/dataset.ts';
import { evaluateSegmentor } from '../src/engine/evaluate_seg.ts';
import { readCheckpointPointer } from '../src/engine/trainer.ts';
import { formatSegMetrics, type SegMetrics } from '../src/evaluation/index.ts';
import { writeFileAtomic } from '../src/io/atomic_write.ts';
import { buildSegmentor } from '../src/models/build.ts';
import { loadCheckpoint } from '../src/nn/checkpoint.ts';
import { runCli } from './cli.ts';

const TTA_SCALES = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75];

/** Resolves CHECKPOINT (weights file, pointer JSON, or pointer without `.json`) to a weights file. */
async function resolveCheckpoint(arg: string): Promise<string> {
  let p = arg;
  if (!existsSync(p) && existsSync(`${p}.json`)) p = `${p}.json`;
  const st = await stat(p).catch(() => null);
  if (!st) throw new Error(`checkpoint ${arg} does not exist`);
  if (st.isDirectory()) {
    const latest = path.join(p, 'latest.json');
    if (!existsSync(latest)) throw new Error(`checkpoint ${arg} is a folder without latest.json`);
    p = latest;
  }
  return p.endsWith('.json') ? readCheckpointPointer(p).weightsPath : p;
}

/** MMSeg-style JSON: fractions, NaN → null. */
function metricsJson(m: SegMetrics): string {
  const n = (v: number) => (Number.isFinite(v) ? v : null);
  return JSON.stringify({ aAcc: n(m.aAcc), mIoU: n(m.mIoU), mAcc: n(m.mAcc), per_class: { IoU: m.perClass.IoU.map(n), Acc: m.perClass.Acc.map(n) } }, null, 2) + '\n';
}

/** A deterministic palette for datasets without one. */
function defaultPalette(k: number): [number, number, number][] {
  let s = 7;
  const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24);
  return Array.from({ length: k }, () => [r(), r(), r()] as [number, number, number]);
}

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 CONFIG CHECKPOINT [--out PRED_DIR] [--metrics-out FILE.json] [--aug-test] [--show-dir DIR] [--backend NAME]')
    .option('out', { type: 'string', describe: 'folder for predicted label PNGs (class ids)' })
    .option('metrics-out', { type: 'string', describe: 'JSON file for the metrics' })
    .option('aug-test', { type: 'boolean', default: false, describe: 'flip + multi-scale test-time augmentation' })
    .option('show-dir', { type: 'string', describe: 'folder for colour overlays of the predictions' })
    .option('cfg-options', { type: 'string', array: true, describe: 'overrides a.b.c=value' })
    .option('batch-size', { type: 'number', default: 1, describe: 'images per forward pass' })
    .option('backend', { type: 'string', default: 'auto', describe: 'tfjs backend: auto, tensorflow-gpu, tensorflow, wasm, cpu (auto honours C2F_BACKEND)' })
    .demandCommand(2, 'give CONFIG and CHECKPOINT')
    .strict()
    .parse();
  if (argv._.length > 2) throw new Error(`unexpected arguments: ${argv._.slice(2).join(' ')}`);
  const cfgPath = String(argv._[0]);
  const ckptArg = String(argv._[1]);
  const raw = loadConfig(cfgPath, { cfgOptions: argv['cfg-options'] ?? [] });
  const cfg = validateExperimentConfig(raw, cfgPath);
  const weights = await resolveCheckpoint(ckptArg);
  await initBackend(argv.backend);

  const split = cfg.data.test ? 'test' : 'val';
  const dataset = await buildDataset(cfg.data[split], { file: cfgPath, path: `data.${split}` });
  // The full checkpoint replaces the backbone's pretrained weights, so don't read those.
  const modelBlock = structuredClone(cfg.model) as Record<string, unknown>;
  const bb = modelBlock.backbone as Record<string, unknown> | undefined;
  if (bb && typeof bb === 'object') delete bb.checkpoint;
  const model = await buildSegmentor(modelBlock, `${cfgPath}: model`, { log: () => undefined });
  await loadCheckpoint(model, weights, { strict: true });
  console.log(`loaded ${weights}`);

  const numClasses = model.numClasses;
  const ds = { classes: dataset.classes, palette: dataset.palette, pairs: isSegLabelSource(dataset) ? dataset.pairs : undefined };
  const classes = ds.classes && ds.classes.length === numClasses ? ds.classes : undefined;
  const palette = ds.palette && ds.palette.length >= numClasses ? ds.palette : defaultPalette(numClasses);
  const test = (cfg.test ?? { mode: 'whole' }) as { mode: string; crop_size?: unknown; stride?: unknown; aug?: unknown };
  const aug = (test.aug ?? {}) as { scales?: number[]; flip?: boolean };
  const stemOf = (i: number, meta: ImgMeta): string =>
    ds.pairs?.[i]?.stem ?? (meta.imgPath ? path.basename(meta.imgPath, path.extname(meta.imgPath)) : String(i).padStart(6, '0'));
  if (argv.out) await mkdir(argv.out, { recursive: true });
  if (argv['show-dir']) await mkdir(argv['show-dir'], { recursive: true });

  const onPrediction = async (i: number, pred: Int32Array, meta: ImgMeta): Promise<void> => {
    const [h, w] = meta.oriShape;
    const stem = stemOf(i, meta);
    if (argv.out) {
      const file = path.join(argv.out, `${stem}.png`);
      await mkdir(path.dirname(file), { recursive: true });
      const png = await sharp(Uint8Array.from(pred), { raw: { width: w, height: h, channels: 1 } }).toColourspace('b-w').png().toBuffer();
      await writeFileAtomic(file, png);
    }
    if (argv['show-dir']) {
      if (!meta.imgPath) throw new Error(`--show-dir: sample ${i} has no image path`);
      const { data, info } = await sharp(meta.imgPath).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      if (info.width !== w || info.height !== h) throw new Error(`--show-dir: ${meta.imgPath} is ${info.width}x${info.height}, prediction ${w}x${h}`);
      const c = info.channels;
      const out = Buffer.alloc(w * h * 3);
      for (let p = 0; p < w * h; p++) {
        const col = palette[pred[p]] ?? [0, 0, 0];
        for (let k = 0; k < 3; k++) out[p * 3 + k] = Math.round(0.5 * data[p * c + k] + 0.5 * col[k]);
      }
      const file = path.join(argv['show-dir'], `${stem}.png`);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFileAtomic(file, await sharp(out, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer());
    }
  };

  const t0 = performance.now();
  const metrics = await evaluateSegmentor(model, dataset, {
    mode: test.mode as 'whole' | 'slide',
    cropSize: test.crop_size as [number, number] | undefined,
    stride: test.stride as [number, number] | undefined,
    numClasses,
    batchSize: argv['batch-size'],
    flip: argv['aug-test'] ? (aug.flip ?? true) : false,
    scales: argv['aug-test'] ? (aug.scales ?? TTA_SCALES) : undefined,
    onPrediction: argv.out || argv['show-dir'] ? onPrediction : undefined,
    log: (l) => { if (l.startsWith('warning')) console.warn(l); },
  });
  console.log(`evaluated ${dataset.length} images of data.${split} in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
    ` (mode ${test.mode}${argv['aug-test'] ? ', aug-test' : ''})`);
  console.log(formatSegMetrics(metrics, classes));
  if (argv['metrics-out']) {
    await mkdir(path.dirname(path.resolve(argv['metrics-out'])), { recursive: true });
    await writeFileAtomic(argv['metrics-out'], metricsJson(metrics));
    console.log(`metrics written to ${argv['metrics-out']}`);
  }
  if (argv.out) console.log(`predicted label maps in ${argv.out}`);
  if (argv['show-dir']) console.log(`overlays in ${argv['show-dir']}`);
});
