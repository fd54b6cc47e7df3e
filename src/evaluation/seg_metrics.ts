/**
 * Semantic-segmentation metrics (aAcc, per-class IoU/Acc, mIoU, mAcc) with MMSegmentation's exact
 * semantics: `IoUMetric.intersect_and_union` + `total_area_to_metrics`, plus the label preprocessing
 * that MMSeg's `LoadAnnotations` applies to ground truth (`label_map`, then `reduce_zero_label`).
 *
 * Works on plain arrays (typed or not) of class indices, so it runs anywhere; a tfjs caller converts
 * its prediction with `dataSync()` first. No tfjs import here on purpose.
 *
 * Per-pixel semantics (in this order, all on the ground truth only; predictions are never remapped):
 *  1. `labelMap`: every pixel whose ORIGINAL value is a key becomes the mapped value. Lookups use the
 *     original value, so `{1: 2, 2: 3}` maps 1→2 and 2→3 (not 1→3) — MMSeg 1.x's copy-based fix
 *     (PR #1445) of the old in-place chaining.
 *  2. `reduceZeroLabel`: `l = l === 0 ? 255 : l; l -= 1; if (l === 254) l = 255` — so 0 → 255
 *     (ignored by default), k → k−1, and 255 stays 255. Applied literally (no uint8 wrap-around), so
 *     for 16-bit labels 256 → 255 as well, exactly as MMSeg 0.x does on integer label arrays.
 *  3. Pixels with `label === ignoreIndex` are dropped from everything (pred and label alike).
 *  4. The remaining pred values, label values and the pred values where `pred === label` are each
 *     histogrammed like `torch.histc(x.float(), bins=K, min=0, max=K-1)`:
 *       - a value v counts iff 0 ≤ float32(v) ≤ K−1 (NaN never counts); anything else — a prediction of
 *         255, a negative value, a ground-truth value ≥ K that is not `ignoreIndex` — lands in NO bin.
 *         Such a pixel still counts in the other histograms: a pred of 255 on a class-3 pixel adds to
 *         class 3's label area and union (a miss), and a ground truth of 200 with K=150 adds its pred
 *         to that class's pred area/union (a false positive) but not to any label area (so not to
 *         aAcc's denominator).
 *       - bin = trunc(float32(float32(v·K) / (K−1))), and v = K−1 goes to the last bin. For integer
 *         classes this is the identity whenever K ≤ 4097; from K = 4098 on, PyTorch's float32
 *         arithmetic puts some class indices into the next bin, and this code reproduces that (it
 *         follows the current PyTorch CPU/CUDA histc kernels bit for bit).
 *       - K = 1 is torch's degenerate case min == max == 0: torch then takes each histogram's range
 *         from its own data, so every non-NaN value counts in the single bin.
 *  5. union = pred area + label area − intersection (per class).
 * Areas are counted exactly in float64 (MMSeg 1.x sums per-image float32 histc outputs, which is the
 * same number as long as each count stays below 2^24 — beyond that MMSeg itself rounds).
 *
 * Metrics (`total_area_to_metrics`): aAcc = Σintersect / Σlabel; IoU = intersect / union and
 * Acc = intersect / label per class, NaN where the denominator is 0 (a class absent from both pred
 * and GT has NaN IoU; a class absent from GT has NaN Acc, and IoU 0 if it was predicted); mIoU and
 * mAcc are NaN-skipping means (`np.nanmean`), NaN only if every class is NaN.
 */
import { formatTable } from './table.ts';

/** Options shared by {@link intersectAndUnion} and {@link SegMetricAccumulator}. */
export interface SegMetricOptions {
  /** Ground-truth value excluded from evaluation (after `labelMap` and `reduceZeroLabel`). Default 255. */
  ignoreIndex?: number;
  /** MMSeg's `reduce_zero_label`: GT 0 → ignored (255), k → k−1, 255 stays ignored. Default false. */
  reduceZeroLabel?: boolean;
  /** MMSeg's `label_map` (old GT id → new GT id), applied before `reduceZeroLabel`. */
  labelMap?: Readonly<Record<number, number>>;
}

/** Per-class pixel counts, each of length `numClasses` (MMSeg's four `intersect_and_union` outputs). */
/** A {@link SegMetricAccumulator}'s state as plain data. */
export interface SegAccumulatorState {
  areas: { areaIntersect: number[]; areaUnion: number[]; areaPredLabel: number[]; areaLabel: number[] };
  images: number;
  pixels: number;
  tally: { valid: number; predBinned: number; labelBinned: number };
}

export interface SegAreas {
  areaIntersect: Float64Array;
  areaUnion: Float64Array;
  areaPredLabel: Float64Array;
  areaLabel: Float64Array;
}

/** Final metrics as fractions in 0..1 (NaN where undefined, see the module comment). */
export type SegMetrics = {
  aAcc: number;
  mIoU: number;
  mAcc: number;
  perClass: { IoU: number[]; Acc: number[] };
};

const MAX_CLASSES = 2 ** 24; // float32 represents every integer bin index exactly only up to here

function checkNumClasses(numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 1 || numClasses > MAX_CLASSES) {
    throw new Error(`numClasses must be an integer in 1..${MAX_CLASSES}, got ${numClasses}`);
  }
}

/**
 * The `torch.histc(x.float(), bins=K, min=0, max=K-1)` bin of one value, or −1 when it falls in no bin.
 * (K = 1 is handled by the caller: there torch bins every non-NaN value.)
 */
function histcBinFloat32(v: number, numClasses: number): number {
  const f = Math.fround;
  const e = f(v);
  const hi = f(numClasses - 1);
  if (!(e >= 0 && e <= hi)) return -1; // also rejects NaN
  // torch: pos = (int64)((elt - leftmost) * (num_edges - 1) / (rightmost - leftmost)), in float32.
  const pos = Math.trunc(f(f(e * f(numClasses)) / hi));
  return pos >= numClasses ? numClasses - 1 : pos; // the rightmost bin includes its right edge
}

/** Returns the bin of `v` (−1: none) with MMSeg/torch.histc semantics for `numClasses` bins. */
export function histcBin(v: number, numClasses: number): number {
  checkNumClasses(numClasses);
  if (numClasses === 1) return Number.isNaN(v) ? -1 : 0;
  return histcBinFloat32(v, numClasses);
}

/** Precomputed binning: a table for the integer classes, the float32 formula for anything else. */
function makeBinner(numClasses: number): (v: number) => number {
  if (numClasses === 1) return (v) => (Number.isNaN(v) ? -1 : 0);
  const table = new Int32Array(numClasses);
  for (let c = 0; c < numClasses; c++) table[c] = histcBinFloat32(c, numClasses);
  return (v) => (Number.isInteger(v) && v >= 0 && v < numClasses ? table[v]! : histcBinFloat32(v, numClasses));
}

interface PreparedOptions {
  ignoreIndex: number;
  reduceZeroLabel: boolean;
  labelMap: Map<number, number> | null;
}

function prepareOptions(opts: SegMetricOptions | undefined): PreparedOptions {
  const ignoreIndex = opts?.ignoreIndex ?? 255;
  if (typeof ignoreIndex !== 'number') throw new Error(`ignoreIndex must be a number, got ${String(ignoreIndex)}`);
  let labelMap: Map<number, number> | null = null;
  if (opts?.labelMap) {
    labelMap = new Map();
    for (const [k, v] of Object.entries(opts.labelMap)) {
      const from = Number(k);
      if (!Number.isFinite(from) || typeof v !== 'number' || !Number.isFinite(v)) {
        throw new Error(`labelMap entries must map numbers to numbers, got ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
      }
      labelMap.set(from, v);
    }
    if (labelMap.size === 0) labelMap = null;
  }
  return { ignoreIndex, reduceZeroLabel: opts?.reduceZeroLabel ?? false, labelMap };
}

function checkLengths(pred: ArrayLike<number>, label: ArrayLike<number>): void {
  if (pred.length !== label.length) {
    throw new Error(`prediction has ${pred.length} pixels but the label has ${label.length}; they must be the same size`);
  }
}

interface PixelTally {
  /** Pixels whose GT is not ignoreIndex. */
  valid: number;
  /** Of those, how many had a prediction / a GT value that landed in a class bin. */
  predBinned: number;
  labelBinned: number;
}

/**
 * Adds one image's counts into `out` (which must be zeroed or hold earlier counts); `areaUnion` is
 * NOT updated (derive it once at the end).
 */
function accumulateCounts(
  pred: ArrayLike<number>,
  label: ArrayLike<number>,
  bin: (v: number) => number,
  o: PreparedOptions,
  out: SegAreas,
): PixelTally {
  const { areaIntersect, areaPredLabel, areaLabel } = out;
  const { ignoreIndex, reduceZeroLabel, labelMap } = o;
  let valid = 0;
  let predBinned = 0;
  let labelBinned = 0;
  for (let i = 0; i < label.length; i++) {
    let l = label[i]!;
    if (labelMap !== null) {
      const m = labelMap.get(l);
      if (m !== undefined) l = m;
    }
    if (reduceZeroLabel) {
      if (l === 0) l = 255;
      l -= 1;
      if (l === 254) l = 255;
    }
    if (l === ignoreIndex) continue;
    valid++;
    const bl = bin(l);
    if (bl >= 0) {
      areaLabel[bl]! += 1;
      labelBinned++;
    }
    const p = pred[i]!;
    const bp = bin(p);
    if (bp >= 0) {
      areaPredLabel[bp]! += 1;
      predBinned++;
      if (p === l) areaIntersect[bp]! += 1;
    }
  }
  return { valid, predBinned, labelBinned };
}

function zeroAreas(numClasses: number): SegAreas {
  return {
    areaIntersect: new Float64Array(numClasses),
    areaUnion: new Float64Array(numClasses),
    areaPredLabel: new Float64Array(numClasses),
    areaLabel: new Float64Array(numClasses),
  };
}

function fillUnion(a: SegAreas): void {
  for (let c = 0; c < a.areaUnion.length; c++) a.areaUnion[c] = a.areaPredLabel[c]! + a.areaLabel[c]! - a.areaIntersect[c]!;
}

/**
 * MMSeg's `intersect_and_union` for one image (see the module comment for the exact semantics).
 * `pred` and `label` are flat per-pixel class maps of the same length (any layout, as long as both
 * use the same one).
 * @throws when the lengths differ (naming both) or `numClasses` is not an integer in 1..2^24.
 */
export function intersectAndUnion(
  pred: ArrayLike<number>,
  label: ArrayLike<number>,
  numClasses: number,
  opts?: SegMetricOptions,
): SegAreas {
  checkNumClasses(numClasses);
  checkLengths(pred, label);
  const areas = zeroAreas(numClasses);
  accumulateCounts(pred, label, makeBinner(numClasses), prepareOptions(opts), areas);
  fillUnion(areas);
  return areas;
}

function nanMean(xs: readonly number[]): number {
  let sum = 0;
  let n = 0;
  for (const x of xs) {
    if (!Number.isNaN(x)) {
      sum += x;
      n++;
    }
  }
  return n === 0 ? NaN : sum / n;
}

/** MMSeg's `total_area_to_metrics` for 'mIoU' (IoU + Acc), with the summary means. */
export function areasToMetrics(areas: SegAreas): SegMetrics {
  const { areaIntersect, areaUnion, areaLabel } = areas;
  let totalIntersect = 0;
  let totalLabel = 0;
  const IoU: number[] = [];
  const Acc: number[] = [];
  for (let c = 0; c < areaIntersect.length; c++) {
    totalIntersect += areaIntersect[c]!;
    totalLabel += areaLabel[c]!;
    IoU.push(areaIntersect[c]! / areaUnion[c]!); // 0/0 → NaN, like numpy
    Acc.push(areaIntersect[c]! / areaLabel[c]!);
  }
  return { aAcc: totalIntersect / totalLabel, mIoU: nanMean(IoU), mAcc: nanMean(Acc), perClass: { IoU, Acc } };
}

function pct(x: number): string {
  return Number.isNaN(x) ? 'nan' : (x * 100).toFixed(2);
}

/**
 * A per-class table (Class | IoU | Acc, percent with 2 decimals, `nan` where undefined) in the
 * style MMSeg logs, followed by a summary line `aAcc: .. mIoU: .. mAcc: ..` (percent).
 * `classNames` defaults to the class indices.
 */
export function formatSegMetrics(metrics: SegMetrics, classNames?: readonly string[]): string {
  const k = metrics.perClass.IoU.length;
  if (classNames && classNames.length !== k) {
    throw new Error(`got ${classNames.length} class names for ${k} classes`);
  }
  const names = classNames ?? Array.from({ length: k }, (_, i) => String(i));
  const rows = names.map((name, c) => [name, pct(metrics.perClass.IoU[c]!), pct(metrics.perClass.Acc[c]!)]);
  const out = [formatTable(['Class', 'IoU', 'Acc'], rows)];
  out.push(`aAcc: ${pct(metrics.aAcc)}  mIoU: ${pct(metrics.mIoU)}  mAcc: ${pct(metrics.mAcc)}`);
  return out.join('\n');
}

/**
 * Streaming evaluation, like MMSeg's `IoUMetric.process` + `compute_metrics`: `add` each image's
 * prediction and ground truth, then `compute`. Summing the per-image areas is exactly the same as
 * evaluating one image made of all pixels.
 */
export class SegMetricAccumulator {
  readonly numClasses: number;
  private readonly opts: PreparedOptions;
  private readonly bin: (v: number) => number;
  private areas: SegAreas;
  private images = 0;
  private pixels = 0;
  private tally: PixelTally = { valid: 0, predBinned: 0, labelBinned: 0 };

  constructor(numClasses: number, opts?: SegMetricOptions) {
    checkNumClasses(numClasses);
    this.numClasses = numClasses;
    this.opts = prepareOptions(opts);
    this.bin = makeBinner(numClasses);
    this.areas = zeroAreas(numClasses);
  }

  /**
   * Adds one image.
   * @throws when `pred` and `label` differ in length (naming both sizes); nothing is added then.
   */
  add(pred: ArrayLike<number>, label: ArrayLike<number>): void {
    checkLengths(pred, label);
    const t = accumulateCounts(pred, label, this.bin, this.opts, this.areas);
    this.tally.valid += t.valid;
    this.tally.predBinned += t.predBinned;
    this.tally.labelBinned += t.labelBinned;
    this.pixels += label.length;
    this.images++;
  }

  /**
   * Adds precomputed per-image (or per-worker) areas, e.g. from {@link intersectAndUnion}. They
   * count in {@link compute} but not in {@link numImages} or {@link pixelCounts}.
   */
  addAreas(areas: SegAreas): void {
    const k = this.numClasses;
    for (const key of ['areaIntersect', 'areaPredLabel', 'areaLabel'] as const) {
      if (areas[key].length !== k) throw new Error(`${key} has ${areas[key].length} classes, expected ${k}`);
    }
    for (let c = 0; c < k; c++) {
      this.areas.areaIntersect[c]! += areas.areaIntersect[c]!;
      this.areas.areaPredLabel[c]! += areas.areaPredLabel[c]!;
      this.areas.areaLabel[c]! += areas.areaLabel[c]!;
    }
  }

  /** Everything accumulated, as plain data (sharded evaluation). */
  snapshot(): SegAccumulatorState {
    const a = this.areas;
    return {
      areas: { areaIntersect: [...a.areaIntersect], areaUnion: [...a.areaUnion], areaPredLabel: [...a.areaPredLabel], areaLabel: [...a.areaLabel] },
      images: this.images, pixels: this.pixels, tally: { ...this.tally },
    };
  }

  /** Adds another accumulator's {@link snapshot} (areas are integer pixel counts: the sum is exact). */
  absorb(s: SegAccumulatorState): void {
    this.addAreas({
      areaIntersect: Float64Array.from(s.areas.areaIntersect), areaUnion: Float64Array.from(s.areas.areaUnion),
      areaPredLabel: Float64Array.from(s.areas.areaPredLabel), areaLabel: Float64Array.from(s.areas.areaLabel),
    });
    this.images += s.images;
    this.pixels += s.pixels;
    this.tally.valid += s.tally.valid;
    this.tally.predBinned += s.tally.predBinned;
    this.tally.labelBinned += s.tally.labelBinned;
  }

  /** Number of `add` calls so far. */
  get numImages(): number {
    return this.images;
  }

  /**
   * Pixel bookkeeping over all `add` calls (not `addAreas`): `total` pixels, `ignored` (GT = ignoreIndex after the
   * label transforms), and of the rest how many had a prediction / a GT value in no class bin
   * (e.g. pred 255, or GT ≥ numClasses that is not ignoreIndex — usually a config mistake).
   */
  pixelCounts(): { total: number; ignored: number; predOutOfRange: number; labelOutOfRange: number } {
    const { valid, predBinned, labelBinned } = this.tally;
    return {
      total: this.pixels,
      ignored: this.pixels - valid,
      predOutOfRange: valid - predBinned,
      labelOutOfRange: valid - labelBinned,
    };
  }

  /** A copy of the summed areas (with the union filled in). */
  totals(): SegAreas {
    const a: SegAreas = {
      areaIntersect: this.areas.areaIntersect.slice(),
      areaUnion: new Float64Array(this.numClasses),
      areaPredLabel: this.areas.areaPredLabel.slice(),
      areaLabel: this.areas.areaLabel.slice(),
    };
    fillUnion(a);
    return a;
  }

  /** aAcc, per-class IoU/Acc and their NaN-skipping means over everything added so far. */
  compute(): SegMetrics {
    return areasToMetrics(this.totals());
  }

  /** {@link formatSegMetrics} of {@link compute}. */
  perClassTable(classNames?: readonly string[]): string {
    return formatSegMetrics(this.compute(), classNames);
  }

  /** Forgets everything added. */
  reset(): void {
    this.areas = zeroAreas(this.numClasses);
    this.images = 0;
    this.pixels = 0;
    this.tally = { valid: 0, predBinned: 0, labelBinned: 0 };
  }
}
