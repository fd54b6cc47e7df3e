/**
 * Data-parallel training across processes (PyTorch DDP over MPI): every rank holds the whole model,
 * trains on its shard of every step's global batch, and the gradients are summed across ranks in
 * flattened buckets and divided by the number of ranks (each rank's loss is a mean over its equal
 * share of the global batch, or, for a detector, its sums over the global count divided by the rank
 * count: shareLossCounts; so this is the global batch's mean gradient). Rank 0 writes.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../datasets/collate.ts';
import type { BatchGradients, GradientSource } from '../engine/gradients.ts';
import type { ProcessGroup } from '../engine/process_group.ts';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors.ts';
import type { Module } from '../nn/module.ts';
import { BatchNorm2d } from '../nn/norm.ts';
import { usesBatchCounts, type CountReducer } from '../ops/batch_counts.ts';

/** The collectives data parallelism needs (an {@link Mpi} is one). */
export interface Collectives extends ProcessGroup {
  allReduceSum<T extends Float32Array | Float64Array>(values: T): Promise<T>;
  broadcast<T extends ArrayBufferView>(view: T, root?: number): Promise<T>;
  /** Blocking all-reduce (sum), for statistics inside a synchronous forward/backward (SyncBN). */
  allReduceSumSync(values: Float64Array): void;
}

/** Float32 elements per all-reduce bucket (DDP's 25 MB). */
export const BUCKET_ELEMENTS = 25 * 2 ** 20 / 4;

/**
 * Gradients of this rank's batch, averaged with every other rank's: the local gradients are
 * flattened in name order into buckets of {@link BUCKET_ELEMENTS}, all-reduced, divided by the
 * rank count and cut back into tensors; the loss outputs are averaged the same way (what rank 0 logs).
 */
export class AllReducedGradients implements GradientSource {
  constructor(private readonly local: GradientSource, private readonly comm: Collectives, private readonly bucketElements = BUCKET_ELEMENTS) {}

  get workerTensors(): number | undefined {
    return this.local.workerTensors;
  }

  async compute(batch: Batch): Promise<BatchGradients> {
    const r = await this.local.compute(batch);
    const size = this.comm.size;
    const names = Object.keys(r.grads).sort();
    const out: Record<string, tf.Tensor> = {};
    for (let start = 0; start < names.length;) {
      // One bucket: whole tensors until the bucket is full (a tensor larger than a bucket is one bucket).
      let end = start;
      let n = 0;
      while (end < names.length && (end === start || n + r.grads[names[end]].size <= this.bucketElements)) n += r.grads[names[end++]].size;
      const flat = new Float32Array(n);
      let o = 0;
      for (const name of names.slice(start, end)) {
        flat.set(r.grads[name].dataSync() as Float32Array, o);
        o += r.grads[name].size;
      }
      await this.comm.allReduceSum(flat);
      o = 0;
      for (const name of names.slice(start, end)) {
        const g = r.grads[name];
        const v = flat.subarray(o, o + g.size);
        for (let i = 0; i < v.length; i++) v[i] /= size;
        out[name] = tf.tensor(v, g.shape, 'float32');
        o += g.size;
        g.dispose();
      }
      start = end;
    }
    const keys = Object.keys(r.parts); // the model's output order, the same on every rank
    const scalars = Float64Array.from([r.total, ...keys.map((k) => r.parts[k])]);
    await this.comm.allReduceSum(scalars);
    const parts = Object.fromEntries(keys.map((k, i) => [k, scalars[i + 1] / size]));
    return { grads: out, parts, total: scalars[0] / size };
  }
}

/** Every rank gets rank 0's weights and buffers (the state dict, sent as safetensors bytes). */
export async function broadcastState(model: Module, comm: Collectives): Promise<void> {
  const bytes = comm.rank === 0 ? serializeSafetensors(model.stateDict()) : null;
  const len = await comm.broadcast(Float64Array.of(bytes?.length ?? 0), 0);
  const buf = bytes ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length) : new Uint8Array(len[0]);
  await comm.broadcast(buf, 0);
  if (comm.rank !== 0) model.loadStateDict(parseSafetensors(Buffer.from(buf.buffer, buf.byteOffset, buf.length), 'rank 0 weights').tensors);
}

/**
 * SyncBN across ranks: with `all` (`train.sync_bn: true`, PyTorch's `convert_sync_batchnorm`) every
 * BatchNorm of `model`, the backbone stem's included, else those the config declared `SyncBN`,
 * compute their training statistics over all ranks' batches. Returns how many were converted.
 */
export function convertSyncBatchNorm(model: Module, comm: Collectives, all = true): number {
  const reducer = blockingSum(comm);
  let n = 0;
  const visit = (m: Module): void => {
    if (m instanceof BatchNorm2d && (all || m.syncRequested)) {
      m.sync = reducer;
      n++;
    }
    for (const [, c] of m.namedChildren()) visit(c);
  };
  visit(model);
  return n;
}

/**
 * Loss normalisers over the global batch (MMDetection's `reduce_mean` of avg factors): a model whose
 * losses divide by batch counts (sampled anchors and RoIs, mask positives) gets them summed over the
 * ranks, so that the averaged gradient is the global batch's however the counts split. Returns
 * whether the model has such losses.
 */
export function shareLossCounts(model: Module, comm: Collectives): boolean {
  if (!usesBatchCounts(model)) return false;
  model.countReducer = blockingSum(comm);
  return true;
}

/** The blocking in-place sum over the ranks that SyncBN statistics and loss counts take. */
function blockingSum(comm: Collectives): CountReducer {
  return { size: comm.size, sumSync: (buf) => comm.allReduceSumSync(buf) };
}
