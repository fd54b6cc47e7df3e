/** Backend selection: explicit names, C2F_BACKEND, auto order, and clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { nativeAddon } from '../src/kernels/native.ts';
import { ROOT } from './helpers/run_tool.ts';

/** Whether a native tfjs package loads here (it does not where libtensorflow could not download). */
async function nativeInstalled(): Promise<boolean> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      return true;
    } catch {
      // not installed or its native library is missing
    }
  }
  return false;
}

test('explicit backends', async () => {
  assert.equal(await initBackend('cpu', { quiet: true }), 'cpu');
  assert.equal(await initBackend('wasm', { quiet: true }), 'wasm');
  await assert.rejects(initBackend('bogus'), /unknown backend 'bogus'; expected one of: auto, tensorflow-gpu, tensorflow, wasm, cpu/);
});

test('on wasm a clone (what tfjs saves for the backward pass) shares its buffer and keeps its values after the original goes', async () => {
  assert.equal(await initBackend('wasm', { quiet: true }), 'wasm');
  const x = tf.tensor2d([[1, 2], [3, 4]]);
  const buffers = tf.memory().numDataBuffers;
  const y = tf.clone(x);
  assert.equal(tf.memory().numDataBuffers, buffers, 'the clone allocated a buffer');
  const z = tf.add(y, 1);
  x.dispose();
  assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4]);
  assert.deepEqual(Array.from(z.dataSync()), [2, 3, 4, 5]);
  tf.dispose([y, z]);
  assert.equal(tf.memory().numDataBuffers, buffers - 1);
});

test('an unavailable explicit backend is an error, not a silent fallback', async (t) => {
  if (await nativeInstalled()) return t.skip('tfjs-node is installed here');
  await assert.rejects(initBackend('tensorflow', { quiet: true }), /backend 'tensorflow' is not available/);
});

test('C2F_BACKEND overrides auto; an explicit name overrides C2F_BACKEND', async () => {
  const saved = process.env.C2F_BACKEND;
  try {
    process.env.C2F_BACKEND = 'cpu';
    assert.equal(await initBackend('auto', { quiet: true }), 'cpu');
    assert.equal(await initBackend('wasm', { quiet: true }), 'wasm');
    process.env.C2F_BACKEND = 'gpu-please';
    await assert.rejects(initBackend(), /unknown C2F_BACKEND 'gpu-please'/);
  } finally {
    if (saved === undefined) delete process.env.C2F_BACKEND;
    else process.env.C2F_BACKEND = saved;
  }
});

test('auto prefers a native backend, then wasm', async () => {
  const saved = process.env.C2F_BACKEND;
  delete process.env.C2F_BACKEND;
  try {
    const name = await initBackend('auto', { quiet: true });
    assert.equal(name, (await nativeInstalled()) ? 'tensorflow' : 'wasm');
  } finally {
    if (saved !== undefined) process.env.C2F_BACKEND = saved;
  }
});

const PROBE = path.join(ROOT, 'test', 'helpers', 'wasm_threads_probe.ts');
// The probe does not call process.exit: a pool worker left referenced would hang it until the timeout.
const probe = (n: number, env: Record<string, string> = {}) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', PROBE, String(n)], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  assert.equal(r.status, 0, `${r.stderr} (signal ${r.signal})`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { threads: number; pool: number; sum: number; first: number[] };
};

test('wasm thread pool: N threads start under Node, give the same numbers as 1, and let the process exit', () => {
  // The pool serves the wasm kernels only without the native kernels.
  const a = probe(1, { C2F_NATIVE_KERNELS: '0' }), b = probe(2, { C2F_NATIVE_KERNELS: '0' });
  assert.deepEqual([a.threads, a.pool, b.threads, b.pool], [1, 1, 2, 2]);
  assert.deepEqual(b.first, a.first);
  assert.equal(b.sum, a.sum);
});

test('with the native kernels the threads are theirs and the wasm module runs single-threaded', { skip: nativeAddon() ? false : 'native kernels not built' }, () => {
  const a = probe(1), b = probe(2);
  assert.deepEqual([a.threads, a.pool, b.threads, b.pool], [1, 1, 2, 1]);
  // Rows are split over threads, each summed in the same order: the same numbers.
  assert.deepEqual(b.first, a.first);
  assert.equal(b.sum, a.sum);
});

test('C2F_WASM_THREADS must be an integer 1..8', async () => {
  const saved = process.env.C2F_WASM_THREADS;
  try {
    process.env.C2F_WASM_THREADS = '0';
    await assert.rejects(initBackend('cpu', { quiet: true }), /C2F_WASM_THREADS: expected an integer 1\.\.8, got '0'/);
    process.env.C2F_WASM_THREADS = 'two';
    await assert.rejects(initBackend('cpu', { quiet: true }), /C2F_WASM_THREADS: expected an integer 1\.\.8, got 'two'/);
  } finally {
    if (saved === undefined) delete process.env.C2F_WASM_THREADS;
    else process.env.C2F_WASM_THREADS = saved;
  }
});
