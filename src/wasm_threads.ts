/**
 * Multi-threaded tfjs wasm backend under Node.js.
 *
 * tfjs-backend-wasm ships a pthreads + SIMD build whose XNNPACK kernels (conv, matmul, depthwise)
 * split work over a thread pool, but it refuses it under Node (tfjs issue 3830), and three things
 * stop it working there as shipped:
 *  1. Emscripten starts its pthread workers from Blob URLs, which Node's `Worker` cannot load: the
 *     Blobs' texts are captured here and written to files (`Blob` and `URL.createObjectURL` are
 *     patched while the backend initialises, then restored).
 *  2. The factory text sent to the workers names the bundle's renamed requires (`require$$0`...);
 *     the file gets a prelude that defines them.
 *  3. The pool is capped at `os.cpus().length / 2` (tfjs assumes two hyper-threads per core), one
 *     thread on a 2-core machine: `os.cpus` reports `threads * 2` entries during initialisation.
 * Afterwards the workers are unref'd so that they do not keep the process alive.
 *
 * Measured on a 2-core machine: a 1024² matmul 50 → 28 ms, a 3x3 conv [4,32,32,128] 7.0 → 4.0 ms.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The factory's text starts with this (tfjs-backend-wasm 4.x). */
const FACTORY_PREFIX = 'var WasmBackendModuleThreadedSimd';
const PRELUDE = "var require$$0 = require('fs'), require$$1 = require('path'), require$$2 = require('worker_threads'), " +
  "require$$3 = require('perf_hooks'), require$$4 = require('os'), commonjsGlobal = globalThis;\n";

/**
 * Patches what the threaded wasm build needs to start under Node; call just before
 * `tf.setBackend('wasm')` (with the `WASM_HAS_MULTITHREAD_SUPPORT` flag set and `setThreadsCount`).
 * @returns a function that undoes the patches; call it once the backend is ready.
 */
export function patchForWasmThreads(threads: number): () => void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'c2f-wasm-'));
  const texts = new WeakMap<Blob, string>();
  let factoryFile: string | undefined;
  const RealBlob = globalThis.Blob;
  const realCreate = URL.createObjectURL;
  const realCpus = os.cpus;

  class TextBlob extends RealBlob {
    constructor(parts?: BlobPart[], opts?: BlobPropertyBag) {
      super(parts, opts);
      if (!parts || !parts.every((p) => typeof p === 'string')) return;
      const text = (parts as string[]).join('');
      texts.set(this, text);
      if (text.startsWith(FACTORY_PREFIX)) {
        factoryFile = path.join(dir, 'factory.js');
        writeFileSync(factoryFile, PRELUDE + text);
      }
    }
  }
  let n = 0;
  globalThis.Blob = TextBlob;
  URL.createObjectURL = (obj: Blob | MediaSource): string => {
    const text = obj instanceof RealBlob ? texts.get(obj) : undefined;
    if (text === undefined || factoryFile === undefined) return realCreate(obj as Blob);
    // The pthread worker script: inside it, the factory Blob it is sent resolves to the factory file.
    const file = path.join(dir, `worker${n++}.js`);
    writeFileSync(file, `URL.createObjectURL = () => ${JSON.stringify(factoryFile)}; URL.revokeObjectURL = () => {};\n${text}`);
    return file;
  };
  os.cpus = () => {
    const cpus = realCpus();
    return Array.from({ length: 2 * threads }, (_, i) => cpus[i % cpus.length]);
  };
  return () => {
    globalThis.Blob = RealBlob;
    URL.createObjectURL = realCreate;
    os.cpus = realCpus;
  };
}

/** Lets the process exit with the wasm pool's workers alive (Emscripten refs its running threads). */
export function unrefWasmWorkers(wasmModule: unknown): void {
  const pt = (wasmModule as { PThread?: { runningWorkers: { unref(): void }[]; unusedWorkers: { unref(): void }[] } }).PThread;
  if (!pt) return;
  for (const w of [...pt.runningWorkers, ...pt.unusedWorkers]) w.unref();
}
