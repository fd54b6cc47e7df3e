/**
 * The contract between datasets and the loader: a dataset is an indexable list of samples whose
 * loading is async (image decoding runs in libuv threads) and may fail for one bad sample.
 */
import type { Rng } from '../nn/random.ts';
import type { Sample } from './transforms/types.ts';

/** What a dataset does with a sample it cannot load (missing/corrupt image, bad annotation). */
export type BadSamplePolicy = 'skip' | 'error';

export interface Dataset {
  /** Number of samples (after filtering). */
  readonly length: number;
  /**
   * Loads sample `index` and runs the pipeline with `rng`. Resolves to null when the sample is bad
   * and the policy is `skip` (the dataset warns once per sample and counts it), or when the pipeline
   * drops it (e.g. a crop left no instance).
   */
  getSample(index: number, rng: Rng): Promise<Sample | null>;
  /** Aspect-ratio group of a sample (0: width >= height, 1: taller), for batching similar shapes. */
  aspectGroup?(index: number): 0 | 1;
  /** Samples skipped as bad so far. */
  readonly badSamples: number;
  /** `FILE: cause` of the first sample skipped as bad (null: none yet). */
  readonly firstBadSample?: string | null;
  /** `FILE: cause` when sample `index` was skipped as bad, else null. */
  badSampleOf?(index: number): string | null;
  /** The files sample `index` is read from (image, label map), for up-front checks. */
  sourceFiles?(index: number): string[];
  /** Class name per label, when the dataset knows them. */
  readonly classes?: readonly string[];
  /** RGB colour per label, when the dataset has them. */
  readonly palette?: readonly [number, number, number][];
  /** Releases what the dataset holds beyond memory (worker threads). */
  close?(): Promise<void>;
}

/** One image/label pair of a segmentation dataset. `segPath` is null when the label file is missing. */
export interface SegPair {
  stem: string;
  imgPath: string;
  segPath: string | null;
}

/** A dataset whose samples' label maps are files on disk (the seg datasets), for evaluation at original size. */
export interface SegLabelSource extends Dataset {
  /** Per sample, in index order. */
  readonly pairs: readonly SegPair[];
  /** Whether the label files still need reduce_zero_label (0 → 255, k → k - 1). */
  readonly reduceZeroLabel: boolean;
}

export function isSegLabelSource(ds: Dataset): ds is SegLabelSource {
  const d: Partial<SegLabelSource> = ds;
  return Array.isArray(d.pairs) && typeof d.reduceZeroLabel === 'boolean';
}

/** The bad samples a dataset skipped: `FILE: cause` by index, each recorded once, in the order found. */
export class BadSampleLog {
  private readonly byIndex = new Map<number, string>();

  /** Records sample `index` as bad; true when it was not recorded yet (the caller warns once). */
  add(index: number, what: string): boolean {
    if (this.byIndex.has(index)) return false;
    this.byIndex.set(index, what);
    return true;
  }

  get count(): number {
    return this.byIndex.size;
  }

  /** `FILE: cause` of the first one found (null: none). */
  get first(): string | null {
    return this.byIndex.values().next().value ?? null;
  }

  of(index: number): string | null {
    return this.byIndex.get(index) ?? null;
  }
}

/**
 * `skipped N of M samples (first: FILE: cause)` for a dataset of M samples that skipped N as bad,
 * or null when none was skipped.
 */
export function skipSummary(ds: Dataset): string | null {
  if (ds.badSamples === 0) return null;
  return `skipped ${ds.badSamples} of ${ds.length} samples${ds.firstBadSample ? ` (first: ${ds.firstBadSample})` : ''}`;
}
