/**
 * safetensors reader and writer (src/io/safetensors.ts): round trips, files from other writers, errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors, type RawTensor, type TensorDict } from '../src/io/index.ts';
import { HALF_BITS, HALF_VALUES, TMP, tmpFile, values } from './helpers/io.ts';

/** Builds a safetensors file from a header object and data, as another writer might. */
function rawSafetensors(header: object, data: Buffer, padTo = 8): Buffer {
  let json = JSON.stringify(header);
  while (Buffer.byteLength(json) % padTo) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json), data]);
}

test('safetensors: round trip keeps F32 bits, int64, bool, order and metadata', async () => {
  const weird = new Float32Array([1.5, -0, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, Math.fround(0.1)]);
  const nanBits = new Uint32Array(new Float32Array(1).buffer);
  const nan = new Float32Array(nanBits.buffer);
  nanBits[0] = 0x7fc00123; // a NaN with a payload
  const dictIn: TensorDict = new Map<string, RawTensor>([
    ['z.weight', { dtype: 'float32', shape: [7], data: weird }],
    ['a.nan', { dtype: 'float32', shape: [1], data: nan }],
    ['bn.num_batches_tracked', { dtype: 'int64', shape: [], data: new Int32Array([-3]) }],
    ['half', { dtype: 'float16', shape: [1, 2], data: new Float32Array([0.5, -2]) }],
    ['mask', { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) }],
    ['empty', { dtype: 'float32', shape: [0, 3], data: new Float32Array(0) }],
  ]);
  const p = path.join(TMP, 'round.safetensors');
  await writeSafetensors(p, dictIn, { format: 'pt', note: 'héllo' });
  const bytes = readFileSync(p);
  assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0, 'header padded to a multiple of 8');
  const header = JSON.parse(bytes.toString('utf8', 8, 8 + Number(bytes.readBigUInt64LE(0))));
  assert.equal(header['bn.num_batches_tracked'].dtype, 'I64');
  assert.equal(header['half'].dtype, 'F32');
  assert.equal(header['mask'].dtype, 'BOOL');

  const { tensors, metadata } = await readSafetensors(p);
  assert.deepEqual(metadata, { format: 'pt', note: 'héllo' });
  assert.deepEqual([...tensors.keys()], [...dictIn.keys()]);
  const z = tensors.get('z.weight')!;
  assert.deepEqual(Buffer.from(z.data.buffer, z.data.byteOffset, z.data.byteLength), Buffer.from(weird.buffer));
  const n = tensors.get('a.nan')!.data as Float32Array;
  assert.equal(new Uint32Array(n.buffer, n.byteOffset, 1)[0], 0x7fc00123);
  assert.deepEqual(tensors.get('bn.num_batches_tracked'), { dtype: 'int64', shape: [], data: new Int32Array([-3]) });
  assert.deepEqual(tensors.get('half'), { dtype: 'float32', shape: [1, 2], data: new Float32Array([0.5, -2]) });
  assert.deepEqual(tensors.get('mask'), { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) });
  assert.deepEqual(tensors.get('empty')?.shape, [0, 3]);

  // Atomic write: overwriting leaves no temporary files behind.
  await writeSafetensors(p, new Map([['only', { dtype: 'float32', shape: [1], data: new Float32Array([9]) }]]));
  assert.deepEqual([...(await readSafetensors(p)).tensors.keys()], ['only']);
  assert.deepEqual(readdirSync(TMP).filter((f) => f.includes('round.safetensors')), ['round.safetensors']);
});

test('safetensors: hand-built F16, BF16, F64, I32, I16, I8, U8 files decode correctly', () => {
  const f16 = Buffer.from(new Uint16Array(HALF_BITS).buffer);
  const bf16 = Buffer.from(new Uint16Array([0x3f80, 0x0001, 0x7f80, 0xc000]).buffer);
  const f64 = Buffer.from(new Float64Array([0.1, -1e300]).buffer);
  const i32 = Buffer.from(new Int32Array([-5, 2 ** 31 - 1]).buffer);
  const i16 = Buffer.from(new Int16Array([-300, 7]).buffer);
  const i8 = Buffer.from(new Int8Array([-128, 127]).buffer);
  const u8 = Buffer.from([255, 0]);
  const parts = [f16, bf16, f64, i32, i16, i8, u8];
  const names = ['h', 'b', 'd', 'i', 's', 'c', 'u'];
  const tags = ['F16', 'BF16', 'F64', 'I32', 'I16', 'I8', 'U8'];
  const shapes = [[HALF_BITS.length], [2, 2], [2], [2], [2], [2], [2]];
  const header: Record<string, object> = { __metadata__: { k: 'v' } };
  let off = 0;
  parts.forEach((b, i) => {
    header[names[i]!] = { dtype: tags[i], shape: shapes[i], data_offsets: [off, off + b.length] };
    off += b.length;
  });
  const { tensors, metadata } = parseSafetensors(rawSafetensors(header, Buffer.concat(parts), 1), 'hand.safetensors');
  assert.deepEqual(metadata, { k: 'v' });
  assert.equal(tensors.get('h')?.dtype, 'float16');
  assert.deepEqual(values(tensors.get('h')), HALF_VALUES);
  assert.equal(tensors.get('b')?.dtype, 'bfloat16');
  assert.deepEqual(values(tensors.get('b')), [1, 2 ** -133, Infinity, -2]);
  assert.deepEqual(values(tensors.get('d')), [Math.fround(0.1), -Infinity]);
  assert.deepEqual(values(tensors.get('i')), [-5, 2 ** 31 - 1]);
  assert.deepEqual(values(tensors.get('s')), [-300, 7]);
  assert.deepEqual(values(tensors.get('c')), [-128, 127]);
  assert.deepEqual(values(tensors.get('u')), [255, 0]);
  assert.ok(tensors.get('u')?.data instanceof Int32Array);
});

test('safetensors: malformed files are rejected naming the file and tensor', async () => {
  const one = (dtype: string, offsets: number[], shape = [2]) => ({ dtype, shape, data_offsets: offsets });
  const data8 = Buffer.alloc(8);
  const good = rawSafetensors({ a: one('F32', [0, 8]) }, data8);
  const cases: [string, Buffer, RegExp][] = [
    ['truncated.safetensors', good.subarray(0, good.length - 3), /tensor 'a'.*run past the end.*truncated/],
    ['short.safetensors', good.subarray(0, 5), /too short/],
    ['hugeheader.safetensors', Buffer.concat([Buffer.from([0xff, 0xff, 0, 0, 0, 0, 0, 0]), Buffer.from('{}')]), /header length 65535 exceeds/],
    ['overlap.safetensors', rawSafetensors({ a: one('F32', [0, 8]), b: one('F32', [4, 12]) }, Buffer.alloc(12)), /tensors 'a' \[0, 8\) and 'b' \[4, 12\) overlap/],
    ['hole.safetensors', rawSafetensors({ a: one('F32', [4, 12]) }, Buffer.alloc(12)), /4 unused bytes before tensor 'a'/],
    ['trailing.safetensors', rawSafetensors({ a: one('F32', [0, 8]) }, Buffer.alloc(12)), /4 unused bytes after/],
    ['dtype.safetensors', rawSafetensors({ a: one('C64', [0, 8], [1]) }, data8), /tensor 'a': unsupported dtype 'C64'/],
    ['size.safetensors', rawSafetensors({ a: one('F32', [0, 8], [3]) }, data8), /tensor 'a': holds 8 bytes but F32 \[3\] needs 12/],
    ['json.safetensors', rawSafetensors({}, Buffer.alloc(0)).fill(0x7b, 8, 9).fill(0x78, 9, 10), /not valid JSON/],
    ['meta.safetensors', rawSafetensors({ __metadata__: { n: 1 } }, Buffer.alloc(0)), /__metadata__ entry 'n' is not a string/],
  ];
  for (const [name, bytes, re] of cases) {
    const p = tmpFile(bytes, `-${name}`);
    await assert.rejects(readSafetensors(p), (err: Error) => {
      assert.ok(err.message.includes(p), `${name}: ${err.message}`);
      assert.match(err.message, re, name);
      return true;
    });
  }
  const missing = path.join(TMP, 'missing.safetensors');
  await assert.rejects(readSafetensors(missing), (err: Error) => err.message.includes(missing) && /not found/.test(err.message));
});

test('safetensors: serialize validates shapes and names', () => {
  assert.throws(
    () => serializeSafetensors(new Map([['w', { dtype: 'float32', shape: [3], data: new Float32Array(2) }]])),
    /tensor 'w': data has 2 values but shape \[3\] needs 3/,
  );
  assert.throws(() => serializeSafetensors(new Map([['__metadata__', { dtype: 'float32', shape: [], data: new Float32Array(1) }]])), /reserved/);
});
