/**
 * In-memory synthetic shape images for classification: one shape per image (circle, square,
 * triangle, star, ring) of random size, position, rotation and colour on the dark textured ground of
 * the shapes segmentation/detection sets (one rasteriser, `shapes_draw.ts`). Deterministic by seed.
 */
import type { Rng } from '../nn/random.ts';
import { SHAPE_NAMES, drawShapeTile } from './shapes_draw.ts';

export const SHAPE_CLASSES = SHAPE_NAMES;

/** A batch of images `[N, size, size, 3]` in [0, 1] (NHWC, flat) and labels `[N]`. */
export interface ShapeBatch {
  images: Float32Array;
  labels: Int32Array;
  shape: [number, number, number, 3];
}

/** Draws `n` labelled `size`x`size` images from `rng`. */
export function makeShapeBatch(n: number, size: number, rng: Rng): ShapeBatch {
  const px = size * size * 3;
  const images = new Float32Array(n * px);
  const labels = new Int32Array(n);
  for (let b = 0; b < n; b++) {
    const { pixels, cat } = drawShapeTile(rng, size);
    labels[b] = cat;
    for (let i = 0; i < px; i++) images[b * px + i] = pixels[i] / 255;
  }
  return { images, labels, shape: [n, size, size, 3] };
}
