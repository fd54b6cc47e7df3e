/**
 * safetensors reader and writer (https://github.com/huggingface/safetensors, format section):
 *
 *   8 bytes   N, little-endian uint64: header length
 *   N bytes   UTF-8 JSON object { name: {dtype, shape, data_offsets: [begin, end]}, ..., "__metadata__"?: {str: str} }
 *             (writers pad it with spaces so the data starts 8-byte aligned)
 *   rest      byte buffer; data_offsets are relative to its start, tensors are little-endian, C-order,
 *             and together cover it exactly: no overlaps, no holes.
 *
 * Reading validates all of that (as the reference implementation does) so that a corrupt or
 * truncated file is reported, naming the file and tensor, rather than yielding garbage weights.
 */
import { createHash } from 'node:crypto';
import { writeFileAtomic } from './atomic_write.ts';
import { DTYPE_SIZE, HOST_LE, decodeElements } from './dtype_codec.ts';
import { readWholeFile } from './read_file.ts';
import { numel, type DType, type RawTensor, type TensorDict } from './tensor_data.ts';

/** Tensors and the free-form string metadata of a safetensors file. */
export interface SafetensorsContent {
  /** Tensors in data order (the order they were written). */
  tensors: TensorDict;
  /** The `__metadata__` entry, `{}` if absent. */
  metadata: Record<string, string>;
}

/** safetensors dtype tag → our dtype (the subset we read). */
const FROM_TAG: Readonly<Record<string, DType>> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  F64: 'float64',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};

/** The reference implementation refuses headers above 100 MB; so do we (it guards against absurd lengths). */
const MAX_HEADER = 100_000_000;

interface HeaderEntry {
  name: string;
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses a safetensors file held in memory.
 * @param buf the whole file.
 * @param label names the file in errors.
 * @throws naming `label` (and the tensor, where one is at fault) when the file is truncated or malformed.
 */
export function parseSafetensors(buf: Buffer, label: string): SafetensorsContent {
  const fail = (msg: string): never => {
    throw new Error(`${label}: invalid safetensors file: ${msg}`);
  };
  if (buf.length < 8) fail(`file is ${buf.length} bytes, too short for the 8-byte header length (truncated?)`);
  const n64 = buf.readBigUInt64LE(0);
  if (n64 > BigInt(buf.length - 8)) fail(`header length ${n64} exceeds the ${buf.length - 8} bytes after the length field (truncated?)`);
  const n = Number(n64);
  if (n > MAX_HEADER) fail(`header length ${n} exceeds the ${MAX_HEADER}-byte limit`);
  if (n < 2 || buf[8] !== 0x7b /* { */) fail('header is not a JSON object');

  let header: unknown;
  try {
    header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  } catch (err) {
    return fail(`header is not valid JSON: ${(err as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) return fail('header is not a JSON object');

  const dataStart = 8 + n;
  const dataLength = buf.length - dataStart;
  const metaPairs: [string, string][] = [];
  const entries: HeaderEntry[] = [];

  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__ entry '${k}' is not a string`);
        metaPairs.push([k, v as string]);
      }
      continue;
    }
    const bad = (msg: string): never => fail(`tensor '${name}': ${msg}`);
    if (raw === null || typeof raw !== 'object') bad('header entry is not an object');
    const { dtype: tag, shape, data_offsets: offs } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof tag !== 'string') return bad('missing dtype');
    const dtype = Object.hasOwn(FROM_TAG, tag) ? FROM_TAG[tag] : undefined;
    if (!dtype) return bad(`unsupported dtype '${tag}' (supported: ${Object.keys(FROM_TAG).join(', ')})`);
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) return bad('shape must be an array of non-negative integers');
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) return bad('data_offsets must be [begin, end]');
    const [begin, end] = offs as [number, number];
    if (begin > end) bad(`data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataLength) bad(`data_offsets [${begin}, ${end}] run past the end of the ${dataLength}-byte data (truncated?)`);
    const expected = numel(shape) * DTYPE_SIZE[dtype];
    if (end - begin !== expected) bad(`holds ${end - begin} bytes but ${tag} [${shape.join(', ')}] needs ${expected}`);
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }

  // Sorted by position, the tensors must tile the byte buffer exactly.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: HeaderEntry | undefined;
  for (const e of entries) {
    if (e.begin < cursor) fail(`tensors '${prev!.name}' [${prev!.begin}, ${prev!.end}) and '${e.name}' [${e.begin}, ${e.end}) overlap`);
    if (e.begin > cursor) fail(`${e.begin - cursor} unused bytes before tensor '${e.name}' (offset ${cursor})`);
    cursor = e.end;
    prev = e;
  }
  if (cursor !== dataLength) fail(`${dataLength - cursor} unused bytes after the last tensor`);

  const tensors: TensorDict = new Map();
  for (const e of entries) {
    const bytes = buf.subarray(dataStart + e.begin, dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: decodeElements(bytes, e.dtype, numel(e.shape)) });
  }
  // fromEntries defines own properties, so even a key like '__proto__' is kept as data.
  return { tensors, metadata: Object.fromEntries(metaPairs) };
}

/**
 * Reads a safetensors file.
 * @throws naming `path` when it is missing, truncated or malformed.
 */
export async function readSafetensors(path: string): Promise<SafetensorsContent> {
  return parseSafetensors(await readWholeFile(path, 'safetensors file'), path);
}

/** Output tag for a tensor: integers keep an integer type (I64, like PyTorch's counters), bools BOOL, the rest F32. */
function tagFor(dtype: DType): 'F32' | 'I64' | 'BOOL' {
  if (dtype === 'bool') return 'BOOL';
  if (dtype === 'int64' || dtype === 'int32' || dtype === 'int16' || dtype === 'int8' || dtype === 'uint8') return 'I64';
  return 'F32';
}

/** Little-endian bytes of one tensor in the given output type. */
function encodeTensor(t: RawTensor, tag: 'F32' | 'I64' | 'BOOL'): Buffer {
  const n = t.data.length;
  if (tag === 'F32') {
    // The typed array's own bytes (a view, no copy) keep every value bit-identical, NaN payloads included.
    if (HOST_LE && t.data instanceof Float32Array) return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const out = Buffer.alloc(n * 4);
    for (let i = 0; i < n; i++) out.writeFloatLE(t.data[i]!, i * 4);
    return out;
  }
  if (tag === 'I64') {
    if (HOST_LE && t.data instanceof Int32Array) {
      // Sign-extend through an Int32Array view: low word = v, high word = v >> 31 (all sign bits).
      const words = new Int32Array(n * 2);
      for (let i = 0; i < n; i++) {
        const v = t.data[i]!;
        words[2 * i] = v;
        words[2 * i + 1] = v >> 31;
      }
      return Buffer.from(words.buffer);
    }
    const out = Buffer.alloc(n * 8);
    for (let i = 0; i < n; i++) {
      const v = t.data[i]!;
      if (v >= -0x80000000 && v <= 0x7fffffff && Number.isInteger(v)) {
        // Two's-complement sign extension: low word = v, high word = all sign bits.
        out.writeInt32LE(v, i * 8);
        out.writeInt32LE(v < 0 ? -1 : 0, i * 8 + 4);
      } else if (Number.isSafeInteger(v)) {
        out.writeBigInt64LE(BigInt(v), i * 8);
      } else {
        throw new Error(`value ${v} at index ${i} is not an integer`);
      }
    }
    return out;
  }
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = t.data[i] ? 1 : 0;
  return out;
}

/**
 * The file as a list of chunks (length field, header, tensor data in order). Float32 data chunks may
 * be views of the input arrays; keeping chunks apart lets `writeSafetensors` stream them without
 * first concatenating a second copy of the model.
 */
function serializeParts(dict: TensorDict, metadata?: Record<string, string>): Buffer[] {
  // Built as pairs and turned into an object with fromEntries, so that any tensor name (even
  // '__proto__') becomes an ordinary JSON key, in insertion order.
  const header: [string, unknown][] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors metadata '${k}' must be a string, got ${typeof v}`);
    }
    header.push(['__metadata__', metadata]);
  }
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of dict) {
    if (name === '__metadata__') throw new Error(`tensor name '__metadata__' is reserved by the safetensors format`);
    if (!t.shape.every((d) => isNonNegInt(d))) throw new Error(`tensor '${name}': shape [${t.shape.join(', ')}] is not a list of non-negative integers`);
    if (t.data.length !== numel(t.shape)) {
      throw new Error(`tensor '${name}': data has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${numel(t.shape)}`);
    }
    const tag = tagFor(t.dtype);
    let bytes: Buffer;
    try {
      bytes = encodeTensor(t, tag);
    } catch (err) {
      throw new Error(`tensor '${name}': ${(err as Error).message}`);
    }
    header.push([name, { dtype: tag, shape: t.shape, data_offsets: [offset, offset + bytes.length] }]);
    chunks.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(Object.fromEntries(header));
  // Pad with spaces so that the data starts at a multiple of 8 (8-byte length field + header).
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const head = Buffer.alloc(8);
  const headerBytes = Buffer.from(json, 'utf8');
  head.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  return [head, headerBytes, ...chunks];
}

/**
 * Serializes tensors (in map order) and optional string metadata to safetensors bytes.
 * Integer dtypes are written as I64, bool as BOOL, every float type as F32.
 * @throws naming the tensor when its data length disagrees with its shape or its name is reserved.
 */
export function serializeSafetensors(dict: TensorDict, metadata?: Record<string, string>): Buffer {
  return Buffer.concat(serializeParts(dict, metadata));
}

/**
 * Writes tensors to a safetensors file atomically: the bytes go to a temporary file in the same
 * folder, are fsynced, and the file is renamed over `path`, so readers (and a crash) only ever see
 * the old file or the complete new one. Resolves to the SHA-256 (hex) of the bytes written.
 */
export async function writeSafetensors(path: string, dict: TensorDict, metadata?: Record<string, string>): Promise<string> {
  const parts = serializeParts(dict, metadata);
  const hash = createHash('sha256');
  for (const p of parts) hash.update(p);
  await writeFileAtomic(path, parts);
  return hash.digest('hex');
}
