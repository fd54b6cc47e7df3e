/**
 * Data-parallel gradients on CPU cores (PyTorch DDP's idea, on worker threads).
 *
 * The wasm and cpu backends run on one core, so training leaves the others idle. With `workers` W,
 * this thread is rank 0 and W-1 worker threads each hold a replica of the model (built from the same
 * `model:` config). Per batch: the batch is cut into W slices by image; each worker receives the
 * current weights and its slice, this thread computes its own slice meanwhile, and the gradients
 * (and logged outputs) are averaged weighted by slice size. The optimiser step stays on this thread,
 * so checkpoints, evaluation and resume are as in a single-thread run.
 *
 * Differences from one thread on the whole batch, as with DDP: BatchNorm normalises each slice with
 * its own statistics (no SyncBN) and only rank 0's running statistics are kept; each loss is a mean
 * over its slice (a detector's normalisers too: src/dist shares them across MPI ranks, not across
 * these threads). Worker randomness (DropPath, dropout) is seeded per batch from `globalRng`, so a
 * resumed run continues exactly; detection targets are sampled per image (ImgMeta.samplingSeed),
 * as on one thread.
 */
import { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { packBatch, transferablesOf, unpackBatch, type PackedBatch } from '../datasets/batch_transfer.ts';
import type { Batch } from '../datasets/collate.ts';
import { globalRng } from '../nn/random.ts';
import { batchGradients, type BatchGradients, type GradientSource, type TrainableModel } from './gradients.ts';

/** What a worker is started with (`workerData`). */
export interface WorkerInit {
  /** Module URL of the worker's entry (the boot file imports it after registering TypeScript). */
  entry: string;
  rank: number;
  /** tfjs backend name to activate (`wasm` or `cpu`). */
  backend: string;
  /** The experiment's `model:` block and its config file for messages. */
  modelConfig: Record<string, unknown>;
  file?: string;
}

/** Main → worker. */
export interface GradRequest {
  /** Every parameter (trainable or not) in `namedParameters()` order, concatenated. */
  weights: Float32Array;
  batch: PackedBatch;
  seed: number;
}

/** Worker → main. */
export type WorkerReply =
  | { type: 'ready'; params: [string, number][]; trainable: string[] }
  | { type: 'grads'; grads: Float32Array; present: boolean[]; parts: Record<string, number>; total: number; numTensors: number }
  | { type: 'error'; message: string };

/** Sizes of `n` items cut into at most `w` nearly equal non-empty slices, larger ones first. */
export function sliceSizes(n: number, w: number): number[] {
  const k = Math.min(n, w);
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

/** One worker thread and its single outstanding request. */
class Replica {
  private pending: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(readonly worker: Worker, readonly rank: number) {
    worker.on('message', (r: WorkerReply) => this.settle((p) => p.resolve(r)));
    worker.on('error', (e) => this.fail(new Error(`data-parallel worker ${rank} failed: ${e.message}`)));
    worker.on('exit', (code) => this.fail(new Error(`data-parallel worker ${rank} exited (code ${code})`)));
  }

  private settle(f: (p: NonNullable<Replica['pending']>) => void): void {
    const p = this.pending;
    this.pending = null;
    // An idle worker must not keep the process alive.
    this.worker.unref();
    if (p) f(p);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.settle((p) => p.reject(e));
  }

  /** Waits for the next message (the `ready` one after start). */
  next(): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(this.failure);
    this.worker.ref();
    return new Promise((resolve, reject) => (this.pending = { resolve, reject }));
  }

  request(req: GradRequest, transfer: ArrayBuffer[]): Promise<WorkerReply> {
    const reply = this.next();
    if (!this.failure) this.worker.postMessage(req, transfer);
    return reply;
  }
}

function expectReply<T extends WorkerReply['type']>(r: WorkerReply, type: T, rank: number): Extract<WorkerReply, { type: T }> {
  if (r.type === 'error') throw new Error(`data-parallel worker ${rank}: ${r.message}`);
  if (r.type !== type) throw new Error(`data-parallel worker ${rank}: expected a '${type}' reply, got '${r.type}'`);
  return r as Extract<WorkerReply, { type: T }>;
}

export interface DataParallelOptions {
  /** Threads in all, this one included (≥ 2). */
  workers: number;
  /** The experiment's `model:` block: each worker builds its replica from it. */
  modelConfig: Record<string, unknown>;
  /** The config file, for messages. */
  file?: string;
}

export class DataParallel implements GradientSource {
  /** Whether replicas on threads can speed up training on `backend` (the single-core ones). */
  static helpsOn(backend: string): boolean {
    return backend === 'wasm' || backend === 'cpu';
  }

  private constructor(
    private readonly model: TrainableModel,
    private readonly vars: tf.Variable[],
    private readonly replicas: Replica[],
  ) {}

  /**
   * Starts `workers - 1` threads and waits until each has built its replica and matched its
   * parameters (keys, sizes, trainable set) with `model`. `vars` are the optimised variables.
   * @throws on a backend other than wasm/cpu (native TensorFlow already uses every core).
   */
  static async start(model: TrainableModel, vars: tf.Variable[], opts: DataParallelOptions): Promise<DataParallel> {
    const backend = tf.getBackend();
    if (!Number.isInteger(opts.workers) || opts.workers < 2) throw new Error(`DataParallel: workers must be an integer >= 2, got ${opts.workers}`);
    if (!DataParallel.helpsOn(backend)) {
      throw new Error(`train.data_parallel > 1 is for the single-core wasm/cpu backends; the '${backend}' backend already uses every core (set train.data_parallel to 1)`);
    }
    const params: [string, number][] = model.namedParameters().map(([k, p]) => [k, p.variable.size]);
    const byVar = new Map(model.namedParameters().map(([k, p]) => [p.variable, k]));
    const trainable = vars.map((v) => byVar.get(v) ?? v.name);
    const replicas: Replica[] = [];
    for (let rank = 1; rank < opts.workers; rank++) {
      const init: WorkerInit = {
        entry: new URL('./data_parallel_worker.ts', import.meta.url).href,
        rank,
        backend,
        modelConfig: opts.modelConfig,
        file: opts.file,
      };
      replicas.push(new Replica(new Worker(new URL('../util/worker_boot.mjs', import.meta.url), { workerData: init }), rank));
    }
    const dp = new DataParallel(model, vars, replicas);
    try {
      const readies = await Promise.all(replicas.map((r) => r.next()));
      readies.forEach((reply, i) => {
        const r = expectReply(reply, 'ready', i + 1);
        const same = r.params.length === params.length && r.params.every(([k, n], j) => k === params[j][0] && n === params[j][1]) &&
          r.trainable.join('\n') === trainable.join('\n');
        if (!same) throw new Error(`data-parallel worker ${i + 1} built a model whose parameters differ from this one's (model of ${opts.file ?? 'the config'})`);
      });
    } catch (e) {
      await dp.close();
      throw e;
    }
    return dp;
  }

  /** The largest tensor count a worker reported with its last gradients (leak watch; 0 before any). */
  workerTensors = 0;

  /** Threads in all, this one included. */
  get size(): number {
    return this.replicas.length + 1;
  }

  async compute(batch: Batch): Promise<BatchGradients> {
    const n = batch.imgs.shape[0];
    const sizes = sliceSizes(n, this.size);
    if (sizes.length === 1) return batchGradients(this.model, batch, this.vars);
    // Every parameter, so that frozen ones and any loaded weights match too.
    const params = this.model.namedParameters();
    const weights = new Float32Array(params.reduce((s, [, p]) => s + p.variable.size, 0));
    let off = 0;
    for (const [, p] of params) {
      weights.set(p.variable.dataSync() as Float32Array, off);
      off += p.variable.size;
    }
    const replies: Promise<WorkerReply>[] = [];
    let start = sizes[0];
    for (let i = 1; i < sizes.length; i++) {
      const slice = packBatch(batch, start, start + sizes[i]);
      start += sizes[i];
      const w = i === sizes.length - 1 ? weights : weights.slice();
      const req: GradRequest = { weights: w, batch: slice, seed: globalRng.nextUint32() };
      replies.push(this.replicas[i - 1].request(req, [w.buffer as ArrayBuffer, ...transferablesOf(slice)]));
    }
    let local: BatchGradients;
    const own = unpackBatch(packBatch(batch, 0, sizes[0]));
    try {
      local = batchGradients(this.model, own, this.vars);
    } finally {
      own.dispose();
    }
    let got: Extract<WorkerReply, { type: 'grads' }>[];
    try {
      got = (await Promise.all(replies)).map((r, i) => expectReply(r, 'grads', i + 1));
    } catch (e) {
      tf.dispose(local.grads);
      throw e;
    }
    this.workerTensors = Math.max(...got.map((r) => r.numTensors));
    return combine(local, got, sizes.map((s) => s / n), this.vars);
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.worker.terminate()));
  }
}

/** Weighted sum of rank 0's gradients and the workers' flat ones (same variable order as `vars`). */
function combine(local: BatchGradients, remote: Extract<WorkerReply, { type: 'grads' }>[], weight: number[], vars: tf.Variable[]): BatchGradients {
  const grads: Record<string, tf.Tensor> = {};
  tf.tidy(() => {
    let off = 0;
    vars.forEach((v, j) => {
      const terms: tf.Tensor[] = [];
      const own = local.grads[v.name];
      if (own) terms.push(tf.mul(own, weight[0]));
      remote.forEach((r, i) => {
        if (r.present[j]) terms.push(tf.mul(tf.tensor(r.grads.subarray(off, off + v.size), v.shape, 'float32'), weight[i + 1]));
      });
      off += v.size;
      if (terms.length) grads[v.name] = tf.keep(terms.length === 1 ? terms[0] : tf.addN(terms));
    });
  });
  tf.dispose(local.grads);
  const parts: Record<string, number> = {};
  for (const [k, v] of Object.entries(local.parts)) parts[k] = v * weight[0];
  remote.forEach((r, i) => {
    for (const [k, v] of Object.entries(r.parts)) parts[k] = (parts[k] ?? 0) + v * weight[i + 1];
  });
  const total = remote.reduce((s, r, i) => s + r.total * weight[i + 1], local.total * weight[0]);
  return { grads, parts, total };
}
