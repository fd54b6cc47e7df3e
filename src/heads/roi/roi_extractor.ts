/**
 * MMDetection 2.x `SingleRoIExtractor`: each roi is pooled (RoIAlign) from one FPN level chosen by
 * its size, and the pooled features come back in the rois' order.
 *
 * Level of a roi (`map_roi_levels`): `scale = sqrt(w * h)`,
 * `level = floor(log2(scale / finestScale + 1e-6))` clamped to `[0, numLevels - 1]`; with the default
 * finestScale 56 that is level 0 below 112 px, 1 below 224, 2 below 448, else 3. Computed in float32,
 * as PyTorch does.
 */
import type * as tf from '@tensorflow/tfjs';
import { roiAlignLevels } from '../../ops/roi_align.ts';

/** Options of {@link SingleRoIExtractor} (MMDet `roi_layer=RoIAlign(...)`, `featmap_strides`, `finest_scale`). */
export interface SingleRoIExtractorOptions {
  /** Output bins, `7` or `[oh, ow]`. */
  outputSize: number | [number, number];
  /** RoIAlign samples per bin per axis; 0 = adaptive (MMDet's default). */
  samplingRatio?: number;
  /** RoIAlign `aligned` (default true, as MMDet's configs). */
  aligned?: boolean;
  /** Stride of each level the extractor reads, finest first (e.g. `[4, 8, 16, 32]`). */
  featmapStrides: number[];
  /** Scale (px) of level 0's upper half-octave boundary / 2 (default 56). */
  finestScale?: number;
}

const f32 = Math.fround;

export class SingleRoIExtractor {
  readonly outputSize: [number, number];
  readonly samplingRatio: number;
  readonly aligned: boolean;
  readonly featmapStrides: number[];
  readonly finestScale: number;

  constructor(opts: SingleRoIExtractorOptions) {
    const o = opts.outputSize;
    this.outputSize = typeof o === 'number' ? [o, o] : [o[0], o[1]];
    this.samplingRatio = opts.samplingRatio ?? 0;
    this.aligned = opts.aligned ?? true;
    this.featmapStrides = [...opts.featmapStrides];
    this.finestScale = opts.finestScale ?? 56;
    if (this.featmapStrides.length === 0 || this.featmapStrides.some((s) => !(s > 0))) {
      throw new Error(`SingleRoIExtractor: expected positive featmapStrides, got [${opts.featmapStrides}]`);
    }
  }

  /** Number of feature levels read (the first `featmapStrides.length` of `forward`'s feats). */
  get numInputs(): number {
    return this.featmapStrides.length;
  }

  /**
   * Level of each roi.
   * @param rois `[R*5]` rows `(batchIdx, x1, y1, x2, y2)`.
   * @returns `[R]` levels in `[0, numLevels - 1]`.
   */
  mapRoiLevels(rois: Float32Array, numLevels: number): Int32Array {
    if (rois.length % 5 !== 0) throw new Error(`mapRoiLevels: expected rois [R*5], got length ${rois.length}`);
    const n = rois.length / 5;
    const levels = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const o = r * 5;
      const scale = f32(Math.sqrt(f32(f32(rois[o + 3] - rois[o + 1]) * f32(rois[o + 4] - rois[o + 2]))));
      const lvl = Math.floor(f32(Math.log2(f32(f32(scale / this.finestScale) + 1e-6))));
      // A degenerate roi (negative area, NaN scale) goes to the finest level.
      levels[r] = Number.isNaN(lvl) ? 0 : Math.min(Math.max(lvl, 0), numLevels - 1);
    }
    return levels;
  }

  /**
   * Pools every roi from its level.
   * @param feats per level `[N, H_l, W_l, C]` NHWC, finest first; only the first `featmapStrides.length` are read.
   * @param rois `[R*5]` rows `(batchIdx, x1, y1, x2, y2)` in input pixels.
   * @returns `[R, oh, ow, C]` in the rois' order (differentiable w.r.t. the feats).
   */
  forward(feats: tf.Tensor4D[], rois: Float32Array): tf.Tensor4D {
    const numLevels = this.featmapStrides.length;
    if (feats.length < numLevels) {
      throw new Error(`SingleRoIExtractor: expected at least ${numLevels} feature levels (strides [${this.featmapStrides}]), got ${feats.length}`);
    }
    const levels = numLevels === 1 ? new Int32Array(rois.length / 5) : this.mapRoiLevels(rois, numLevels);
    return roiAlignLevels(feats.slice(0, numLevels), rois, levels, {
      outputSize: this.outputSize,
      spatialScales: this.featmapStrides.map((s) => 1 / s),
      samplingRatio: this.samplingRatio,
      aligned: this.aligned,
    });
  }
}
