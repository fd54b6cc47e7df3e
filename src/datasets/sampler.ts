/**
 * Index samplers (MMEngine `InfiniteSampler` / `DefaultSampler`, MMDet `GroupSampler`). All
 * randomness comes from a seeded {@link Rng}, and every sampler exposes `state()` / `restore()` so
 * that a resumed run draws exactly the indices the interrupted run would have drawn.
 */
import { Rng, type RngState } from '../nn/random.ts';

/** Resumable position of a sampler. */
export interface SamplerState {
  /** Epochs started so far minus one (0 during the first epoch). */
  epoch: number;
  /** Indices already drawn in the current epoch. */
  position: number;
  /** State of the sampler's Rng before the current epoch's permutation was drawn (null: not random). */
  rngState: RngState | null;
}

/** A stream of dataset indices. */
export interface IndexSampler {
  /** Dataset size. */
  readonly size: number;
  /** The next index, or null when the current pass is over (finite samplers only). */
  next(): number | null;
  /** Starts another pass if the current one is over (no-op for endless samplers). */
  newPass(): void;
  state(): SamplerState;
  restore(state: SamplerState): void;
}

function checkSize(n: number, who: string): void {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${who}: dataset size must be a positive integer, got ${n}`);
}

/** Options of {@link InfiniteSampler}. */
export interface InfiniteSamplerOptions {
  /** Draw a fresh seeded permutation each epoch (default true); otherwise 0..n-1 each epoch. */
  shuffle?: boolean;
  seed?: number;
  /** Return null at the end of each epoch until `newPass()` (a finite, shuffled sampler). Default false. */
  stopAtEpochEnd?: boolean;
}

/**
 * Endless epochs of seeded Fisher–Yates permutations of `0..n-1` (for iteration-based training).
 * With `stopAtEpochEnd` it behaves as a finite per-epoch shuffled sampler.
 */
export class InfiniteSampler implements IndexSampler {
  readonly size: number;
  private readonly shuffle: boolean;
  private readonly stopAtEpochEnd: boolean;
  private readonly rng: Rng;
  private epoch = 0;
  private position = 0;
  private epochRngState: RngState;
  private perm: Int32Array;

  constructor(n: number, opts: InfiniteSamplerOptions = {}) {
    checkSize(n, 'InfiniteSampler');
    this.size = n;
    this.shuffle = opts.shuffle ?? true;
    this.stopAtEpochEnd = opts.stopAtEpochEnd ?? false;
    this.rng = new Rng(opts.seed ?? 0);
    this.epochRngState = this.rng.getState();
    this.perm = this.makePerm();
  }

  /** Draws the current epoch's order (consumes `n - 1` Rng draws when shuffling). */
  private makePerm(): Int32Array {
    const p = new Int32Array(this.size);
    for (let i = 0; i < p.length; i++) p[i] = i;
    if (this.shuffle) {
      for (let i = p.length - 1; i > 0; i--) {
        const j = Math.floor(this.rng.uniform() * (i + 1));
        const t = p[i]; p[i] = p[j]; p[j] = t;
      }
    }
    return p;
  }

  private startEpoch(epoch: number): void {
    this.epoch = epoch;
    this.position = 0;
    this.epochRngState = this.rng.getState();
    this.perm = this.makePerm();
  }

  next(): number | null {
    if (this.position >= this.size) {
      if (this.stopAtEpochEnd) return null;
      this.startEpoch(this.epoch + 1);
    }
    return this.perm[this.position++];
  }

  newPass(): void {
    if (this.position >= this.size) this.startEpoch(this.epoch + 1);
  }

  state(): SamplerState {
    return { epoch: this.epoch, position: this.position, rngState: this.shuffle ? [...this.epochRngState] as RngState : null };
  }

  restore(s: SamplerState): void {
    if (s.position < 0 || s.position > this.size) throw new Error(`InfiniteSampler.restore: position ${s.position} outside 0..${this.size}`);
    if (s.rngState) this.rng.setState(s.rngState);
    this.startEpoch(s.epoch);
    this.position = s.position;
  }
}

/** `0..n-1` once per pass, in order (evaluation). */
export class SequentialSampler implements IndexSampler {
  readonly size: number;
  private epoch = 0;
  private position = 0;

  constructor(n: number) {
    checkSize(n, 'SequentialSampler');
    this.size = n;
  }

  next(): number | null {
    return this.position < this.size ? this.position++ : null;
  }

  newPass(): void {
    if (this.position >= this.size) {
      this.epoch++;
      this.position = 0;
    }
  }

  state(): SamplerState {
    return { epoch: this.epoch, position: this.position, rngState: null };
  }

  restore(s: SamplerState): void {
    if (s.position < 0 || s.position > this.size) throw new Error(`SequentialSampler.restore: position ${s.position} outside 0..${this.size}`);
    this.epoch = s.epoch;
    this.position = s.position;
  }
}

/** Resumable state of a {@link GroupedBatchSampler}. */
export interface GroupedBatchSamplerState {
  sampler: SamplerState;
  /** Indices waiting in each group's bucket. */
  buckets: number[][];
}

/**
 * Aspect-ratio grouped batches (MMDet `GroupSampler`, detectron2 `GroupedBatchSampler`): indices
 * from `sampler` are put in the bucket of `groupOf(index)`, and a bucket is emitted as a batch as
 * soon as it holds `batchSize` indices, so every batch holds one group. When a finite sampler's pass
 * ends, the partial buckets are emitted (group order) unless `dropLast`.
 */
export class GroupedBatchSampler {
  private buckets: number[][] = [];
  private flushing = false;

  constructor(
    readonly sampler: IndexSampler,
    private readonly groupOf: (index: number) => number,
    readonly batchSize: number,
    private readonly dropLast = false,
  ) {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`GroupedBatchSampler: batchSize must be a positive integer, got ${batchSize}`);
  }

  /** The next batch of indices (one group), or null when a finite pass is over. */
  nextBatch(): number[] | null {
    if (!this.flushing) {
      for (;;) {
        const i = this.sampler.next();
        if (i === null) break;
        const g = this.groupOf(i);
        if (!Number.isInteger(g) || g < 0) throw new Error(`GroupedBatchSampler: group of index ${i} must be a non-negative integer, got ${g}`);
        const b = (this.buckets[g] ??= []);
        b.push(i);
        if (b.length === this.batchSize) {
          this.buckets[g] = [];
          return b;
        }
      }
      this.flushing = true;
    }
    if (this.dropLast) return null;
    for (let g = 0; g < this.buckets.length; g++) {
      const b = this.buckets[g];
      if (b && b.length > 0) {
        this.buckets[g] = [];
        return b;
      }
    }
    return null;
  }

  /** Starts another pass of a finite sampler (leftover buckets of the last pass are dropped). */
  newPass(): void {
    this.sampler.newPass();
    this.buckets = [];
    this.flushing = false;
  }

  state(): GroupedBatchSamplerState {
    return { sampler: this.sampler.state(), buckets: this.buckets.map((b) => (b ? [...b] : [])) };
  }

  restore(s: GroupedBatchSamplerState): void {
    this.sampler.restore(s.sampler);
    this.buckets = s.buckets.map((b) => [...b]);
    this.flushing = false;
  }
}
