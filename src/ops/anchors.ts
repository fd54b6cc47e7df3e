/**
 * MMDetection 2.x `AnchorGenerator`: base anchors per level and their shifts over feature grids.
 * Values are computed with float32 rounding at each step, as PyTorch does, so they equal MMDet's
 * float32 anchors. Square strides only (a number per level).
 */

export interface AnchorGeneratorOptions {
  /** Stride of each level in input pixels. */
  strides: number[];
  /** Height / width ratios of the anchors (same for all levels). */
  ratios: number[];
  /** Anchor scales (multiples of the base size); exclusive with octaveBaseScale + scalesPerOctave. */
  scales?: number[];
  /** RetinaNet style scales: `octaveBaseScale * 2^(i / scalesPerOctave)`, i < scalesPerOctave. */
  octaveBaseScale?: number;
  scalesPerOctave?: number;
  /** Base size of each level (default: the strides). */
  baseSizes?: number[];
  /** Whether the anchors of one ratio are consecutive over scales (MMDet default true). */
  scaleMajor?: boolean;
  /** Anchor centre as a fraction of the base size, in [0, 1] (MMDet 2.x default 0). */
  centerOffset?: number;
}

const f32 = Math.fround;

export class AnchorGenerator {
  readonly strides: number[];
  readonly baseSizes: number[];
  readonly scales: number[];
  readonly ratios: number[];
  readonly scaleMajor: boolean;
  readonly centerOffset: number;
  /** Anchors per grid cell (ratios x scales), the same on every level. */
  readonly numBaseAnchors: number;
  private readonly base: Float32Array[];

  constructor(opts: AnchorGeneratorOptions) {
    const { strides, ratios } = opts;
    if (strides.length === 0) throw new Error('AnchorGenerator: expected at least one stride');
    if (ratios.length === 0) throw new Error('AnchorGenerator: expected at least one ratio');
    const octave = opts.octaveBaseScale !== undefined && opts.scalesPerOctave !== undefined;
    if (octave === (opts.scales !== undefined)) {
      throw new Error('AnchorGenerator: expected either scales or octaveBaseScale with scalesPerOctave, not both or neither');
    }
    this.scales = opts.scales !== undefined
      ? [...opts.scales]
      : Array.from({ length: opts.scalesPerOctave! }, (_, i) => 2 ** (i / opts.scalesPerOctave!) * opts.octaveBaseScale!);
    this.baseSizes = opts.baseSizes !== undefined ? [...opts.baseSizes] : [...strides];
    if (this.baseSizes.length !== strides.length) {
      throw new Error(`AnchorGenerator: expected ${strides.length} baseSizes (one per stride), got ${this.baseSizes.length}`);
    }
    this.centerOffset = opts.centerOffset ?? 0;
    if (!(this.centerOffset >= 0 && this.centerOffset <= 1)) {
      throw new Error(`AnchorGenerator: expected centerOffset in [0, 1], got ${this.centerOffset}`);
    }
    this.strides = [...strides];
    this.ratios = [...ratios];
    this.scaleMajor = opts.scaleMajor ?? true;
    this.numBaseAnchors = this.ratios.length * this.scales.length;
    this.base = this.baseSizes.map((s) => this.singleLevelBase(s));
  }

  get numLevels(): number {
    return this.strides.length;
  }

  /** Base anchors of `level`, `[A*4]` xyxy around the cell origin (A = ratios x scales). */
  baseAnchors(level: number): Float32Array {
    this.checkLevel(level);
    return this.base[level].slice();
  }

  /**
   * Anchors over feature maps of sizes `featSizes` `[h, w]` per level -> per level `[H*W*A*4]`,
   * ordered (h, w, a): the A anchors of cell (0, 0), then (0, 1), ... as MMDet's `grid_priors`.
   */
  gridAnchors(featSizes: readonly (readonly [number, number])[]): Float32Array[] {
    this.checkSizes(featSizes, 'gridAnchors');
    return featSizes.map(([fh, fw], level) => {
      const base = this.base[level], a = this.numBaseAnchors, stride = this.strides[level];
      const out = new Float32Array(fh * fw * a * 4);
      let o = 0;
      for (let y = 0; y < fh; y++) {
        const sy = y * stride;
        for (let x = 0; x < fw; x++) {
          const sx = x * stride;
          for (let k = 0; k < 4 * a; k += 4) {
            out[o++] = base[k] + sx;
            out[o++] = base[k + 1] + sy;
            out[o++] = base[k + 2] + sx;
            out[o++] = base[k + 3] + sy;
          }
        }
      }
      return out;
    });
  }

  /**
   * 1 for anchors whose cell lies in the valid (unpadded) region `validShape` `[h, w]` of the input:
   * rows below `ceil(h / stride)` and columns below `ceil(w / stride)` (MMDet `valid_flags`).
   * Per level `[H*W*A]`, same order as `gridAnchors`.
   */
  validFlags(featSizes: readonly (readonly [number, number])[], validShape: readonly [number, number]): Uint8Array[] {
    this.checkSizes(featSizes, 'validFlags');
    const [h, w] = validShape;
    return featSizes.map(([fh, fw], level) => {
      const stride = this.strides[level], a = this.numBaseAnchors;
      const vh = Math.min(Math.ceil(h / stride), fh), vw = Math.min(Math.ceil(w / stride), fw);
      const out = new Uint8Array(fh * fw * a);
      for (let y = 0; y < vh; y++) out.fill(1, y * fw * a, (y * fw + vw) * a);
      return out;
    });
  }

  /** MMDet `gen_single_level_base_anchors`, rounding to float32 where PyTorch would. */
  private singleLevelBase(baseSize: number): Float32Array {
    const cx = f32(this.centerOffset * baseSize), cy = cx;
    const out = new Float32Array(this.numBaseAnchors * 4);
    const nr = this.ratios.length, ns = this.scales.length;
    for (let k = 0; k < this.numBaseAnchors; k++) {
      const ri = this.scaleMajor ? Math.floor(k / ns) : k % nr;
      const si = this.scaleMajor ? k % ns : Math.floor(k / nr);
      const hr = f32(Math.sqrt(f32(this.ratios[ri])));
      const wr = f32(1 / hr);
      const scale = f32(this.scales[si]);
      const ws = this.scaleMajor ? f32(f32(baseSize * wr) * scale) : f32(f32(baseSize * scale) * wr);
      const hs = this.scaleMajor ? f32(f32(baseSize * hr) * scale) : f32(f32(baseSize * scale) * hr);
      out[4 * k] = cx - f32(0.5 * ws);
      out[4 * k + 1] = cy - f32(0.5 * hs);
      out[4 * k + 2] = cx + f32(0.5 * ws);
      out[4 * k + 3] = cy + f32(0.5 * hs);
    }
    return out;
  }

  private checkLevel(level: number): void {
    if (!Number.isInteger(level) || level < 0 || level >= this.numLevels) {
      throw new Error(`AnchorGenerator: expected a level in [0, ${this.numLevels}), got ${level}`);
    }
  }

  private checkSizes(featSizes: readonly (readonly [number, number])[], fn: string): void {
    if (featSizes.length !== this.numLevels) {
      throw new Error(`AnchorGenerator.${fn}: expected ${this.numLevels} feature sizes (one per level), got ${featSizes.length}`);
    }
  }
}
