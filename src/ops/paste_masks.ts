/**
 * Pastes Mask R-CNN's `m x m` box-relative mask probabilities into full images (MMDetection 2.x
 * `FCNMaskHead._do_paste_mask` + the threshold of `get_seg_masks`): each image pixel's centre is
 * mapped into the box, `img_x = (x + 0.5 - x0) / (x1 - x0) * 2 - 1`, and the mask is sampled there
 * as `F.grid_sample(bilinear, padding_mode='zeros', align_corners=False)` does (float32), then
 * `>= threshold`. Only the pixels where a sample can be non-zero (the box grown by half a mask
 * cell and a pixel) are computed; the rest are 0.
 */

const f32 = Math.fround;

/** Bilinear taps along one axis for pixels `lo..hi-1`: the lower cell index and the two weights. */
interface Taps {
  lo: number;
  cell: Int32Array;
  /** Weight of `cell` (`cell + 1 - pos`) and of `cell + 1` (`pos - cell`); NaN positions get 0, 0. */
  wLow: Float32Array;
  wHigh: Float32Array;
}

/** The pixel range `[lo, hi)` of one axis where samples of the box `[a, b]` can be non-zero. */
function span(a: number, b: number, m: number, n: number): [number, number] {
  const half = Math.abs(b - a) / (2 * m);
  const lo = Math.max(0, Math.floor(Math.min(a, b) - half - 0.5) - 1);
  const hi = Math.min(n, Math.ceil(Math.max(a, b) + half) + 1);
  return [lo, Math.max(lo, hi)];
}

function taps(a: number, b: number, m: number, lo: number, hi: number): Taps {
  const n = hi - lo;
  const cell = new Int32Array(n);
  const wLow = new Float32Array(n);
  const wHigh = new Float32Array(n);
  const a32 = f32(a);
  const len = f32(f32(b) - a32);
  for (let j = 0; j < n; j++) {
    let g = f32(f32(f32(f32(lo + j + 0.5) - a32) / len) * 2) - 1;
    g = f32(g);
    if (!Number.isFinite(g)) {
      if (Number.isNaN(g)) { cell[j] = -2; continue; } // 0/0: no tap in bounds
      g = 0; // MMDet sets infinite coordinates (zero-size boxes) to the mask centre
    }
    const pos = f32(f32(f32(f32(g + 1) * m) - 1) / 2);
    const c = Math.floor(pos);
    cell[j] = c;
    wLow[j] = f32(c + 1 - pos);
    wHigh[j] = f32(pos - c);
  }
  return { lo, cell, wLow, wHigh };
}

/**
 * Full-image binary masks of `K` detections.
 *
 * @param masks `[K * m * m]` row-major mask probabilities, one `m x m` mask per box.
 * @param m the mask side (28 for Mask R-CNN).
 * @param boxes `[K * 4]` boxes `x1, y1, x2, y2` in pixels of the original image.
 * @param size `[H, W]` the original image size.
 * @param threshold a pixel is set where the sampled probability is `>= threshold` (> 0).
 * @returns K row-major `[H * W]` masks of 0/1.
 */
export function pasteMasks(masks: Float32Array, m: number, boxes: Float32Array, [H, W]: [number, number], threshold = 0.5): Uint8Array[] {
  if (!Number.isInteger(m) || m < 1) throw new Error(`pasteMasks: mask side m must be a positive integer, got ${m}`);
  if (!Number.isInteger(H) || !Number.isInteger(W) || H < 0 || W < 0) throw new Error(`pasteMasks: image size must be integers [H, W] >= 0, got [${H}, ${W}]`);
  if (!(threshold > 0)) throw new Error(`pasteMasks: threshold must be > 0 (pixels away from the box are 0), got ${threshold}`);
  const k = boxes.length / 4;
  if (!Number.isInteger(k)) throw new Error(`pasteMasks: boxes must hold 4 values per box, got ${boxes.length}`);
  if (masks.length !== k * m * m) throw new Error(`pasteMasks: expected ${k} masks of ${m}x${m} (${k * m * m} values) for ${k} boxes, got ${masks.length}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < k; i++) {
    const [x0, y0, x1, y1] = boxes.subarray(i * 4, i * 4 + 4);
    const img = new Uint8Array(H * W);
    out.push(img);
    const [cx0, cx1] = span(x0, x1, m, W);
    const [ry0, ry1] = span(y0, y1, m, H);
    const tx = taps(x0, x1, m, cx0, cx1);
    const ty = taps(y0, y1, m, ry0, ry1);
    const mask = masks.subarray(i * m * m, (i + 1) * m * m);
    const at = (r: number, c: number) => (r >= 0 && r < m && c >= 0 && c < m ? mask[r * m + c] : 0);
    for (let yy = 0; yy < ry1 - ry0; yy++) {
      const r = ty.cell[yy];
      const n = ty.wHigh[yy], s = ty.wLow[yy]; // grid_sample's (y - y_n) and (y_s - y)
      const row = (ry0 + yy) * W;
      for (let xx = 0; xx < cx1 - cx0; xx++) {
        const c = tx.cell[xx];
        const w = tx.wHigh[xx], e = tx.wLow[xx];
        let v = f32(f32(s * e) * at(r, c));
        v = f32(v + f32(f32(s * w) * at(r, c + 1)));
        v = f32(v + f32(f32(n * e) * at(r + 1, c)));
        v = f32(v + f32(f32(n * w) * at(r + 1, c + 1)));
        if (v >= threshold) img[row + cx0 + xx] = 1;
      }
    }
  }
  return out;
}
