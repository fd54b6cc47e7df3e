/**
 * Mask R-CNN mask targets (MMDetection 2.x `mask_target_single`): each positive proposal's
 * assigned ground-truth mask, cropped to the proposal and resized to `size x size`, as 0/1.
 * - bitmaps: `BitmapMasks.crop_and_resize`, i.e. `roi_align` (output `size x size`, spatial scale 1,
 *   sampling ratio 0 = adaptive, average pooling, `aligned=True`; {@link roiAlignMap}) of the 0/1
 *   mask as float32, then `>= 0.5`;
 * - polygons: `PolygonMasks.crop_and_resize`: vertices shifted by the box's `x1, y1`, scaled by
 *   `size / max(w, 1)`, `size / max(h, 1)`, rasterised with pycocotools' `frPoly` at `size x size`
 *   (the polygons of one instance unioned).
 * Proposals are first clipped to `[0, width] x [0, height]` of the masks, as MMDet does.
 */
import { decode, frPoly } from '../coco/mask.ts';
import { roiAlignMap } from './roi_align.ts';
import { numMasks, type BitmapMasks, type InstanceMasks, type PolygonMasks } from '../structures/masks.ts';

function bitmapTarget(m: BitmapMasks, gt: number, box: readonly number[], size: number, out: Float32Array, at: number, maps: Map<number, Float32Array>): void {
  if (m.height === 0 || m.width === 0) return;
  let map = maps.get(gt);
  if (!map) maps.set(gt, map = Float32Array.from(m.masks[gt]));
  const pooled = roiAlignMap(map, m.height, m.width, Float32Array.from(box), { outputSize: [size, size], spatialScale: 1, samplingRatio: 0, aligned: true });
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
  const maps = new Map<number, Float32Array>();
  for (let i = 0; i < p; i++) {
    const gt = assignedGtInds[i];
    if (!(gt >= 0 && gt < n)) throw new Error(`maskTargets: proposal ${i} is assigned gt ${gt} but there are ${n} gt masks`);
    const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
    const box = [clip(proposals[i * 4], mw), clip(proposals[i * 4 + 1], mh), clip(proposals[i * 4 + 2], mw), clip(proposals[i * 4 + 3], mh)];
    if (gtMasks.kind === 'bitmaps') bitmapTarget(gtMasks, gt, box, size, out, i * size * size, maps);
    else polygonTarget(gtMasks, gt, box, size, out, i * size * size);
  }
  return out;
}
