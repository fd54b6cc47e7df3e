/**
 * Drawing instances over an image (MMDet `imshow_det_bboxes`-like), for `tools/test.ts --show-dir`
 * and `tools/browse_dataset.ts`: translucent masks in a colour per instance, 2-pixel boxes and
 * `name|score` labels in a colour per class. Pixels are drawn into an RGB buffer; the labels are
 * SVG text that sharp composites when the PNG is encoded.
 */
import sharp from 'sharp';
import { numInstances, type Instances } from '../structures/instances.ts';
import { masksToBitmaps } from '../structures/masks.ts';

export type Rgb = readonly [number, number, number];

/** A distinct colour per index (golden-ratio hues). */
export function indexColour(i: number): Rgb {
  const h = (i * 0.618033988749895) % 1;
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return Math.round(255 * (1 - Math.max(0, Math.min(k, 4 - k, 1)) * 0.85));
  };
  return [f(5), f(3), f(1)];
}

/** Blends colour `c` with weight `alpha` into pixel `i` of the RGB buffer `px`. */
export function blendPixel(px: Uint8Array, i: number, c: readonly number[], alpha: number): void {
  for (let k = 0; k < 3; k++) px[i * 3 + k] = Math.round(px[i * 3 + k] * (1 - alpha) + c[k] * alpha);
}

/** A 2-pixel outline of `box` (`x1, y1, x2, y2`, rounded) into the `w x h` RGB buffer `px`. */
export function drawBox(px: Uint8Array, w: number, h: number, box: ArrayLike<number>, c: readonly number[]): void {
  const [x1, y1, x2, y2] = [0, 1, 2, 3].map((k) => Math.round(box[k]));
  for (let t = 0; t < 2; t++) {
    for (let x = Math.max(0, x1); x <= Math.min(w - 1, x2); x++) {
      for (const y of [y1 + t, y2 - t]) if (y >= 0 && y < h) blendPixel(px, y * w + x, c, 1);
    }
    for (let y = Math.max(0, y1); y <= Math.min(h - 1, y2); y++) {
      for (const x of [x1 + t, x2 - t]) if (x >= 0 && x < w) blendPixel(px, y * w + x, c, 1);
    }
  }
}

/** A text label with its top-left anchor (the box corner it belongs to). */
export interface TextLabel {
  x: number;
  y: number;
  text: string;
  colour: readonly number[];
}

export interface DrawInstancesOptions {
  /** Class names (labels are shown by index without them). */
  classes?: readonly string[];
  /** A colour per class for boxes and text (default {@link indexColour}). */
  palette?: readonly (readonly number[])[];
  /** Only instances scoring at least this are drawn (ignored without scores; default 0). */
  scoreThr?: number;
  /** Mask opacity (default 0.5). */
  maskAlpha?: number;
}

/**
 * Draws `inst` (masks at the buffer's size, boxes, labels) into the `w x h` RGB buffer `px`.
 * @returns the text labels to render with {@link encodeRgbPng}.
 * @throws when the masks are not `h x w`.
 */
export function drawInstances(px: Uint8Array, w: number, h: number, inst: Instances, o: DrawInstancesOptions = {}): TextLabel[] {
  const n = numInstances(inst);
  const masks = inst.masks ? masksToBitmaps(inst.masks) : undefined;
  if (masks && (masks.width !== w || masks.height !== h)) throw new Error(`drawInstances: masks are ${masks.width}x${masks.height} but the image is ${w}x${h}`);
  const thr = o.scoreThr ?? 0;
  const alpha = o.maskAlpha ?? 0.5;
  const shown: number[] = [];
  for (let i = 0; i < n; i++) if (!inst.scores || inst.scores[i] >= thr) shown.push(i);
  // Masks first (so boxes and labels stay visible), lowest score first so the best is on top.
  const order = inst.scores ? shown.slice().sort((a, b) => inst.scores![a] - inst.scores![b]) : shown;
  order.forEach((i, k) => {
    const m = masks?.masks[i];
    if (!m) return;
    const c = indexColour(k + 1);
    for (let p = 0; p < w * h; p++) if (m[p]) blendPixel(px, p, c, alpha);
  });
  const labels: TextLabel[] = [];
  for (const i of order) {
    const label = inst.labels[i];
    const colour = o.palette?.[label] ?? indexColour(label);
    const box = inst.boxes.subarray(i * 4, i * 4 + 4);
    drawBox(px, w, h, box, colour);
    const name = o.classes?.[label] ?? String(label);
    labels.push({ x: box[0], y: box[1], text: inst.scores ? `${name}|${inst.scores[i].toFixed(2)}` : name, colour });
  }
  return labels;
}

function labelSvg(w: number, h: number, labels: readonly TextLabel[]): Buffer {
  const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const texts = labels.map(({ x, y, text, colour }) =>
    `<text x="${Math.max(0, Math.round(x))}" y="${Math.max(11, Math.round(y) - 3)}" font-family="sans-serif" font-size="11" ` +
    `fill="rgb(${colour.join(',')})" stroke="black" stroke-width="0.4">${esc(text)}</text>`);
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${texts.join('')}</svg>`);
}

/** The PNG of the `w x h` RGB buffer `px` with `labels` written over it. */
export async function encodeRgbPng(px: Uint8Array, w: number, h: number, labels: readonly TextLabel[] = []): Promise<Buffer> {
  let img = sharp(px, { raw: { width: w, height: h, channels: 3 } });
  if (labels.length) img = img.composite([{ input: labelSvg(w, h, labels), top: 0, left: 0 }]);
  return img.png().toBuffer();
}
