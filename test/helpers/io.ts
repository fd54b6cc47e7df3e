/** Shared pieces of the src/io tests: a per-process temp folder, tensor values, float16 test vectors. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RawTensor } from '../../src/io/index.ts';

/** A temp folder for this test process, removed on exit. */
export const TMP = mkdtempSync(path.join(tmpdir(), 'io-test-'));
process.on('exit', () => rmSync(TMP, { recursive: true, force: true }));

let fileCounter = 0;
/** Writes bytes to a fresh temp file and returns its path. */
export function tmpFile(bytes: Buffer, ext = '.pth'): string {
  const p = path.join(TMP, `f${fileCounter++}${ext}`);
  writeFileSync(p, bytes);
  return p;
}

/** A decoded tensor's values as numbers (fails when it is missing). */
export function values(t: RawTensor | undefined): number[] {
  assert.ok(t, 'tensor missing');
  return Array.from(t.data);
}

/** float16 bit patterns (zeros, subnormals, max, ±Inf, NaN) and the values they decode to. */
export const HALF_BITS = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555];
export const HALF_VALUES = [0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1, -2, 65504, Infinity, -Infinity, NaN, 0.333251953125];
