/**
 * Little-endian element decoding shared by the checkpoint readers: raw bytes of any supported
 * `DType` → the widened typed array that `RawTensor.data` holds (see `tensor_data.ts`).
 *
 * Every function copies: the result never aliases the input buffer, so callers may drop the (often
 * huge) file buffer afterwards and typed-array alignment is never an issue.
 */
import { endianness } from 'node:os';
import type { DType, RawTensor } from './tensor_data.ts';

/** Bytes per element as stored in files. */
export const DTYPE_SIZE: Readonly<Record<DType, number>> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  float64: 8,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** Widened storage class of a dtype in `RawTensor.data`. */
export function widenedKind(dtype: DType): 'float' | 'int' | 'bool' {
  if (dtype === 'bool') return 'bool';
  if (dtype === 'float32' || dtype === 'float16' || dtype === 'bfloat16' || dtype === 'float64') return 'float';
  return 'int';
}

/** Allocates a zeroed array of the widened type for `dtype`. */
export function allocWidened(dtype: DType, count: number): RawTensor['data'] {
  const kind = widenedKind(dtype);
  return kind === 'float' ? new Float32Array(count) : kind === 'int' ? new Int32Array(count) : new Uint8Array(count);
}

// Typed-array views interpret bytes in host order; the files are little-endian. Node only runs on
// little-endian hosts in practice, but a DataView fallback keeps big-endian hosts correct.
/** Whether this machine is little-endian (so typed arrays can alias file bytes directly). */
export const HOST_LE = endianness() === 'LE';

let halfTable: Float32Array | undefined;

/**
 * IEEE 754 binary16 bits → float32 value, exact for every input (subnormals, ±inf, NaN): binary16
 * values are all representable in binary32.
 */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal: mant × 2^-14 × 2^-10
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** A 65536-entry table makes half decoding a single lookup per element (256 KiB, built once). */
function getHalfTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

/** bfloat16 bits → float32 value: bf16 is the top half of a float32, so this is exact by construction. */
export function bfloat16ToFloat(b: number): number {
  const f = new Float32Array(1);
  new Uint32Array(f.buffer)[0] = (b & 0xffff) << 16;
  return f[0]!;
}

/** Copies `bytes` into a fresh, aligned ArrayBuffer. */
function alignedCopy(bytes: Uint8Array): ArrayBuffer {
  const out = new Uint8Array(bytes.byteLength);
  out.set(bytes);
  return out.buffer;
}

/** Saturates an int64 given as (low uint32, high int32) to the int32 range. */
function int64ToInt32(lo: number, hi: number): number {
  if (hi === 0 && lo <= 0x7fffffff) return lo;
  if (hi === -1 && lo >= 0x80000000) return lo | 0;
  return hi < 0 ? -0x80000000 : 0x7fffffff;
}

/**
 * Decodes `count` little-endian elements of `dtype` from the start of `bytes` into the widened
 * representation (floats → Float32Array, integers → Int32Array saturating int64, bool → Uint8Array of 0/1).
 * @throws if `bytes` holds fewer than `count` elements.
 */
export function decodeElements(bytes: Uint8Array, dtype: DType, count: number): RawTensor['data'] {
  const need = count * DTYPE_SIZE[dtype];
  if (bytes.byteLength < need) {
    throw new Error(`need ${need} bytes for ${count} ${dtype} elements, have ${bytes.byteLength}`);
  }
  const src = bytes.subarray(0, need);
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  switch (dtype) {
    case 'float32': {
      if (HOST_LE) return new Float32Array(alignedCopy(src));
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    }
    case 'float64': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    }
    case 'float16': {
      const table = getHalfTable();
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[dv.getUint16(i * 2, true)]!;
      return out;
    }
    case 'bfloat16': {
      const out = new Float32Array(count);
      // Writing the bit pattern through a same-buffer Uint32Array view is exact, fast, and host-order
      // consistent (both views use host order).
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'int64': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = int64ToInt32(dv.getUint32(i * 8, true), dv.getInt32(i * 8 + 4, true));
      return out;
    }
    case 'int32': {
      if (HOST_LE) return new Int32Array(alignedCopy(src));
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt32(i * 4, true);
      return out;
    }
    case 'int16': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = dv.getInt16(i * 2, true);
      return out;
    }
    case 'int8':
      return Int32Array.from(new Int8Array(src.buffer, src.byteOffset, count));
    case 'uint8':
      return Int32Array.from(src);
    case 'bool': {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) out[i] = src[i] ? 1 : 0; // any nonzero byte is True
      return out;
    }
  }
}
