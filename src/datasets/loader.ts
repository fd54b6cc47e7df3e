/**
 * DataLoader: turns a {@link Dataset} into an async stream of collated {@link Batch}es.
 *
 * - Concurrency: up to `prefetch` `getSample` calls are in flight (sharp decodes in libuv threads,
 *   so decoding overlaps with the pipeline and with the consumer's compute).
 * - Determinism: samples are consumed in sampler order whatever their completion order, and each
 *   draw gets its own Rng derived from `(seed, draw position)`, so same seed -> same batches
 *   independent of timing.
 * - Bad samples: a null sample (bad file, or dropped by the pipeline) is replaced by drawing the
 *   next index and counted in `stats.skipped`; more than `maxSkips` consecutive nulls, or a pass
 *   without any valid sample, fails with an error saying nothing valid is left.
 * - Resume: `state()` (between batches) / `restore()` continue with exactly the same batches.
 * - Sharding (distributed training, PyTorch's `DistributedSampler`): with `shard: {rank, size}`
 *   every process draws the same global stream and loads the draws at positions
 *   `rank, rank + size, ...`, so the ranks' batches of one step together are the batches one
 *   process with `size` times the batch would see (same samples, same per-sample Rngs).
 */
import { Rng } from '../nn/random.ts';
import { collate, type Batch } from './collate.ts';
import type { Dataset } from './dataset.ts';
import { InfiniteSampler, SequentialSampler, type IndexSampler, type SamplerState } from './sampler.ts';
import type { Sample } from './transforms/types.ts';

export type { Batch, ImgMeta } from './collate.ts';

/** Options of {@link DataLoader}. */
export interface DataLoaderOptions {
  batchSize: number;
  /** Seeded permutation each epoch (default false: dataset order). */
  shuffle?: boolean;
  /** Seed of the sampler and of the per-sample Rngs (default 0). */
  seed?: number;
  /** Endless epochs (iteration-based training, default false: one epoch per `for await`). */
  infinite?: boolean;
  /** Every batch holds samples of one `dataset.aspectGroup` (default false). */
  groupByAspect?: boolean;
  /** Samples loading concurrently (default `2 * batchSize`). */
  prefetch?: number;
  /** Consecutive null samples tolerated before failing (default 100). */
  maxSkips?: number;
  /** Drop the last incomplete batch(es) of a finite pass (default false). */
  dropLast?: boolean;
  /** This process's shard of the global draw stream (default: all of it). */
  shard?: { rank: number; size: number };
}

/** Resumable state of a {@link DataLoader}. */
export interface DataLoaderState {
  /** Sampler state after the last consumed draw. */
  sampler: SamplerState;
  /** Position of the next draw (seeds its Rng). */
  nextPos: number;
  /** Consumed samples waiting for their group's batch: `[pos, index]` per bucket. */
  buckets: [number, number][][];
  skipped: number;
}

/** Counters of a {@link DataLoader}. */
export interface DataLoaderStats {
  batches: number;
  samples: number;
  /** Null samples replaced so far. */
  skipped: number;
  /** Milliseconds spent in `collate`. */
  collateMs: number;
  /** Milliseconds the consumer waited for the next sample to finish loading. */
  waitMs: number;
}

type Loaded = { ok: true; sample: Sample | null } | { ok: false; error: unknown };

interface Pending {
  pos: number;
  index: number;
  samplerAfter: SamplerState;
  result: Promise<Loaded>;
}

interface Held {
  pos: number;
  index: number;
  sample: Sample;
}

function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The Rng of draw `pos` of a loader seeded `seed` (distinct per position for a given seed). */
export function sampleRng(seed: number, pos: number): Rng {
  const h = (fmix32((seed >>> 0) ^ 0x5851f42d) + (pos >>> 0)) >>> 0;
  return new Rng(fmix32(h ^ Math.floor(pos / 4294967296)));
}

/**
 * The seed of the random choices a model makes for draw `pos` in training (ImgMeta.samplingSeed):
 * a stream apart from the draw's augmentation ({@link sampleRng}).
 */
export function samplingSeed(seed: number, pos: number): number {
  return sampleRng(seed ^ 0x2545f491, pos).nextUint32();
}

export class DataLoader implements AsyncIterable<Batch> {
  readonly batchSize: number;
  readonly stats: DataLoaderStats = { batches: 0, samples: 0, skipped: 0, collateMs: 0, waitMs: 0 };
  private readonly seed: number;
  private readonly infinite: boolean;
  private readonly groupByAspect: boolean;
  private readonly prefetch: number;
  private readonly maxSkips: number;
  private readonly dropLast: boolean;
  private readonly sampler: IndexSampler;
  private readonly shard: { rank: number; size: number };
  private inflight: Pending[] = [];
  private nextPos = 0;
  private consumedSampler: SamplerState;
  private consumedPos = 0;
  private buckets: Held[][] = [];
  /** Bucket entries of a restored state whose samples must be loaded again. */
  private toReload: [number, number][][] | null = null;
  private exhausted = false;
  private passDone = false;
  private consecutiveNulls = 0;
  private validThisPass = 0;
  private nullsThisPass = 0;

  constructor(readonly dataset: Dataset, opts: DataLoaderOptions) {
    const { batchSize } = opts;
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    this.batchSize = batchSize;
    this.seed = opts.seed ?? 0;
    this.infinite = opts.infinite ?? false;
    this.groupByAspect = opts.groupByAspect ?? false;
    this.prefetch = Math.max(1, Math.floor(opts.prefetch ?? 2 * batchSize));
    this.maxSkips = opts.maxSkips ?? 100;
    this.dropLast = opts.dropLast ?? false;
    this.shard = opts.shard ?? { rank: 0, size: 1 };
    const { rank, size } = this.shard;
    if (!Number.isInteger(size) || size < 1 || !Number.isInteger(rank) || rank < 0 || rank >= size) {
      throw new Error(`DataLoader: shard must be {rank, size} with 0 <= rank < size, got {rank: ${rank}, size: ${size}}`);
    }
    if (this.groupByAspect && !dataset.aspectGroup) throw new Error('DataLoader: groupByAspect needs dataset.aspectGroup()');
    const shuffle = opts.shuffle ?? false;
    const n = dataset.length;
    if (!Number.isInteger(n) || n <= 0) throw new Error(`DataLoader: the dataset is empty (length ${n})`);
    this.sampler = this.infinite || shuffle
      ? new InfiniteSampler(n, { shuffle, seed: this.seed, stopAtEpochEnd: !this.infinite })
      : new SequentialSampler(n);
    this.consumedSampler = this.sampler.state();
  }

  /** Batches of one epoch (or endless with `infinite`); a new `for await` starts the next epoch. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Batch> {
    if (this.passDone) this.newPass();
    for (;;) {
      const b = await this.nextBatch();
      if (b === null) return;
      yield b;
    }
  }

  /** The next batch, or null at the end of a finite pass. The caller disposes the batch. */
  async nextBatch(): Promise<Batch | null> {
    if (this.toReload) await this.reload();
    for (;;) {
      this.fill();
      const head = this.inflight.shift();
      if (!head) return this.flush();
      const t0 = performance.now();
      const r = await head.result;
      this.stats.waitMs += performance.now() - t0;
      this.consumedSampler = head.samplerAfter;
      this.consumedPos = head.pos + 1;
      if (!r.ok) {
        const msg = r.error instanceof Error ? r.error.message : String(r.error);
        throw new Error(`DataLoader: sample ${head.index} failed: ${msg}`, { cause: r.error });
      }
      if (r.sample === null) {
        this.stats.skipped++;
        this.nullsThisPass++;
        if (++this.consecutiveNulls > this.maxSkips) {
          throw new Error(`DataLoader: ${this.consecutiveNulls} consecutive samples were null (bad or dropped by the pipeline; ` +
            `dataset.badSamples = ${this.dataset.badSamples}): no valid sample seems to be left`);
        }
        continue;
      }
      this.consecutiveNulls = 0;
      this.validThisPass++;
      const batch = this.hold({ pos: head.pos, index: head.index, sample: r.sample });
      if (batch) {
        this.fill();
        return this.emit(batch);
      }
    }
  }

  /** Loader state after the last returned batch (call between batches). */
  state(): DataLoaderState {
    const buckets = this.toReload ?? this.buckets.map((b) => b.map((h): [number, number] => [h.pos, h.index]));
    return {
      sampler: { ...this.consumedSampler },
      nextPos: this.consumedPos,
      buckets: buckets.map((b) => b.map(([p, i]): [number, number] => [p, i])),
      skipped: this.stats.skipped,
    };
  }

  /** Continues from `s`: the following batches are those that followed when `s` was taken. */
  restore(s: DataLoaderState): void {
    this.sampler.restore(s.sampler);
    this.consumedSampler = this.sampler.state();
    this.nextPos = this.consumedPos = s.nextPos;
    this.inflight = [];
    this.buckets = [];
    this.toReload = s.buckets.map((b) => b.map(([p, i]): [number, number] => [p, i]));
    this.stats.skipped = s.skipped;
    this.exhausted = false;
    this.passDone = false;
    this.consecutiveNulls = 0;
  }

  private newPass(): void {
    this.sampler.newPass();
    this.consumedSampler = this.sampler.state();
    this.exhausted = false;
    this.passDone = false;
    this.buckets = [];
    this.validThisPass = 0;
    this.nullsThisPass = 0;
    this.consecutiveNulls = 0;
  }

  private load(index: number, pos: number): Promise<Loaded> {
    let p: Promise<Sample | null>;
    try {
      p = this.dataset.getSample(index, sampleRng(this.seed, pos));
    } catch (error) {
      return Promise.resolve({ ok: false, error });
    }
    return p.then((sample) => ({ ok: true, sample }), (error: unknown) => ({ ok: false, error }));
  }

  /** Draws indices until `prefetch` loads are in flight or the pass is over. */
  private fill(): void {
    while (!this.exhausted && this.inflight.length < this.prefetch) {
      const index = this.sampler.next();
      if (index === null) {
        this.exhausted = true;
        break;
      }
      const pos = this.nextPos++;
      if (pos % this.shard.size !== this.shard.rank) continue; // another rank's draw
      this.inflight.push({ pos, index, samplerAfter: this.sampler.state(), result: this.load(index, pos) });
    }
  }

  private async reload(): Promise<void> {
    const entries = this.toReload!;
    const loaded = await Promise.all(entries.map((b) => Promise.all(b.map(([p, i]) => this.load(i, p)))));
    this.buckets = entries.map((b, g) => {
      const out: Held[] = [];
      b.forEach(([pos, index], k) => {
        const r = loaded[g][k];
        if (!r.ok) throw new Error(`DataLoader.restore: sample ${index} failed: ${String((r.error as Error)?.message ?? r.error)}`);
        if (r.sample) out.push({ pos, index, sample: r.sample });
      });
      return out;
    });
    this.toReload = null;
  }

  /** Puts a valid sample in its group's bucket; returns the bucket when it is full. */
  private hold(h: Held): Held[] | null {
    const g = this.groupByAspect ? this.dataset.aspectGroup!(h.index) : 0;
    const b = (this.buckets[g] ??= []);
    b.push(h);
    if (b.length < this.batchSize) return null;
    this.buckets[g] = [];
    return b;
  }

  /** End of a finite pass: the partial buckets (unless dropLast), then null. */
  private flush(): Batch | null {
    if (this.validThisPass === 0 && this.nullsThisPass > 0) {
      throw new Error(`DataLoader: all ${this.nullsThisPass} samples of the pass were null (bad or dropped; ` +
        `dataset.badSamples = ${this.dataset.badSamples}): no valid sample is left`);
    }
    if (!this.dropLast) {
      for (let g = 0; g < this.buckets.length; g++) {
        const b = this.buckets[g];
        if (b && b.length > 0) {
          this.buckets[g] = [];
          return this.emit(b);
        }
      }
    }
    this.buckets = [];
    this.passDone = true;
    return null;
  }

  private emit(held: Held[]): Batch {
    const t0 = performance.now();
    const samples = held.map((h) => h.sample);
    const batch = collate(samples);
    // The model's random choices for an image (target sampling) follow its draw, not its batch.
    held.forEach((h, k) => (batch.metas[k].samplingSeed = samplingSeed(this.seed, h.pos)));
    this.stats.collateMs += performance.now() - t0;
    this.stats.batches++;
    this.stats.samples += samples.length;
    return batch;
  }
}
