/**
 * In-memory synthetic shape images for classification: one bright shape per image (circle,
 * square, triangle, ring) of random size, position and colour on a dark noisy background. Deterministic by seed.
 * The quick-start demo trains on it, so the framework runs out of the box with no data download.
 */
import { Rng } from '../nn/random.ts';

export const SHAPE_CLASSES = ['circle', 'square', 'triangle', 'ring'] as const;

/** A batch of images `[N, size, size, 3]` in [0, 1] (NHWC, flat) and labels `[N]`. */
export interface ShapeBatch {
  images: Float32Array;
  labels: Int32Array;
  shape: [number, number, number, 3];
}

/** Whether pixel centre (x, y) lies inside shape `cls` centred at (cx, cy) with radius r. */
function inside(cls: number, x: number, y: number, cx: number, cy: number, r: number): boolean {
  const dx = x - cx;
  const dy = y - cy;
  switch (cls) {
    case 0: return dx * dx + dy * dy <= r * r;
    case 1: return Math.abs(dx) <= r * 0.85 && Math.abs(dy) <= r * 0.85;
    case 2: return dy <= r * 0.7 && dy >= -r + 1.7 * Math.abs(dx);
    default: { const d2 = dx * dx + dy * dy; return d2 <= r * r && d2 >= (0.55 * r) ** 2; }
  }
}

/** Draws `n` labelled images of `size`x`size` from `rng`. */
export function makeShapeBatch(n: number, size: number, rng: Rng): ShapeBatch {
  const images = new Float32Array(n * size * size * 3);
  const labels = new Int32Array(n);
  for (let b = 0; b < n; b++) {
    const cls = Math.floor(rng.uniform() * SHAPE_CLASSES.length);
    labels[b] = cls;
    const r = size * (0.18 + 0.17 * rng.uniform());
    const cx = r + rng.uniform() * (size - 2 * r);
    const cy = r + rng.uniform() * (size - 2 * r);
    // Dark noisy background, bright shape of any hue: the class is in the outline, not the colour.
    const bg = [0.35 * rng.uniform(), 0.35 * rng.uniform(), 0.35 * rng.uniform()];
    const fg = [0.6 + 0.4 * rng.uniform(), 0.6 + 0.4 * rng.uniform(), 0.6 + 0.4 * rng.uniform()];
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const on = inside(cls, x + 0.5, y + 0.5, cx, cy, r);
        const o = ((b * size + y) * size + x) * 3;
        for (let c = 0; c < 3; c++) {
          const v = (on ? fg[c] : bg[c]) + (rng.uniform() - 0.5) * 0.2;
          images[o + c] = Math.min(1, Math.max(0, v));
        }
      }
    }
  }
  return { images, labels, shape: [n, size, size, 3] };
}
