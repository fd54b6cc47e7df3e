/** Backend selection: explicit names, C2F_BACKEND, auto order, and clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../src/backend.ts';

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
