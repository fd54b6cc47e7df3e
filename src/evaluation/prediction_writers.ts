/**
 * What `tools/test.ts --out / --show-dir` write for each prediction, per task:
 * - segmentation: `--out DIR` label maps as 8-bit grayscale PNGs of class ids (`<stem>.png`);
 *   `--show-dir DIR` the prediction in the dataset's palette blended 50% over the image;
 * - detection: `--out FILE.json` the COCO results (`FILE.bbox.json`, `FILE.segm.json` when masks);
 *   `--show-dir DIR` the detections scoring at least `showScoreThr` drawn over the image (translucent
 *   masks, boxes, `class|score` labels).
 * Files are written atomically.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { CocoDataset } from '../datasets/coco_dataset.ts';
import { isSegLabelSource, type Dataset } from '../datasets/dataset.ts';
import { writeFileAtomic } from '../io/atomic_write.ts';
import type { Prediction } from '../structures/prediction.ts';
import { instancesToCocoResults } from './coco_evaluator.ts';
import type { EvalItem } from './evaluator.ts';
import type { CocoResult } from '../coco/types.ts';
import { drawInstances, encodeRgbPng } from './draw_instances.ts';

export interface PredictionWriter {
  write(item: EvalItem, pred: Prediction): Promise<void>;
  /** Finishes (writes what was gathered) and says where the outputs are. */
  finish(): Promise<string>;
  /**
   * A writer of one file over every image (COCO results): what this process gathered, JSON-
   * serialisable, for sharded evaluation to collect on one process ({@link PredictionWriter.adoptParts}).
   * Writers of per-image files have none: every process writes its own images.
   */
  shardPart?(): unknown;
  /** Replaces what this writer gathered by every process's part (its own included), before `finish`. */
  adoptParts?(parts: unknown[]): void;
}

export interface WriterOptions {
  task: 'segmentation' | 'detection';
  dataset: Dataset;
  numClasses: number;
  out?: string;
  showDir?: string;
  /** Detection `--show-dir`: only detections scoring at least this are drawn (default 0.3). */
  showScoreThr?: number;
}

/** A deterministic palette for datasets without one. */
function defaultPalette(k: number): [number, number, number][] {
  let s = 7;
  const r = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 24);
  return Array.from({ length: k }, () => [r(), r(), r()] as [number, number, number]);
}

/** The file stem of an item: the dataset's pair stem, the image's name, or the index. */
function stemOf(ds: Dataset, item: EvalItem): string {
  const p = item.meta.imgPath;
  return (isSegLabelSource(ds) ? ds.pairs[item.index]?.stem : undefined) ?? (p ? path.basename(p, path.extname(p)) : String(item.index).padStart(6, '0'));
}

async function writePng(file: string, data: Uint8Array, w: number, h: number, channels: 1 | 3): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const img = sharp(data, { raw: { width: w, height: h, channels } });
  await writeFileAtomic(file, await (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer());
}

function semSegOf(item: EvalItem, pred: Prediction) {
  if (!pred.semSeg) throw new Error(`sample ${item.index}: the prediction has no semantic map`);
  return pred.semSeg;
}

function labelMapWriter(o: WriterOptions, dir: string): PredictionWriter {
  return {
    write: async (item, pred) => {
      const s = semSegOf(item, pred);
      await writePng(path.join(dir, `${stemOf(o.dataset, item)}.png`), Uint8Array.from(s.data), s.width, s.height, 1);
    },
    finish: async () => `predicted label maps in ${dir}`,
  };
}

function paletteOf(o: WriterOptions): readonly (readonly [number, number, number])[] {
  const own = o.dataset.palette;
  return own && own.length >= o.numClasses ? own : defaultPalette(o.numClasses);
}

/** The item's image as sRGB pixels (`channels` per pixel), checked to be `w x h`. */
async function loadImage(item: EvalItem, w: number, h: number): Promise<{ data: Buffer; channels: number }> {
  const imgPath = item.meta.imgPath;
  if (!imgPath) throw new Error(`--show-dir: sample ${item.index} has no image path`);
  const { data, info } = await sharp(imgPath).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.width !== w || info.height !== h) throw new Error(`--show-dir: ${imgPath} is ${info.width}x${info.height}, prediction ${w}x${h}`);
  return { data, channels: info.channels };
}

function overlayWriter(o: WriterOptions, dir: string): PredictionWriter {
  const palette = paletteOf(o);
  return {
    write: async (item, pred) => {
      const s = semSegOf(item, pred);
      const { data, channels: c } = await loadImage(item, s.width, s.height);
      const out = new Uint8Array(s.width * s.height * 3);
      for (let p = 0; p < s.width * s.height; p++) {
        const col = palette[s.data[p]] ?? [0, 0, 0];
        for (let k = 0; k < 3; k++) out[p * 3 + k] = Math.round(0.5 * data[p * c + k] + 0.5 * col[k]);
      }
      await writePng(path.join(dir, `${stemOf(o.dataset, item)}.png`), out, s.width, s.height, 3);
    },
    finish: async () => `overlays in ${dir}`,
  };
}

function detectionOverlayWriter(o: WriterOptions, dir: string): PredictionWriter {
  const palette = paletteOf(o);
  const scoreThr = o.showScoreThr ?? 0.3;
  return {
    write: async (item, pred) => {
      const inst = pred.instances;
      if (!inst) throw new Error(`--show-dir: the prediction of sample ${item.index} has no instances`);
      const [h, w] = item.meta.oriShape;
      const { data, channels: c } = await loadImage(item, w, h);
      const px = new Uint8Array(w * h * 3);
      for (let p = 0; p < w * h; p++) for (let k = 0; k < 3; k++) px[p * 3 + k] = data[p * c + k];
      const labels = drawInstances(px, w, h, inst, { classes: o.dataset.classes, palette, scoreThr });
      const file = path.join(dir, `${stemOf(o.dataset, item)}.png`);
      await writeFileAtomic(file, await encodeRgbPng(px, w, h, labels));
    },
    finish: async () => `detections (score >= ${scoreThr}) drawn in ${dir}`,
  };
}

function cocoResultsWriter(o: WriterOptions, file: string): PredictionWriter {
  if (!(o.dataset instanceof CocoDataset)) throw new Error('--out: COCO results need a COCO-format dataset (category ids)');
  const label2cat = o.dataset.label2cat;
  // Per image (dataset index), so that the parts of sharded evaluation merge into dataset order.
  type ImageResults = [index: number, bbox: CocoResult[], segm: CocoResult[]];
  let images: ImageResults[] = [];
  const stem = file.replace(/\.json$/, '');
  return {
    write: async (item, pred) => {
      const inst = pred.instances;
      const id = item.meta.imageId;
      if (!inst || id === undefined) throw new Error(`--out: sample ${item.index} has no instances or no image id`);
      images.push([item.index, instancesToCocoResults(id, inst, label2cat, 'bbox'), inst.masks ? instancesToCocoResults(id, inst, label2cat, 'segm') : []]);
    },
    shardPart: () => images,
    adoptParts: (parts) => {
      images = (parts as ImageResults[][]).flat();
    },
    finish: async () => {
      const ordered = [...images].sort((a, b) => a[0] - b[0]);
      const res = { bbox: ordered.flatMap((r) => r[1]), segm: ordered.flatMap((r) => r[2]) };
      await mkdir(path.dirname(path.resolve(file)), { recursive: true });
      const files = [`${stem}.bbox.json`, ...(res.segm.length ? [`${stem}.segm.json`] : [])];
      await writeFileAtomic(files[0], JSON.stringify(res.bbox));
      if (files[1]) await writeFileAtomic(files[1], JSON.stringify(res.segm));
      return `COCO results in ${files.join(', ')}`;
    },
  };
}

/** The writers `--out` / `--show-dir` ask for. */
export async function buildPredictionWriters(o: WriterOptions): Promise<PredictionWriter[]> {
  if (o.task === 'detection') {
    if (o.showDir) await mkdir(o.showDir, { recursive: true });
    return [...(o.out ? [cocoResultsWriter(o, o.out)] : []), ...(o.showDir ? [detectionOverlayWriter(o, o.showDir)] : [])];
  }
  // The folders exist even when no image gets scored.
  for (const dir of [o.out, o.showDir]) if (dir) await mkdir(dir, { recursive: true });
  return [...(o.out ? [labelMapWriter(o, o.out)] : []), ...(o.showDir ? [overlayWriter(o, o.showDir)] : [])];
}
