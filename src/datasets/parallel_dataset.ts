/**
 * Sample loading in worker threads (`data.num_workers`, MMSeg/MMDet's `num_workers`).
 *
 * The pipeline's JavaScript (resizes, crops, flips, normalisation, PNG label decoding) otherwise runs
 * on the training thread between kernels: ~10 ms of a 0.1 s shapes UperNet iteration. Here each of W
 * worker threads builds the same dataset from the same config block and loads the samples it is
 * asked for; the training thread keeps the sampler, the order and the collation (the DataLoader is
 * unchanged). A request carries the draw's Rng state, so a sample is the same whichever thread loads
 * it: batches are bit-identical to `num_workers: 0`.
 *
 * Samples come back by structured clone (a copy, ~0.2 MB for a 128² sample: microseconds), not by
 * transfer, since a dataset may keep the arrays it returns (e.g. a cached decoded image).
 */
import { Worker } from 'node:worker_threads';
import type { ConfigAt } from '../config/lookup.ts';
import type { Rng, RngState } from '../nn/random.ts';
import { BadSampleLog, type Dataset } from './dataset.ts';
import type { Sample } from './transforms/types.ts';

/** What a data worker is started with (`workerData`). */
export interface DataWorkerInit {
  /** Module URL of the worker's entry (the boot file imports it after registering TypeScript). */
  entry: string;
  /** The dataset's config block, where it was found, and the overrides given to `buildDataset`. */
  block: unknown;
  at: ConfigAt;
  overrides: Record<string, unknown>;
}

/** Main → worker. */
export interface SampleRequest {
  id: number;
  index: number;
  rng: RngState;
}

/** Worker → main. */
export type DataWorkerReply =
  | { type: 'ready'; length: number }
  /** `bad`: `FILE: cause` when the sample was skipped as bad. */
  | { type: 'sample'; id: number; index: number; sample: Sample | null; bad: string | null }
  | { type: 'error'; id: number; message: string };

interface Waiting {
  resolve: (s: Sample | null) => void;
  reject: (e: Error) => void;
}

/** One data worker thread and its outstanding requests. */
class DataWorker {
  readonly waiting = new Map<number, Waiting>();
  private failure: Error | null = null;
  private ready: Promise<number>;

  /** @param onBad called with a sample's index and `FILE: cause` when the worker skipped it as bad. */
  constructor(readonly worker: Worker, readonly rank: number, onBad: (index: number, what: string) => void) {
    let readyResolve!: (n: number) => void, readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => { readyResolve = res; readyReject = rej; });
    worker.on('message', (r: DataWorkerReply) => {
      if (r.type === 'ready') return readyResolve(r.length);
      const w = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      if (r.type === 'sample' && r.bad !== null) onBad(r.index, r.bad);
      if (!w) return;
      if (r.type === 'sample') w.resolve(r.sample);
      else w.reject(new Error(r.message));
    });
    const fail = (e: Error): void => {
      this.failure ??= e;
      readyReject(this.failure);
      for (const w of this.waiting.values()) w.reject(this.failure);
      this.waiting.clear();
    };
    worker.on('error', (e) => fail(new Error(`data worker ${rank} failed: ${e.message}`)));
    worker.on('exit', (code) => fail(new Error(`data worker ${rank} exited (code ${code})`)));
  }

  /** The length of the worker's dataset once it is built. */
  started(): Promise<number> {
    return this.ready;
  }

  request(id: number, index: number, rng: RngState): Promise<Sample | null> {
    if (this.failure) return Promise.reject(this.failure);
    const p = new Promise<Sample | null>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.worker.postMessage({ id, index, rng } satisfies SampleRequest);
    return p;
  }
}

/**
 * A dataset whose `getSample` runs in worker threads; everything else (length, classes, pairs,
 * aspect groups) is the in-thread dataset's, built from the same block.
 */
export class ParallelDataset implements Dataset {
  private nextId = 0;

  private constructor(readonly local: Dataset, private readonly workers: DataWorker[], private readonly bad: BadSampleLog) {
    // A drop-in for the local dataset: the rest of its surface (SegLabelSource's pairs, CocoDataset's
    // api...) and its class for `instanceof` (the evaluators check for a CocoDataset).
    return new Proxy(this, {
      getPrototypeOf: () => Object.getPrototypeOf(local),
      get: (target, key, receiver) => {
        if (key in target) return Reflect.get(target, key, receiver);
        const v: unknown = Reflect.get(local, key, local);
        return typeof v === 'function' ? v.bind(local) : v;
      },
      has: (target, key) => key in target || key in local,
    });
  }

  /**
   * Starts `numWorkers` threads, each building the dataset from `block` as `buildDataset` would.
   * @param local the dataset built here from the same block (its length must match the workers').
   * @throws when a worker cannot build it (the worker's error, naming the config key), or builds one of
   *   another length (the data changed under the run).
   */
  static async start(local: Dataset, numWorkers: number, init: Omit<DataWorkerInit, 'entry'>): Promise<ParallelDataset> {
    const entry = new URL('./dataset_worker.ts', import.meta.url).href;
    const boot = new URL('../util/worker_boot.mjs', import.meta.url);
    // Bad samples by index across the workers (two workers may both meet the same one).
    const bad = new BadSampleLog();
    const onBad = (index: number, what: string): void => void bad.add(index, what);
    const workers = Array.from({ length: numWorkers }, (_, i) =>
      new DataWorker(new Worker(boot, { workerData: { ...init, entry } satisfies DataWorkerInit }), i + 1, onBad));
    try {
      const lengths = await Promise.all(workers.map((w) => w.started()));
      lengths.forEach((n, i) => {
        if (n !== local.length) throw new Error(`data worker ${i + 1} built a dataset of ${n} samples, this thread ${local.length} (${init.at.file ?? ''} ${init.at.path})`);
      });
    } catch (e) {
      await Promise.all(workers.map((w) => w.worker.terminate()));
      throw e;
    }
    return new ParallelDataset(local, workers, bad);
  }

  get length(): number {
    return this.local.length;
  }

  /** Bad samples the workers skipped (each worker warns once per sample it skips), by index. */
  get badSamples(): number {
    return this.bad.count;
  }

  get firstBadSample(): string | null {
    return this.bad.first;
  }

  badSampleOf(index: number): string | null {
    return this.bad.of(index);
  }

  get numWorkers(): number {
    return this.workers.length;
  }

  /** Loads sample `index` with `rng`'s current state on the least busy worker (`rng` is not advanced). */
  getSample(index: number, rng: Rng): Promise<Sample | null> {
    let best = this.workers[0];
    for (const w of this.workers) if (w.waiting.size < best.waiting.size) best = w;
    return best.request(this.nextId++, index, rng.getState());
  }

  /**
   * Stops the workers (requests in flight fail). The workers keep the process alive until then:
   * unref'ing idle ones let the event loop drain under a pending `await` (seen in the tests).
   */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
