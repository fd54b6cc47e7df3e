/**
 * RoIAlign on NHWC feature maps with torchvision's CPU `roi_align` semantics, differentiable w.r.t.
 * the features on every backend.
 *
 * Per roi `(b, x1, y1, x2, y2)` (input pixels): start = `x1 * spatialScale - offset` (offset 0.5 when
 * `aligned`, else 0), size = end - start (at least 1 when not aligned), bin = size / out; each bin
 * averages a `gh x gw` grid of bilinear samples at `start + p*bin + (i + 0.5) * bin / g`, where
 * `g = samplingRatio` or, when it is 0, `ceil(size / out)` (adaptive). A sample with `y < -1 || y > H`
 * (or the same in x) is 0; otherwise it is clamped to `[0, H-1]` and interpolated. Per-roi
 * geometry is rounded to float32 at the same steps as torchvision's kernel, so the sample positions
 * (and the adaptive grid sizes) agree with PyTorch's exactly.
 *
 * tfjs has no gradient for cropAndResize, and the wasm backend lacks UnsortedSegmentSum (the gradient
 * of gather), so this op is a `tf.customGrad` over JS loops: the forward reads the features, the
 * gradient scatters dy back with the same bilinear weights (torchvision's roi_align backward); rois
 * get no gradient. Because the bilinear weight of a sample is `wy(y) * wx(x)` and the samples of a
 * bin form a grid, each bin is precomputed once per roi as a short list of rows and columns with
 * summed weights (`AxisPlan`), so the per-channel loop touches each feature pixel of a bin once.
 * NHWC keeps that innermost loop over C contiguous.
 */
import * as tf from '@tensorflow/tfjs';

/** Options of {@link roiAlign}. */
export interface RoIAlignOptions {
  /** Output bins `[oh, ow]`. */
  outputSize: [number, number];
  /** Feature px per input px (1 / stride). */
  spatialScale: number;
  /** Samples per bin along each axis; 0 = adaptive `ceil(roiSize / outputSize)`. */
  samplingRatio: number;
  /** Pixel-centre model: shift coordinates by -0.5 (torchvision `aligned=True`, MMDet's default). */
  aligned: boolean;
}

/** Options of {@link roiAlignLevels}: one spatial scale per feature level. */
export interface MultiLevelRoIAlignOptions {
  outputSize: [number, number];
  spatialScales: number[];
  samplingRatio: number;
  aligned: boolean;
}

/**
 * One axis of one roi: for each output bin `p`, entries `offsets[p] .. offsets[p+1]` of `index`
 * (feature row or column) and `weight` (the bin's summed bilinear weights of that row/column).
 */
interface AxisPlan {
  offsets: Int32Array;
  index: Int32Array;
  weight: Float64Array;
}

interface RoIPlan {
  level: number;
  batch: number;
  ys: AxisPlan;
  xs: AxisPlan;
  /** 1 / (samples per bin). */
  scale: number;
}

const f32 = Math.fround;

/**
 * The merged bilinear taps of `out` bins along an axis of `size` pixels, `grid` samples per bin,
 * with torchvision's float32 arithmetic and boundary rules.
 */
function axisPlan(start: number, bin: number, grid: number, out: number, size: number): AxisPlan {
  const offsets = new Int32Array(out + 1);
  const index = new Int32Array(out * (grid + 1) * 2);
  const weight = new Float64Array(out * (grid + 1) * 2);
  let n = 0;
  for (let p = 0; p < out; p++) {
    offsets[p] = n;
    const base = f32(start + f32(p * bin));
    for (let i = 0; i < grid; i++) {
      let v = f32(base + f32(f32((i + 0.5) * bin) / grid));
      if (v < -1 || v > size) continue;
      if (v <= 0) v = 0;
      let lo = Math.trunc(v);
      let hi: number;
      if (lo >= size - 1) {
        hi = lo = size - 1;
        v = lo;
      } else {
        hi = lo + 1;
      }
      const l = f32(v - lo);
      const h = f32(1 - l);
      n = addTap(index, weight, offsets[p], n, lo, h);
      n = addTap(index, weight, offsets[p], n, hi, l);
    }
  }
  offsets[out] = n;
  return { offsets, index, weight };
}

/** Adds weight `w` to tap `idx` among entries `from .. n` (new entry if absent); returns the new n. */
function addTap(index: Int32Array, weight: Float64Array, from: number, n: number, idx: number, w: number): number {
  for (let k = from; k < n; k++) {
    if (index[k] === idx) {
      weight[k] += w;
      return n;
    }
  }
  index[n] = idx;
  weight[n] = w;
  return n + 1;
}

/** Sample plan of roi `r` of `rois` `[R*5]` on a feature map of `[h, w]` at `scale`. */
function roiPlan(rois: Float32Array, r: number, level: number, scale: number, h: number, w: number,
  opts: { outputSize: [number, number]; samplingRatio: number; aligned: boolean }): RoIPlan {
  const [oh, ow] = opts.outputSize;
  const offset = opts.aligned ? 0.5 : 0;
  const o = r * 5;
  const startX = f32(rois[o + 1] * scale - offset);
  const startY = f32(rois[o + 2] * scale - offset);
  let roiW = f32(f32(rois[o + 3] * scale - offset) - startX);
  let roiH = f32(f32(rois[o + 4] * scale - offset) - startY);
  if (!opts.aligned) {
    roiW = Math.max(roiW, 1);
    roiH = Math.max(roiH, 1);
  }
  const binH = f32(roiH / oh);
  const binW = f32(roiW / ow);
  const gh = opts.samplingRatio > 0 ? opts.samplingRatio : Math.ceil(binH);
  const gw = opts.samplingRatio > 0 ? opts.samplingRatio : Math.ceil(binW);
  return {
    level,
    batch: Math.trunc(rois[o]),
    ys: axisPlan(startY, binH, gh, oh, h),
    xs: axisPlan(startX, binW, gw, ow, w),
    scale: 1 / Math.max(gh * gw, 1),
  };
}

/** `dst[d + i] += w * src[s + i]` for i < n (unrolled by 4: this loop is the op's cost). */
function axpy(src: Float32Array, s: number, dst: Float32Array, d: number, w: number, n: number): void {
  const n4 = n - (n % 4);
  let i = 0;
  for (; i < n4; i += 4) {
    dst[d + i] += w * src[s + i];
    dst[d + i + 1] += w * src[s + i + 1];
    dst[d + i + 2] += w * src[s + i + 2];
    dst[d + i + 3] += w * src[s + i + 3];
  }
  for (; i < n; i++) dst[d + i] += w * src[s + i];
}

/**
 * Pools (`backward` false: `out += w * feat`) or scatters back (`backward` true: `feat += w * out`)
 * one roi: `out` from `outOffset` is the roi's `[oh, ow, C]` block, `feat` the level's `[N, H, W, C]` data.
 */
function applyPlan(p: RoIPlan, ow: number, h: number, w: number, c: number,
  feat: Float32Array, out: Float32Array, outOffset: number, backward: boolean): void {
  const { ys, xs } = p;
  const oh = ys.offsets.length - 1;
  for (let ph = 0; ph < oh; ph++) {
    for (let ky = ys.offsets[ph]; ky < ys.offsets[ph + 1]; ky++) {
      const rowBase = (p.batch * h + ys.index[ky]) * w;
      const wy = ys.weight[ky] * p.scale;
      for (let pw = 0; pw < ow; pw++) {
        const o = outOffset + (ph * ow + pw) * c;
        for (let kx = xs.offsets[pw]; kx < xs.offsets[pw + 1]; kx++) {
          const f = (rowBase + xs.index[kx]) * c;
          const wt = wy * xs.weight[kx];
          if (backward) axpy(out, o, feat, f, wt, c);
          else axpy(feat, f, out, o, wt, c);
        }
      }
    }
  }
}

/**
 * RoIAlign of `rois` over several feature levels in one differentiable op: roi `r` is pooled from
 * `features[levels[r]]` at `spatialScales[levels[r]]`; the output keeps the rois' order.
 * @param features per level `[N, H_l, W_l, C]` NHWC (same N and C).
 * @param rois `[R*5]` rows `(batchIdx, x1, y1, x2, y2)` in input pixels.
 * @param levels `[R]` level of each roi.
 * @returns `[R, oh, ow, C]`; gradients flow to every feature level (zeros where no roi reads), none to rois.
 */
export function roiAlignLevels(features: tf.Tensor4D[], rois: Float32Array, levels: Int32Array, opts: MultiLevelRoIAlignOptions): tf.Tensor4D {
  const [oh, ow] = opts.outputSize;
  const nRois = levels.length;
  tf.util.assert(features.length > 0 && features.length === opts.spatialScales.length,
    () => `roiAlign: expected one spatial scale per feature level, got ${opts.spatialScales.length} for ${features.length} levels`);
  tf.util.assert(rois.length === nRois * 5, () => `roiAlign: expected rois [${nRois}*5] (one row per entry of levels), got length ${rois.length}`);
  tf.util.assert(Number.isInteger(oh) && Number.isInteger(ow) && oh > 0 && ow > 0,
    () => `roiAlign: expected a positive integer outputSize, got [${opts.outputSize}]`);
  tf.util.assert(Number.isInteger(opts.samplingRatio) && opts.samplingRatio >= 0,
    () => `roiAlign: expected an integer samplingRatio >= 0, got ${opts.samplingRatio}`);
  const [n, , , c] = features[0].shape;
  for (const [i, f] of features.entries()) {
    tf.util.assert(f.rank === 4 && f.shape[0] === n && f.shape[3] === c && f.dtype === 'float32',
      () => `roiAlign: expected level ${i} features float32 [${n}, H, W, ${c}] (NHWC), got ${f.dtype} [${f.shape}]`);
  }
  const plans: RoIPlan[] = [];
  for (let r = 0; r < nRois; r++) {
    const l = levels[r];
    tf.util.assert(l >= 0 && l < features.length, () => `roiAlign: roi ${r}: expected a level in [0, ${features.length}), got ${l}`);
    const b = Math.trunc(rois[r * 5]);
    tf.util.assert(b >= 0 && b < n, () => `roiAlign: roi ${r}: expected a batch index in [0, ${n}), got ${rois[r * 5]}`);
    const [, h, w] = features[l].shape;
    plans.push(roiPlan(rois, r, l, opts.spatialScales[l], h, w, opts));
  }
  const roiSize = oh * ow * c;

  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const feats = args.slice(0, features.length) as tf.Tensor4D[];
    const data = feats.map((f) => f.dataSync() as Float32Array);
    const out = new Float32Array(nRois * roiSize);
    plans.forEach((p, r) => {
      const [, h, w] = feats[p.level].shape;
      applyPlan(p, ow, h, w, c, data[p.level], out, r * roiSize, false);
    });
    const value = tf.tensor4d(out, [nRois, oh, ow, c]);
    const gradFunc = (dy: tf.Tensor4D): tf.Tensor[] => {
      const g = dy.dataSync() as Float32Array;
      const grads = feats.map((f) => new Float32Array(f.size));
      plans.forEach((p, r) => {
        const [, h, w] = feats[p.level].shape;
        applyPlan(p, ow, h, w, c, grads[p.level], g, r * roiSize, true);
      });
      return grads.map((d, i) => tf.tensor4d(d, feats[i].shape));
    };
    return { value, gradFunc };
  });
  return op(...features);
}

/**
 * RoIAlign of one single-channel `[h, w]` map over `boxes`, as plain arrays with no gradient: what
 * {@link roiAlign} gives for a `[1, h, w, 1]` feature (mask targets crop and resize GT bitmaps so).
 * @param map `[h * w]` row-major values; @param boxes `[R * 4]` `x1, y1, x2, y2` in map pixels
 * (times `opts.spatialScale`).
 * @returns `[R * oh * ow]` pooled values, roi after roi.
 */
export function roiAlignMap(map: Float32Array, h: number, w: number, boxes: Float32Array, opts: RoIAlignOptions): Float32Array {
  const r = boxes.length / 4;
  const [oh, ow] = opts.outputSize;
  const rois = new Float32Array(r * 5);
  for (let i = 0; i < r; i++) rois.set(boxes.subarray(i * 4, i * 4 + 4), i * 5 + 1);
  const out = new Float32Array(r * oh * ow);
  for (let i = 0; i < r; i++) applyPlan(roiPlan(rois, i, 0, opts.spatialScale, h, w, opts), ow, h, w, 1, map, out, i * oh * ow, false);
  return out;
}

/**
 * torchvision `roi_align` on NHWC features.
 * @param features `[N, H, W, C]` NHWC.
 * @param rois `[R, 5]` rows `(batchIdx, x1, y1, x2, y2)` in input pixels.
 * @returns `[R, oh, ow, C]`, differentiable w.r.t. `features` (cpu and wasm); no gradient to `rois`.
 */
export function roiAlign(features: tf.Tensor4D, rois: tf.Tensor2D, opts: RoIAlignOptions): tf.Tensor4D {
  tf.util.assert(rois.rank === 2 && rois.shape[1] === 5, () => `roiAlign: expected rois [R, 5], got [${rois.shape}]`);
  tf.util.assert(features.rank === 4, () => `roiAlign: expected features [N, H, W, C], got [${features.shape}]`);
  const data = rois.dataSync() as Float32Array;
  const roiData = data instanceof Float32Array ? data : Float32Array.from(data);
  return roiAlignLevels([features], roiData, new Int32Array(rois.shape[0]), { ...opts, spatialScales: [opts.spatialScale] });
}
