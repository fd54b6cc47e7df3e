/**
 * Mask R-CNN mask ops: maskTargets (MMDet 2.x mask_target: roi_align aligned + >= 0.5 for bitmaps,
 * crop/scale/frPoly for polygons) and pasteMasks (MMDet _do_paste_mask: grid_sample bilinear,
 * align_corners=False, then >= threshold), on hand-derived cases and a direct grid_sample.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskTargets } from '../src/ops/mask_target.ts';
import { pasteMasks } from '../src/ops/paste_masks.ts';
import { masksToBitmaps, type BitmapMasks, type PolygonMasks } from '../src/structures/masks.ts';

/** A `h x w` bitmap with the pixels `x0 <= x < x1`, `y0 <= y < y1` set. */
function rect(h: number, w: number, x0: number, y0: number, x1: number, y1: number): Uint8Array {
  const m = new Uint8Array(h * w);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * w + x] = 1;
  return m;
}

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);

test('maskTargets: a box exactly covering a rectangle gives all ones (bitmaps and polygons)', () => {
  const bitmaps: BitmapMasks = { kind: 'bitmaps', height: 40, width: 50, masks: [rect(40, 50, 10, 5, 30, 25)] };
  const polys: PolygonMasks = { kind: 'polygons', height: 40, width: 50, polys: [[[10, 5, 30, 5, 30, 25, 10, 25]]] };
  for (const gt of [bitmaps, polys]) {
    const t = maskTargets(Float32Array.from([10, 5, 30, 25]), Int32Array.from([0]), gt, 28);
    assert.equal(t.length, 28 * 28);
    assert.equal(sum(t), 28 * 28, gt.kind);
  }
  // A box over an empty area gives zeros; a box twice as wide gives the rectangle's left half, and
  // clipped to the 40-pixel height, 20 of its 35 rows (16 of 28).
  const empty = maskTargets(Float32Array.from([35, 28, 50, 40]), Int32Array.from([0]), bitmaps, 14);
  assert.equal(sum(empty), 0);
  const big = maskTargets(Float32Array.from([10, 5, 50, 45]), Int32Array.from([0]), bitmaps, 28);
  assert.equal(sum(big), 14 * 16);
});

test('maskTargets: half masks give the left half of the target', () => {
  // Pixels 0..9 of a 20-wide box: aligned roi_align samples x = -0.5 + (j + 0.5) * 20 / 28, so
  // columns 0..13 are >= 0.5 and 14..27 are not.
  const half: BitmapMasks = { kind: 'bitmaps', height: 20, width: 20, masks: [rect(20, 20, 0, 0, 10, 20)] };
  const t = maskTargets(Float32Array.from([0, 0, 20, 20]), Int32Array.from([0]), half, 28);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) assert.equal(t[y * 28 + x], x < 14 ? 1 : 0, `(${x}, ${y})`);
  const poly: PolygonMasks = { kind: 'polygons', height: 20, width: 20, polys: [[[0, 0, 10, 0, 10, 20, 0, 20]]] };
  const tp = maskTargets(Float32Array.from([0, 0, 20, 20]), Int32Array.from([0]), poly, 28);
  assert.deepEqual(tp, t);
});

test('maskTargets: bitmaps and polygons of the same shapes mostly agree; proposals are clipped; ids checked', () => {
  const polys: PolygonMasks = {
    kind: 'polygons', height: 64, width: 80,
    polys: [[[12.3, 8.1, 60.7, 15.2, 40.4, 55.9]], [[5, 30, 30, 30, 30, 60, 5, 60], [50, 40, 75, 40, 62, 62]]],
  };
  const bitmaps = masksToBitmaps(polys);
  const proposals = Float32Array.from([10, 6, 62, 57, 14.5, 12.2, 50.3, 40.8, 0, 25, 79, 63, -20, -10, 40, 70]);
  const inds = Int32Array.from([0, 0, 1, 1]);
  const size = 28;
  const a = maskTargets(proposals, inds, bitmaps, size);
  const b = maskTargets(proposals, inds, polys, size);
  for (let i = 0; i < inds.length; i++) {
    const sa = a.subarray(i * size * size, (i + 1) * size * size);
    const sb = b.subarray(i * size * size, (i + 1) * size * size);
    let same = 0;
    for (let k = 0; k < sa.length; k++) if (sa[k] === sb[k]) same++;
    assert.ok(same / sa.length > 0.93, `proposal ${i}: ${same} of ${sa.length} agree`);
    assert.ok(sum(sa) > 0);
  }
  // [-20, -10, 40, 70] is clipped to [0, 0, 40, 64] first.
  const clipped = maskTargets(Float32Array.from([0, 0, 40, 64]), Int32Array.from([1]), bitmaps, size);
  assert.deepEqual(a.subarray(3 * size * size), clipped);
  assert.throws(() => maskTargets(proposals, Int32Array.from([0, 0, 2, 1]), bitmaps), /proposal 2 is assigned gt 2 but there are 2 gt masks/);
  assert.throws(() => maskTargets(proposals, Int32Array.from([0]), bitmaps), /expected 4 proposal values/);
  assert.equal(maskTargets(new Float32Array(0), new Int32Array(0), bitmaps).length, 0);
});

/** torch `grid_sample(bilinear, zeros, align_corners=False)` of the `m x m` mask at every pixel of the image, in doubles. */
function pasteReference(mask: Float32Array, m: number, box: number[], h: number, w: number, thr: number): Uint8Array {
  const [x0, y0, x1, y1] = box;
  const out = new Uint8Array(h * w);
  const at = (r: number, c: number) => (r >= 0 && r < m && c >= 0 && c < m ? mask[r * m + c] : 0);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const gx = ((x + 0.5 - x0) / (x1 - x0)) * 2 - 1;
      const gy = ((y + 0.5 - y0) / (y1 - y0)) * 2 - 1;
      const ix = ((gx + 1) * m - 1) / 2;
      const iy = ((gy + 1) * m - 1) / 2;
      const c = Math.floor(ix), r = Math.floor(iy);
      const fx = ix - c, fy = iy - r;
      const v = (1 - fy) * ((1 - fx) * at(r, c) + fx * at(r, c + 1)) + fy * ((1 - fx) * at(r + 1, c) + fx * at(r + 1, c + 1));
      out[y * w + x] = v >= thr ? 1 : 0;
    }
  }
  return out;
}

test('pasteMasks: a full mask covers exactly the pixels of an integer box; a half mask its left half', () => {
  const m = 28;
  const ones = new Float32Array(m * m).fill(1);
  const [pasted] = pasteMasks(ones, m, Float32Array.from([7, 3, 47, 33]), [40, 60]);
  assert.deepEqual(pasted, rect(40, 60, 7, 3, 47, 33));
  const half = new Float32Array(m * m);
  for (let y = 0; y < m; y++) for (let x = 0; x < m / 2; x++) half[y * m + x] = 1;
  // A 28-pixel box maps pixel centres onto mask cells; a 56-pixel one onto half cells.
  const [same, double] = pasteMasks(Float32Array.from([...half, ...half]), m, Float32Array.from([0, 0, 28, 28, 2, 4, 58, 60]), [64, 64]);
  assert.deepEqual(same, rect(64, 64, 0, 0, 14, 28));
  assert.deepEqual(double, rect(64, 64, 2, 4, 30, 60));
});

test('pasteMasks: equals a direct grid_sample over the whole image (fractional boxes, low thresholds, edges)', () => {
  const m = 7;
  let s = 12345;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const boxes = [[3.3, 2.7, 40.1, 20.9], [-5, -3, 10.5, 12.25], [30, 15, 49.5, 29.75], [12, 8, 12.8, 30]];
  const masks = new Float32Array(boxes.length * m * m).map(() => rnd());
  const [h, w] = [30, 50];
  for (const thr of [0.5, 0.2, 0.05]) {
    const got = pasteMasks(masks, m, Float32Array.from(boxes.flat()), [h, w], thr);
    boxes.forEach((b, i) => {
      const ref = pasteReference(masks.subarray(i * m * m, (i + 1) * m * m), m, b, h, w, thr);
      let diff = 0;
      for (let p = 0; p < h * w; p++) if (got[i][p] !== ref[p]) diff++;
      assert.equal(diff, 0, `box ${i} thr ${thr}`);
      assert.ok(sum(got[i]) > 0);
    });
  }
  assert.throws(() => pasteMasks(new Float32Array(10), 7, new Float32Array(4), [5, 5]), /expected 1 masks of 7x7/);
  assert.throws(() => pasteMasks(new Float32Array(49), 7, new Float32Array(4), [5, 5], 0), /threshold must be > 0/);
  assert.deepEqual(pasteMasks(new Float32Array(0), 28, new Float32Array(0), [5, 5]), []);
});
