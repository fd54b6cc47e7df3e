/**
 * Picks the TensorFlow.js backend: tfjs-node-gpu > tfjs-node > wasm > cpu.
 *
 * The native packages are optional (their install downloads libtensorflow, which fails offline), so
 * they are imported dynamically and their absence is normal. An explicit choice that cannot run is
 * an error: silently training 30x slower than asked is worse than stopping.
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { patchForWasmThreads, unrefWasmWorkers } from './wasm_threads.ts';
import { nativeAddon, nativeKernelThreads, nativeKernelsActive, nativeKernelsStatus, registerNativeKernels } from './kernels/native.ts';

/** Backend names a user may ask for. `auto` takes the fastest one that loads. */
export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

const AUTO_ORDER: Exclude<BackendChoice, 'auto'>[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

let announced = false;

/**
 * Threads of the wasm backend: `opts.wasmThreads`, else `C2F_WASM_THREADS`, else every core (at most
 * 8, tfjs's pool limit). They go to the native kernels where the addon loads, else to the wasm
 * module's pool (1 = its single-threaded build).
 */
function wasmThreadCount(requested: number | undefined): number {
  const env = process.env.C2F_WASM_THREADS;
  const n = requested ?? (env !== undefined && env !== '' ? Number(env) : Math.min(8, availableParallelism()));
  if (!Number.isInteger(n) || n < 1 || n > 8) {
    throw new Error(`${requested !== undefined ? 'wasmThreads' : 'C2F_WASM_THREADS'}: expected an integer 1..8, got '${requested ?? env}'`);
  }
  return n;
}

let identityShared = false;

/** The wasm backend with a pool of `threads` (see wasm_threads.ts for what it takes under Node). */
async function startWasm(threads: number): Promise<{ ok: boolean; why?: string }> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  if (!identityShared) {
    shareIdentityBuffersOnWasm();
    identityShared = true;
  }
  if (threads === 1) return { ok: await tf.setBackend('wasm') };
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  const restore = patchForWasmThreads(threads);
  let ok: boolean;
  try {
    ok = await tf.setBackend('wasm');
  } finally {
    restore();
  }
  if (!ok) return { ok, why: `the ${threads}-thread wasm backend failed to initialise (C2F_WASM_THREADS=1 selects the single-threaded one)` };
  unrefWasmWorkers((tf.backend() as unknown as { wasm: unknown }).wasm);
  return { ok };
}

/**
 * The wasm backend's `Identity` kernel copies its input, and tfjs runs it for every tensor it saves
 * for the backward pass: each activation was copied once per op that saves it (the stage-1 output
 * of Conv2Former-T at 800x1344, 19 MB, four times). Tensors are immutable, so the copy can share the
 * buffer, as the cpu backend's `Identity` and wasm's own `Reshape` do.
 */
function shareIdentityBuffersOnWasm(): void {
  tf.unregisterKernel(tf.Identity, 'wasm');
  tf.registerKernel({
    kernelName: tf.Identity,
    backendName: 'wasm',
    kernelFunc: ({ inputs, backend }) => {
      const x = inputs.x as tf.TensorInfo;
      (backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    },
  });
}

/** Loads the package behind a backend name and activates it; returns false if it is not available. */
async function tryBackend(name: Exclude<BackendChoice, 'auto'>, wasmThreads: number): Promise<{ ok: boolean; why?: string }> {
  try {
    if (name === 'tensorflow-gpu' || name === 'tensorflow') {
      // A variable specifier keeps TypeScript from requiring the optional package's types.
      const pkg = name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
      await import(pkg);
      const ok = await tf.setBackend('tensorflow');
      return ok ? { ok } : { ok, why: `${pkg} loaded but its backend failed to initialise` };
    }
    if (name === 'wasm') return await startWasm(wasmThreads);
    const ok = await tf.setBackend(name);
    return ok ? { ok } : { ok, why: `backend '${name}' failed to initialise` };
  } catch (err) {
    return { ok: false, why: (err as Error).message.split('\n')[0] };
  }
}

/**
 * Activates a backend and returns its tfjs name (`tensorflow`, `wasm` or `cpu`).
 *
 * Resolution: an explicit `name` other than `auto` wins; otherwise the `C2F_BACKEND` environment
 * variable; otherwise auto. The wasm backend runs its conv/matmul kernels on
 * `opts.wasmThreads` / `C2F_WASM_THREADS` / all-cores threads (the native kernels', else its pool's). Logs the chosen backend once per
 * process (to stderr).
 * @throws if an explicitly requested backend is unknown or cannot be loaded.
 */
export async function initBackend(name: string = 'auto', opts: { quiet?: boolean; wasmThreads?: number } = {}): Promise<string> {
  const requested = name !== 'auto' ? name : (process.env.C2F_BACKEND ?? 'auto');
  if (!(BACKEND_CHOICES as readonly string[]).includes(requested)) {
    const source = name !== 'auto' ? 'backend' : 'C2F_BACKEND';
    throw new Error(`unknown ${source} '${requested}'; expected one of: ${BACKEND_CHOICES.join(', ')}`);
  }
  const choice = requested as BackendChoice;
  const threads = wasmThreadCount(opts.wasmThreads);
  // With the native kernels the threads are theirs and the wasm module runs single-threaded: its
  // XNNPACK pool would then only serve the element-wise kernels, where waking the pool's threads costs
  // more than it saves (a [4,16,16,32] x [4,1,1,1] Multiply 0.5 ms instead of 0.02; shapes UperNet
  // 0.10 -> 0.087 s/iter, a Conv2Former-T step 0.43 -> 0.46), and its spinning threads compete
  // with OpenMP's and the data workers for the cores.
  const poolThreads = nativeAddon() ? 1 : threads;
  let active: string | undefined;
  if (choice === 'auto') {
    for (const candidate of AUTO_ORDER) {
      if ((await tryBackend(candidate, poolThreads)).ok) {
        active = tf.getBackend();
        break;
      }
    }
    if (!active) throw new Error('no TensorFlow.js backend could be initialised (tried ' + AUTO_ORDER.join(', ') + ')');
  } else {
    const res = await tryBackend(choice, poolThreads);
    if (!res.ok) {
      throw new Error(`backend '${choice}' is not available: ${res.why}. ` +
        `Install it (see README, "Backends") or choose another with --backend / C2F_BACKEND (${BACKEND_CHOICES.join(', ')})`);
    }
    active = tf.getBackend();
  }
  await tf.ready();
  if (active === 'wasm') registerNativeKernels(threads);
  if (!announced && !opts.quiet) {
    const n = wasmThreads();
    const native = nativeKernelsStatus();
    const pool = active === 'wasm'
      ? ` (${n} thread${n > 1 ? 's' : ''}${native.active ? ' in the native kernels' : `; native kernels off: ${native.why}`})`
      : '';
    process.stderr.write(`[c2f] tfjs backend: ${active}${pool}\n`);
    announced = true;
  }
  return active;
}

/**
 * Threads the active wasm backend computes with: the native kernels' when they are active, else its
 * pool's (1 when single-threaded or another backend is active).
 */
export function wasmThreads(): number {
  if (tf.getBackend() !== 'wasm') return 1;
  if (nativeKernelsActive()) return nativeKernelThreads();
  return wasmPoolThreads();
}

/** Threads of the wasm module's own (XNNPACK) pool: 1 when the native kernels are active. */
export function wasmPoolThreads(): number {
  if (tf.getBackend() !== 'wasm') return 1;
  const pt = (tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount?: () => number } } }).wasm.tfjs;
  return Math.max(1, pt.getThreadsCount?.() ?? 1);
}

/**
 * Bytes of the wasm backend's heap, null on other backends. The heap only grows, so this is the
 * high-water mark of everything tensors and kernels have held at once; it cannot pass 4 GiB.
 */
export function wasmHeapBytes(): number | null {
  if (tf.getBackend() !== 'wasm') return null;
  const wasm = (tf.backend() as unknown as { wasm: { wasmMemory?: WebAssembly.Memory; HEAPU8: Uint8Array } }).wasm;
  return (wasm.wasmMemory?.buffer ?? wasm.HEAPU8.buffer).byteLength;
}
