/**
 * MPI for training and evaluation across processes and machines: the optional `c2f-mpi` addon
 * (`mpi/`, built on request with `npm run build:mpi` against Debian's OpenMPI) wrapped as {@link Mpi}.
 *
 * The job is launched by MPI (`mpirun -np N npx tsx tools/train.ts ...`, `srun --mpi=pmix` under
 * Slurm); every process calls {@link loadMpi} once, which initialises MPI and tells it its rank.
 * Collectives block until every rank joins, so the addon runs them on a libuv worker thread and
 * they return promises; MPI is initialised at `MPI_THREAD_SERIALIZED`, so the wrapper queues them
 * and at most one is in flight. Every rank must issue the same collectives in the same order.
 *
 * Memory: a collective reads and writes the array's memory from another thread until its promise
 * settles. Pass arrays that nothing else writes, resizes or detaches meanwhile: not a view of the
 * tfjs wasm heap, which any op may grow (copy the tensor's data out first).
 *
 * Failure: MPI errors reject with the MPI error string. A rank that exits without `finalize()` or
 * calls {@link Mpi.abort} makes `mpirun` end every rank of the job, so no rank waits forever on
 * a dead peer.
 */
import { createRequire } from 'node:module';

/** What to do where the addon is missing (also printed by `--launcher mpi`). */
export const MPI_SETUP_HINT =
  'MPI support is optional and not built here. Install OpenMPI (as root: `apt-get install libopenmpi-dev openmpi-bin`), ' +
  'then build the addon with `npm run build:mpi`, and launch with `mpirun -np N npx tsx tools/train.ts ...` ' +
  '(as root add `--allow-run-as-root`; more ranks than cores: `--oversubscribe`).';

const ADDON_PATH = '../../mpi/build/Release/c2f_mpi.node';

/** This process's place in the job, as `init()` reports it. */
export interface MpiWorld {
  /** 0 … size-1 in MPI_COMM_WORLD. */
  rank: number;
  /** Number of processes in the job. */
  size: number;
  /** Rank among the processes on this machine (shared memory): the GPU index for one rank per GPU. */
  localRank: number;
  /** Number of processes on this machine. */
  localSize: number;
  /** The thread level MPI provides (MPI_THREAD_SERIALIZED = 2 or better). */
  threadLevel: number;
}

/** The addon's functions (mpi/src/mpi.c). */
interface MpiAddon {
  init(): MpiWorld;
  finalize(): void;
  abort(code: number): never;
  barrier(): Promise<void>;
  broadcast(view: ArrayBufferView, root: number): Promise<void>;
  allReduceSum(values: Float32Array | Float64Array): Promise<void>;
  allReduceSumSync(values: Float64Array): void;
  allGather(bytes: ArrayBufferView): Promise<Uint8Array[]>;
}

let addon: MpiAddon | null | undefined;
let loadError = '';
let instance: Mpi | undefined;

function loadAddon(): MpiAddon | null {
  if (addon !== undefined) return addon;
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as MpiAddon;
  } catch (e) {
    addon = null;
    loadError = (e as Error).message.split('\n')[0];
  }
  return addon;
}

/**
 * Whether the addon loads (it was built and OpenMPI's library is present), and if not, why.
 * Does not initialise MPI.
 */
export function mpiStatus(): { available: boolean; why?: string } {
  return loadAddon() ? { available: true } : { available: false, why: loadError };
}

/**
 * True when an MPI launcher started this process (`mpirun`/`mpiexec`: `OMPI_COMM_WORLD_SIZE`;
 * `srun --mpi=pmi2`/hydra: `PMI_SIZE`; `srun --mpi=pmix`: `PMIX_RANK`). Ask before
 * {@link loadMpi}: a process started without a launcher still initialises (as a one-rank job), and
 * OpenMPI then sets these variables in its own environment.
 */
export function isMpiLaunch(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.OMPI_COMM_WORLD_SIZE !== undefined || env.PMI_SIZE !== undefined || env.PMIX_RANK !== undefined;
}

/**
 * Initialises MPI (once per process; later calls return the same {@link Mpi}).
 * @throws where the addon is not built or OpenMPI is missing, with {@link MPI_SETUP_HINT};
 *   where MPI_Init fails, or after {@link Mpi.finalize}.
 */
export function loadMpi(): Mpi {
  if (instance) {
    if (instance.finalized) throw new Error('loadMpi: MPI was finalized in this process and cannot start again');
    return instance;
  }
  const lib = loadAddon();
  if (!lib) throw new Error(`MPI addon not available (${loadError}).\n${MPI_SETUP_HINT}`);
  instance = new Mpi(lib, lib.init());
  return instance;
}

/**
 * The MPI job as seen from one rank: its place ({@link rank}, {@link size}, {@link localRank}) and
 * the collectives over all ranks (MPI_COMM_WORLD). Obtain it from {@link loadMpi}.
 */
export class Mpi implements Readonly<MpiWorld> {
  readonly rank: number;
  readonly size: number;
  readonly localRank: number;
  readonly localSize: number;
  readonly threadLevel: number;
  private tail: Promise<void> = Promise.resolve();
  private done = false;

  /** @internal Use {@link loadMpi}. */
  constructor(private readonly lib: MpiAddon, world: MpiWorld) {
    this.rank = world.rank;
    this.size = world.size;
    this.localRank = world.localRank;
    this.localSize = world.localSize;
    this.threadLevel = world.threadLevel;
  }

  /** Rank 0: the one that writes checkpoints and logs. */
  get isRoot(): boolean {
    return this.rank === 0;
  }

  /** True after {@link finalize}. */
  get finalized(): boolean {
    return this.done;
  }

  /** Resolves once every rank has called it. */
  barrier(): Promise<void> {
    return this.enqueue(() => this.lib.barrier());
  }

  /**
   * Copies `root`'s bytes of `view` into every rank's `view`, in place. Every rank passes a view
   * of the same byte length (a TypedArray, Buffer or DataView).
   * @returns `view`, once filled.
   */
  broadcast<T extends ArrayBufferView>(view: T, root = 0): Promise<T> {
    this.checkRank(root, 'broadcast');
    return this.enqueue(() => this.lib.broadcast(view, root)).then(() => view);
  }

  /**
   * Replaces `values` by their element-wise sum over all ranks, in place (MPI_Allreduce, MPI_SUM).
   * Every rank passes the same length and type. The summation order is MPI's, the same on every
   * rank, so all ranks end with identical bits.
   * @param values [n] float32 or float64.
   * @returns `values`, once summed.
   */
  allReduceSum<T extends Float32Array | Float64Array>(values: T): Promise<T> {
    if (!(values instanceof Float32Array || values instanceof Float64Array)) {
      throw new TypeError('allReduceSum: expected a Float32Array or Float64Array');
    }
    return this.enqueue(() => this.lib.allReduceSum(values)).then(() => values);
  }

  /**
   * {@link allReduceSum} of a small float64 buffer, blocking this thread until every rank joins:
   * for statistics inside a synchronous computation (SyncBN in a forward/backward pass). Throws
   * when an asynchronous collective is still in flight (await those first).
   */
  allReduceSumSync(values: Float64Array): void {
    if (this.done) throw new Error('MPI: finalized');
    this.lib.allReduceSumSync(values);
  }

  /**
   * Every rank's bytes, indexed by rank (lengths may differ between ranks; 2 GiB in all at most).
   * The arrays are views of one new ArrayBuffer.
   * @param bytes this rank's contribution (a Buffer is a Uint8Array).
   */
  allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return this.enqueue(() => this.lib.allGather(bytes));
  }

  /**
   * Ends MPI for this process, after the queued collectives (every rank calls it before exiting;
   * a rank that exits without it makes `mpirun` report the job failed).
   */
  async finalize(): Promise<void> {
    if (this.done) return;
    await this.tail;
    this.done = true;
    this.lib.finalize();
  }

  /**
   * Ends every rank of the job now (MPI_Abort); `mpirun` exits with `code`. For a failure on one
   * rank that the others cannot learn of otherwise (they may be blocked in a collective): print
   * the rank and cause first.
   */
  abort(code = 1): never {
    return this.lib.abort(code);
  }

  private checkRank(root: number, who: string): void {
    if (!Number.isInteger(root) || root < 0 || root >= this.size) {
      throw new RangeError(`${who}: root ${root} is not a rank of 0..${this.size - 1}`);
    }
  }

  /** Runs `call` after the collectives already queued; a failed one does not block the next. */
  private enqueue<T>(call: () => Promise<T>): Promise<T> {
    if (this.done) return Promise.reject(new Error('MPI: finalized'));
    const result = this.tail.then(call);
    this.tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
