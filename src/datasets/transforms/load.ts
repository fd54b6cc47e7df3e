/**
 * Loading: images with sharp (MMDet `LoadImageFromFile`) and COCO annotations / seg maps (MMDet
 * `LoadAnnotations` with the box filtering of `CocoDataset._parse_ann_info`). Loading is async, so
 * it is not a {@link Transform}: the dataset calls these to make the {@link Sample} that the
 * (synchronous) pipeline then transforms.
 */
import sharp from 'sharp';
import { decode, segmentationToRle } from '../../coco/mask.ts';
import { readLabelPng, type LabelMap } from '../../io/label_png.ts';
import type { CocoAnnotation } from '../../coco/types.ts';
import { makeSample, type ImageData, type Sample } from './types.ts';
import { masksToBitmaps, type InstanceMasks } from '../../structures/masks.ts';

/** Options of {@link loadImage}. */
export interface LoadImageOptions {
  /** Apply the EXIF orientation, as cv2.IMREAD_COLOR does (default true). */
  autoOrient?: boolean;
  imageId?: number;
}

/**
 * Decodes an image file to RGB uint8 HWC (grey is expanded, alpha dropped) and returns a fresh
 * sample. A missing or undecodable file fails with an error naming it.
 */
export async function loadImage(path: string, opts: LoadImageOptions = {}): Promise<Sample> {
  let data: Buffer;
  let info: sharp.OutputInfo;
  try {
    let p = sharp(path, { failOn: 'error' });
    if (opts.autoOrient ?? true) p = p.rotate();
    ({ data, info } = await p.removeAlpha().raw().toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new Error(`LoadImage: cannot read image '${path}': ${(e as Error).message}`);
  }
  const { width, height, channels } = info;
  let rgb: Uint8Array;
  if (channels === 3) rgb = new Uint8Array(data.buffer, data.byteOffset, data.length).slice();
  else if (channels === 1) {
    rgb = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = data[i];
  } else throw new Error(`LoadImage: '${path}' decoded to ${channels} channels, expected 1 or 3`);
  const img: ImageData = { data: rgb, width, height, channels: 3 };
  return makeSample(img, { imgPath: path, imageId: opts.imageId });
}

/** Loads a single-channel label PNG as `h * w` bytes and sets `s.gtSegMap` (sizes must match). */
export async function loadSegMap(s: Sample, path: string): Promise<Sample> {
  // Our PNG decoder, not sharp: sharp returns palette PNGs as colours and rescales 1/2/4-bit maps.
  let map: LabelMap;
  try {
    map = await readLabelPng(path);
  } catch (e) {
    throw new Error(`LoadAnnotations: ${(e as Error).message}`);
  }
  if (map.width !== s.img.width || map.height !== s.img.height) {
    throw new Error(`LoadAnnotations: seg map '${path}' is ${map.height}x${map.width}, image is ${s.img.height}x${s.img.width}`);
  }
  if (map.data instanceof Uint16Array) {
    const big = map.data.findIndex((v) => v > 255);
    if (big >= 0) throw new Error(`LoadAnnotations: seg map '${path}' has label ${map.data[big]} > 255; 8-bit class ids expected`);
  }
  s.gtSegMap = map.data instanceof Uint8Array ? map.data : Uint8Array.from(map.data);
  return s;
}

export interface LoadAnnotationsOptions {
  /** Category id -> contiguous label; annotations of other categories are skipped. */
  cat2label: Map<number, number>;
  /** Fill `gtMasks` (default true). */
  withMask?: boolean;
  /** Rasterise polygon masks to bitmaps (MMDet `poly2mask`, default true). RLE masks always give bitmaps. */
  poly2mask?: boolean;
}

/**
 * Sets `gtBboxes`, `gtLabels`, `gtBboxesIgnore` and `gtMasks` from COCO annotations, as MMDet's
 * `CocoDataset`: skips `ignore` annotations, boxes not overlapping the image, boxes with `w < 1`,
 * `h < 1` or `area <= 0` and unknown categories; `iscrowd` boxes go to `gtBboxesIgnore`. Boxes
 * `[x, y, x + w, y + h]`.
 */
export function loadAnnotations(s: Sample, anns: CocoAnnotation[], opts: LoadAnnotationsOptions): Sample {
  const { height: H, width: W } = s.img;
  const boxes: number[] = [], labels: number[] = [], ignore: number[] = [];
  const segs: CocoAnnotation['segmentation'][] = [];
  for (const a of anns) {
    if (a.ignore) continue;
    const [x, y, w, h] = a.bbox;
    const iw = Math.max(0, Math.min(x + w, W) - Math.max(x, 0));
    const ih = Math.max(0, Math.min(y + h, H) - Math.max(y, 0));
    if (iw * ih === 0) continue;
    if (a.area <= 0 || w < 1 || h < 1) continue;
    const label = opts.cat2label.get(a.category_id);
    if (label === undefined) continue;
    if (a.iscrowd) { ignore.push(x, y, x + w, y + h); continue; }
    boxes.push(x, y, x + w, y + h);
    labels.push(label);
    segs.push(a.segmentation);
  }
  s.gtBboxes = Float32Array.from(boxes);
  s.gtLabels = Int32Array.from(labels);
  s.gtBboxesIgnore = Float32Array.from(ignore);
  if (opts.withMask ?? true) {
    const allPolys = segs.every((g) => g === undefined || Array.isArray(g));
    let m: InstanceMasks;
    if (allPolys) {
      m = { kind: 'polygons', height: H, width: W, polys: segs.map((g) => (g as number[][] | undefined) ?? []) };
      if (opts.poly2mask ?? true) m = masksToBitmaps(m);
    } else {
      m = {
        kind: 'bitmaps', height: H, width: W,
        masks: segs.map((g) => (g === undefined || (Array.isArray(g) && g.length === 0) ? new Uint8Array(H * W) : decode(segmentationToRle(g, H, W)))),
      };
    }
    s.gtMasks = m;
  }
  return s;
}
