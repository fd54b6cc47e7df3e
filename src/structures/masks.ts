/**
 * Instance masks as the data pipeline, the heads and the evaluators see them: polygons (COCO
 * files) or bitmaps, both at one image size `[height, width]`, one entry per instance.
 */
import { decode, frPoly } from '../coco/mask.ts';

/** Instance masks as polygons: per instance a list of flat polygons `[x0, y0, x1, y1, ...]` (COCO). */
export interface PolygonMasks {
  kind: 'polygons';
  height: number;
  width: number;
  polys: number[][][];
}

/** Instance masks as bitmaps: per instance `height * width` row-major bytes of 0/1. */
export interface BitmapMasks {
  kind: 'bitmaps';
  height: number;
  width: number;
  masks: Uint8Array[];
}

export type InstanceMasks = PolygonMasks | BitmapMasks;

/** Number of instances of `m`. */
export function numMasks(m: InstanceMasks): number {
  return m.kind === 'polygons' ? m.polys.length : m.masks.length;
}

/**
 * Bitmaps of `m` (bitmaps are returned as they are). Each instance's polygons are rasterised with
 * pycocotools' `frPoly` and unioned; polygons of fewer than 3 points are skipped.
 */
export function masksToBitmaps(m: InstanceMasks): BitmapMasks {
  if (m.kind === 'bitmaps') return m;
  const { height: h, width: w } = m;
  const masks = m.polys.map((polys) => {
    const out = new Uint8Array(h * w);
    for (const p of polys) {
      if (p.length < 6 || h === 0 || w === 0) continue;
      const bits = decode(frPoly(p, h, w));
      for (let i = 0; i < bits.length; i++) out[i] |= bits[i];
    }
    return out;
  });
  return { kind: 'bitmaps', height: h, width: w, masks };
}

/**
 * `N * 4` boxes `x1, y1, x2, y2` of the masks (MMDet's `get_bboxes`): for polygons the extremes of
 * the coordinates; for bitmaps `[xmin, ymin, xmax + 1, ymax + 1]` of the set pixels. Empty masks give
 * zeros.
 */
export function maskBoundingBoxes(m: InstanceMasks): Float32Array {
  const n = numMasks(m);
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
    if (m.kind === 'polygons') {
      for (const p of m.polys[i]) {
        for (let k = 0; k + 1 < p.length; k += 2) {
          x1 = Math.min(x1, p[k]); x2 = Math.max(x2, p[k]);
          y1 = Math.min(y1, p[k + 1]); y2 = Math.max(y2, p[k + 1]);
        }
      }
    } else {
      const bits = m.masks[i];
      const w = m.width;
      for (let y = 0; y < m.height; y++) {
        const row = y * w;
        for (let x = 0; x < w; x++) {
          if (bits[row + x]) {
            if (x < x1) x1 = x;
            if (x + 1 > x2) x2 = x + 1;
            if (y < y1) y1 = y;
            y2 = y + 1;
          }
        }
      }
    }
    if (x1 <= x2 && y1 <= y2) out.set([x1, y1, x2, y2], i * 4);
  }
  return out;
}
