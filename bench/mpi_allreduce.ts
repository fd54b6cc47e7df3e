/**
 * All-reduce time of a Conv2Former-T gradient (28M float32, 112 MB) over MPI (`npm run bench:mpi`,
 * 2 ranks on this machine), as one call and in DDP-style 25 MB buckets (issued back to back, as
 * the trainer's buckets are). Rank 0 prints, per variant, the median/min time of an all-reduce of
 * the whole gradient and the bus bandwidth (2·(n-1)/n · bytes / time, as nccl-tests report it).
 *
 *   mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 node --import tsx bench/mpi_allreduce.ts \
 *     [--floats 28000000] [--iters 10] [--bucket-mb 25]
 */
import { loadMpi } from '../src/dist/mpi.ts';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : def;
}

const floats = arg('floats', 28_000_000);
const iters = arg('iters', 10);
const bucketFloats = Math.floor((arg('bucket-mb', 25) * 2 ** 20) / 4);

const mpi = loadMpi();
const grad = new Float32Array(floats).fill(mpi.rank + 1);

/** Milliseconds of one all-reduce of `grad`, in buckets of `bucket` floats (the last shorter). */
async function allReduceMs(bucket: number): Promise<number> {
  await mpi.barrier();
  const t0 = performance.now();
  const pending: Promise<Float32Array>[] = [];
  for (let off = 0; off < floats; off += bucket) pending.push(mpi.allReduceSum(grad.subarray(off, Math.min(floats, off + bucket))));
  await Promise.all(pending);
  return performance.now() - t0;
}

const rows: string[] = [];
for (const [name, bucket] of [['one call', floats], [`${(bucketFloats * 4) / 2 ** 20} MB buckets`, bucketFloats]] as const) {
  await allReduceMs(bucket); // warm-up: connections, page faults of the receive path
  const ms: number[] = [];
  for (let i = 0; i < iters; i++) ms.push(await allReduceMs(bucket));
  ms.sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)];
  const busGBs = (2 * (mpi.size - 1) / mpi.size) * floats * 4 / (median / 1000) / 1e9;
  rows.push(`${name.padEnd(16)} ${Math.ceil(floats / bucket).toString().padStart(5)} calls  median ${median.toFixed(1)} ms  min ${ms[0].toFixed(1)} ms  bus ${busGBs.toFixed(2)} GB/s`);
}

if (mpi.isRoot) {
  console.log(`all-reduce (sum) of ${floats} float32 (${(floats * 4 / 1e6).toFixed(0)} MB) over ${mpi.size} ranks, ${iters} iterations`);
  for (const r of rows) console.log(`  ${r}`);
}
await mpi.finalize();
