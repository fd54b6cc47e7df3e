/** A synthetic instance-segmentation image for detector tests: filled squares and discs on a dark ground. */
import * as tf from '@tensorflow/tfjs';
import { batchOf, type Batch } from '../../src/datasets/collate.ts';

export interface DetShape {
  kind: 'square' | 'disc';
  /** Centre and half size in pixels. */
  cx: number;
  cy: number;
  r: number;
  label: number;
  color: [number, number, number];
}

/** Default scene: three objects of two classes on a 128x128 image. */
export const SCENE: DetShape[] = [
  { kind: 'square', cx: 36, cy: 40, r: 18, label: 0, color: [2, -1, -1] },
  { kind: 'disc', cx: 88, cy: 84, r: 22, label: 1, color: [-1, 2, -1] },
  { kind: 'square', cx: 90, cy: 28, r: 14, label: 0, color: [-1, -1, 2] },
];

/**
 * A batch of `n` copies of one normalised `size x size` image of `scene` with its boxes, labels and
 * bitmap masks (no resize: original and input pixels coincide).
 */
export function sceneBatch(scene: DetShape[] = SCENE, size = 128, n = 1): Batch {
  const img = new Float32Array(size * size * 3).fill(-1.5);
  const boxes = new Float32Array(scene.length * 4);
  const masks: Uint8Array[] = [];
  scene.forEach((s, i) => {
    const m = new Uint8Array(size * size);
    let x1 = size, y1 = size, x2 = 0, y2 = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const dx = x + 0.5 - s.cx, dy = y + 0.5 - s.cy;
        const inside = s.kind === 'square' ? Math.abs(dx) <= s.r && Math.abs(dy) <= s.r : dx * dx + dy * dy <= s.r * s.r;
        if (!inside) continue;
        m[y * size + x] = 1;
        img.set(s.color, (y * size + x) * 3);
        x1 = Math.min(x1, x); y1 = Math.min(y1, y); x2 = Math.max(x2, x + 1); y2 = Math.max(y2, y + 1);
      }
    }
    boxes.set([x1, y1, x2, y2], i * 4);
    masks.push(m);
  });
  const all = new Float32Array(n * img.length);
  for (let i = 0; i < n; i++) all.set(img, i * img.length);
  const each = <T>(v: () => T): T[] => Array.from({ length: n }, v);
  return batchOf({
    imgs: tf.tensor4d(all, [n, size, size, 3]),
    metas: each(() => ({ imageId: 1, oriShape: [size, size], imgShape: [size, size], padShape: [size, size], batchInputShape: [size, size], scaleFactor: [1, 1], flip: false })),
    gtBboxes: each(() => boxes),
    gtLabels: each(() => Int32Array.from(scene, (s) => s.label)),
    gtMasks: each(() => ({ kind: 'bitmaps', height: size, width: size, masks })),
    gtBboxesIgnore: each(() => new Float32Array(0)),
  });
}

/** One batch of the images of `batches` (all of one size), in order; the inputs stay the caller's. */
export function stackBatches(batches: Batch[]): Batch {
  return batchOf({
    imgs: tf.concat(batches.map((b) => b.imgs)),
    metas: batches.flatMap((b) => b.metas.map((m) => ({ ...m }))),
    gtBboxes: batches.flatMap((b) => b.gtBboxes),
    gtLabels: batches.flatMap((b) => b.gtLabels),
    gtMasks: batches.flatMap((b) => b.gtMasks),
    gtBboxesIgnore: batches.flatMap((b) => b.gtBboxesIgnore),
  });
}
