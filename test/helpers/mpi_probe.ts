/**
 * One rank of test/mpi.test.ts, run under `mpirun -np 2`. `argv[2]`:
 * - `check` (default): the collectives against values known on every rank (node:assert; a failure
 *   exits non-zero); prints `MPI_PROBE {json}` per rank.
 * - `fail`: rank 1 throws after init while rank 0 waits in an all-reduce.
 * - `abort`: rank 1 calls `abort(3)` while rank 0 waits in a barrier.
 * - `kill`: rank 1 dies of SIGKILL while rank 0 waits in an all-reduce.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { isMpiLaunch, loadMpi } from '../../src/dist/mpi.ts';

const mode = process.argv[2] ?? 'check';
const mpi = loadMpi();
const { rank, size } = mpi;

if (mode === 'fail' || mode === 'abort' || mode === 'kill') {
  if (rank === 1) {
    await sleep(200);
    if (mode === 'abort') {
      console.error(`rank ${rank}: aborting`);
      mpi.abort(3);
    }
    if (mode === 'kill') process.kill(process.pid, 'SIGKILL');
    throw new Error(`rank ${rank}: deliberate failure`);
  }
  if (mode !== 'abort') await mpi.allReduceSum(new Float32Array(16));
  else await mpi.barrier();
  console.log(`rank ${rank}: unexpectedly passed the collective`);
  await mpi.finalize();
  process.exit(0);
}

const t0 = performance.now();
assert.equal(size, 2);
assert.ok(isMpiLaunch());
assert.equal(mpi.localSize, 2, 'one machine: every rank is local');
assert.equal(mpi.localRank, rank);
assert.equal(Number(process.env.OMPI_COMM_WORLD_LOCAL_RANK), mpi.localRank);
assert.ok(mpi.threadLevel >= 2, `thread level ${mpi.threadLevel}`);

// Broadcast: a Buffer from rank 0; a Float32Array view at an offset from rank 1.
const buf = rank === 0 ? Buffer.from('hello from rank 0') : Buffer.alloc(17);
assert.equal(await mpi.broadcast(buf, 0), buf);
assert.equal(buf.toString(), 'hello from rank 0');
const backing = new Float32Array(10).fill(-1);
const view = backing.subarray(3, 7);
if (rank === 1) view.set([1.5, 2.5, 3.5, 4.5]);
await mpi.broadcast(view, 1);
assert.deepEqual(Array.from(backing), [-1, -1, -1, 1.5, 2.5, 3.5, 4.5, -1, -1, -1]);
await assert.rejects(async () => mpi.broadcast(new Uint8Array(1), 2), /root 2 is not a rank/);

// All-reduce, float32 and float64: each rank's values from a formula both ranks know.
const f32 = (r: number, i: number) => Math.fround((i + 1) * 0.1 * (r + 1) + r);
const f64 = (r: number, i: number) => Math.sqrt(i + 2) * (r + 1) - r / 3;
const a = Float32Array.from({ length: 1000 }, (_, i) => f32(rank, i));
const b = Float64Array.from({ length: 1000 }, (_, i) => f64(rank, i));
assert.equal(await mpi.allReduceSum(a), a);
await mpi.allReduceSum(b);
for (let i = 0; i < 1000; i++) {
  assert.equal(a[i], Math.fround(f32(0, i) + f32(1, i)), `float32 [${i}]`);
  assert.equal(b[i], f64(0, i) + f64(1, i), `float64 [${i}]`);
}
await assert.rejects(async () => mpi.allReduceSum(new Int32Array(4) as unknown as Float32Array), /Float32Array or Float64Array/);

// Conv2Former-T's gradient size: 28M float32 (112 MB).
const n = 28_000_000;
const big = new Float32Array(n);
for (let i = 0; i < n; i++) big[i] = (i % 1024) * (rank + 1);
const tBig = performance.now();
await mpi.allReduceSum(big);
const bigMs = performance.now() - tBig;
for (let i = 0; i < n; i++) if (big[i] !== (i % 1024) * 3) assert.fail(`28M all-reduce: [${i}] = ${big[i]}`);

// All-gather with a different length per rank, and an empty contribution.
const mine = new Uint8Array(rank * 3 + 1).fill(rank + 10);
const all = await mpi.allGather(mine);
assert.deepEqual(all.map((x) => Array.from(x)), [[10], [11, 11, 11, 11]]);
const sparse = await mpi.allGather(rank === 0 ? new Uint8Array(0) : new TextEncoder().encode('{"rank":1}'));
assert.deepEqual(sparse.map((x) => new TextDecoder().decode(x)), ['', '{"rank":1}']);

// The event loop runs while a collective waits for a late rank; the barrier holds rank 0 until rank 1 arrives.
let ticks = 0;
const timer = setInterval(() => ticks++, 10);
if (rank === 1) await sleep(300);
const tBarrier = performance.now();
await mpi.barrier();
const barrierMs = performance.now() - tBarrier;
clearInterval(timer);
if (rank === 0) {
  assert.ok(barrierMs > 200, `barrier returned after ${barrierMs} ms, before rank 1 arrived`);
  assert.ok(ticks > 5, `event loop blocked during the barrier (${ticks} ticks)`);
}

// Collectives issued without awaiting run one at a time, in order.
const x = new Float64Array([rank]);
const [, gathered] = await Promise.all([mpi.allReduceSum(x), mpi.allGather(Uint8Array.of(rank)), mpi.barrier()]);
assert.equal(x[0], 1);
assert.deepEqual(gathered.map((g) => g[0]), [0, 1]);

// The addon itself refuses a second collective while one is in flight (MPI_THREAD_SERIALIZED).
const raw = createRequire(import.meta.url)('../../mpi/build/Release/c2f_mpi.node') as { barrier(): Promise<void> };
const first = raw.barrier();
assert.throws(() => raw.barrier(), /another collective is in flight/);
await first;

await mpi.finalize();
console.log(`MPI_PROBE ${JSON.stringify({ rank, size, localRank: mpi.localRank, bigAllReduceMs: Math.round(bigMs), barrierMs: Math.round(barrierMs), ticks, totalMs: Math.round(performance.now() - t0) })}`);
