/**
 * Mask R-CNN mask targets (MMDetection 2.x `mask_target_single`): each positive proposal's
 * assigned ground-truth mask, cropped to the proposal and resized to `size x size`, as 0/1.
 * - bitmaps: `BitmapMasks.crop_and_resize`, i.e. mmcv `roi_align` (output `size x size`, spatial
 *   scale 1, sampling ratio 0 = adaptive, average pooling, `aligned=True`) of the 0/1 mask as
 *   float32, then `>= 0.5`;
 * - polygons: `PolygonMasks.crop_and_resize`: vertices shifted by the box's `x1, y1`, scaled by
 *   `size / max(w, 1)`, `size / max(h, 1)`, rasterised with pycocotools' `frPoly` at `size x size`
 *   (the polygons of one instance unioned).
 * Proposals are first clipped to `[0, width] x [0, height]` of the masks, as MMDet does.
 */
import { decode, frPoly } from '../coco/mask.ts';
import { numMasks, type BitmapMasks, type InstanceMasks, type PolygonMasks } from '../structures/masks.ts';

const f32 = Math.fround;

/**
 * mmcv's `roi_align` (CPU kernel, avg mode, `aligned=True`, sampling ratio 0, spatial scale 1) of
 * one single-channel image, in float32 arithmetic as the kernel does.
 *
 * @param img `[h * w]` row-major values; @param x1,y1,x2,y2 the roi in pixels.
 * @returns `[size * size]` pooled values.
 */
function roiAlignSingle(img: Uint8Array, h: number, w: number, x1: number, y1: number, x2: number, y2: number, size: number): Float32Array {
  const out = new Float32Array(size * size);
  // aligned=True: pixel centres at integer + 0.5, so shift by half a pixel; no minimum roi size.
  const startW = f32(f32(x1) - 0.5);
  const startH = f32(f32(y1) - 0.5);
  const roiW = f32(f32(f32(x2) - 0.5) - startW);
  const roiH = f32(f32(f32(y2) - 0.5) - startH);
  const binW = f32(roiW / size);
  const binH = f32(roiH / size);
  const gridH = Math.ceil(f32(roiH / size));
  const gridW = Math.ceil(f32(roiW / size));
  const count = Math.max(gridH * gridW, 1);
  if (!(gridH > 0 && gridW > 0)) return out; // an empty (or inverted) roi pools nothing
  // Separable bilinear taps: per sample row/column its two indices and weights (0 weights outside).
  const taps = (start: number, bin: number, grid: number, n: number) => {
    const lo = new Int32Array(size * grid);
    const hi = new Int32Array(size * grid);
    const wl = new Float32Array(size * grid);
    const wh = new Float32Array(size * grid);
    const valid = new Uint8Array(size * grid);
    for (let p = 0; p < size; p++) {
      for (let i = 0; i < grid; i++) {
        let v = f32(f32(start + f32(p * bin)) + f32(f32(f32(i + 0.5) * bin) / grid));
        const k = p * grid + i;
        if (v < -1 || v > n) continue;
        if (v <= 0) v = 0;
        let l = Math.trunc(v);
        let u: number;
        if (l >= n - 1) {
          l = u = n - 1;
          v = l;
        } else u = l + 1;
        const frac = f32(v - l);
        lo[k] = l; hi[k] = u; wh[k] = frac; wl[k] = f32(1 - frac); valid[k] = 1;
      }
    }
    return { lo, hi, wl, wh, valid };
  };
  const ty = taps(startH, binH, gridH, h);
  const tx = taps(startW, binW, gridW, w);
  for (let ph = 0; ph < size; ph++) {
    for (let pw = 0; pw < size; pw++) {
      let acc = 0;
      for (let iy = 0; iy < gridH; iy++) {
        const ky = ph * gridH + iy;
        for (let ix = 0; ix < gridW; ix++) {
          const kx = pw * gridW + ix;
          // mmcv zeroes all four weights when the sample point lies outside [-1, h] x [-1, w].
          if (!ty.valid[ky] || !tx.valid[kx]) continue;
          const rl = ty.lo[ky] * w, rh = ty.hi[ky] * w;
          const xl = tx.lo[kx], xh = tx.hi[kx];
          const w1 = f32(ty.wl[ky] * tx.wl[kx]), w2 = f32(ty.wl[ky] * tx.wh[kx]);
          const w3 = f32(ty.wh[ky] * tx.wl[kx]), w4 = f32(ty.wh[ky] * tx.wh[kx]);
          const v = f32(f32(f32(f32(w1 * img[rl + xl]) + f32(w2 * img[rl + xh])) + f32(w3 * img[rh + xl])) + f32(w4 * img[rh + xh]));
          acc = f32(acc + v);
        }
      }
      out[ph * size + pw] = f32(acc / count);
    }
  }
  return out;
}

function bitmapTarget(m: BitmapMasks, gt: number, box: readonly number[], size: number, out: Float32Array, at: number): void {
  if (m.height === 0 || m.width === 0) return;
  const pooled = roiAlignSingle(m.masks[gt], m.height, m.width, box[0], box[1], box[2], box[3], size);
  for (let i = 0; i < pooled.length; i++) out[at + i] = pooled[i] >= 0.5 ? 1 : 0;
}

function polygonTarget(m: PolygonMasks, gt: number, box: readonly number[], size: number, out: Float32Array, at: number): void {
  const [x1, y1, x2, y2] = box;
  const sx = size / Math.max(Math.max(x2 - x1, 1), 0.1);
  const sy = size / Math.max(Math.max(y2 - y1, 1), 0.1);
  for (const p of m.polys[gt]) {
    if (p.length < 6) continue;
    const q = p.map((v, k) => (k % 2 === 0 ? (v - x1) * sx : (v - y1) * sy));
    const bits = decode(frPoly(q, size, size));
    for (let i = 0; i < bits.length; i++) if (bits[i]) out[at + i] = 1;
  }
}

/**
 * Mask targets of the positive proposals of one image (MMDet 2.x `mask_target_single`).
 *
 * @param proposals `[P * 4]` boxes `x1, y1, x2, y2` in pixels of the (padded) input image, the
 *   frame of `gtMasks`; clipped to the masks' `[0, width] x [0, height]` first.
 * @param assignedGtInds `[P]` the 0-based ground-truth index of each proposal.
 * @param gtMasks the image's ground-truth masks (bitmaps or polygons).
 * @param size the target side (28 for Mask R-CNN).
 * @returns `[P * size * size]` row-major targets of 0/1, proposal after proposal.
 */
export function maskTargets(proposals: Float32Array, assignedGtInds: Int32Array, gtMasks: InstanceMasks, size = 28): Float32Array {
  const p = assignedGtInds.length;
  if (proposals.length !== p * 4) throw new Error(`maskTargets: expected ${p * 4} proposal values (4 per assigned gt index), got ${proposals.length}`);
  if (!Number.isInteger(size) || size < 1) throw new Error(`maskTargets: size must be a positive integer, got ${size}`);
  const n = numMasks(gtMasks);
  const { height: mh, width: mw } = gtMasks;
  const out = new Float32Array(p * size * size);
  for (let i = 0; i < p; i++) {
    const gt = assignedGtInds[i];
    if (!(gt >= 0 && gt < n)) throw new Error(`maskTargets: proposal ${i} is assigned gt ${gt} but there are ${n} gt masks`);
    const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
    const box = [clip(proposals[i * 4], mw), clip(proposals[i * 4 + 1], mh), clip(proposals[i * 4 + 2], mw), clip(proposals[i * 4 + 3], mh)];
    if (gtMasks.kind === 'bitmaps') bitmapTarget(gtMasks, gt, box, size, out, i * size * size);
    else polygonTarget(gtMasks, gt, box, size, out, i * size * size);
  }
  return out;
}
