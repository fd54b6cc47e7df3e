/**
 * PyTorch checkpoint reader (src/io/torch_checkpoint.ts): the shared Conv2Former-tiny fixture
 * (read-only), synthetic checkpoints from test/helpers/torch_zip_writer.ts, state-dict unwrapping and
 * the errors for bad files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PickleObject, openZip, parseTorchCheckpoint, readTorchCheckpoint, type PickleValue, type RawTensor, type TensorDict } from '../src/io/index.ts';
import { buildTorchCheckpoint, dict, floatStorage, halfStorage, longStorage, tensor, tuple, type PyValue } from './helpers/torch_zip_writer.ts';
import { TINY_CKPT } from './helpers/fixtures.ts';
import { HALF_BITS, HALF_VALUES, TMP, tmpFile, values } from './helpers/io.ts';

const FIXTURE = TINY_CKPT;

/** Reads a synthetic checkpoint through the public file API. */
async function readSynthetic(obj: PyValue, opts: { key?: string; prefix?: string; deflate?: boolean; zip64?: boolean } = {}): Promise<TensorDict> {
  const p = tmpFile(buildTorchCheckpoint(obj, { prefix: opts.prefix, deflate: opts.deflate, zip64: opts.zip64 }));
  return readTorchCheckpoint(p, opts.key === undefined ? {} : { key: opts.key });
}

test('fixture: state dict keys, shapes and dtypes', async () => {
  const sd = await readTorchCheckpoint(FIXTURE);
  // The checkpoint's state_dict really holds 131 entries (checked independently with Python's
  // pickletools: 131 storages, one tensor each).
  assert.equal(sd.size, 131);
  assert.deepEqual(sd.get('downsample_layers.0.0.weight')?.shape, [8, 3, 3, 3]);
  assert.deepEqual(sd.get('stages.0.0.attn.att.2.weight')?.shape, [16, 1, 11, 11]);
  assert.deepEqual(sd.get('pred.weight')?.shape, [1000, 1280]);
  assert.equal(sd.get('pred.weight')?.data.length, 1000 * 1280);
  const nbt = sd.get('downsample_layers.0.2.num_batches_tracked');
  assert.ok(nbt);
  assert.equal(nbt.dtype, 'int64');
  assert.deepEqual(nbt.shape, []);
  assert.ok(nbt.data instanceof Int32Array);
  assert.equal(nbt.data.length, 1);
  for (const [k, t] of sd) {
    if (k.endsWith('num_batches_tracked')) assert.equal(t.dtype, 'int64', k);
    else assert.ok(t.dtype === 'float32' && t.data instanceof Float32Array, k);
  }
});

test('fixture: tensor values equal the raw storage bytes (independent local-header walk)', async () => {
  const sd = await readTorchCheckpoint(FIXTURE);
  const buf = readFileSync(FIXTURE);
  // Find the local header of entry 'ckpt/data/0' (storage key '0' = the first tensor) by scanning,
  // without the ZIP reader, then read float32 LE values straight from the file.
  const name = Buffer.from('ckpt/data/0');
  let h = -1;
  for (let p = buf.indexOf(name); p >= 0; p = buf.indexOf(name, p + 1)) {
    if (buf.readUInt32LE(p - 30) === 0x04034b50 && buf.readUInt16LE(p - 4) === name.length) {
      h = p - 30;
      break;
    }
  }
  assert.ok(h >= 0, 'local header not found');
  assert.equal(buf.readUInt16LE(h + 8), 0, 'stored entry');
  const start = h + 30 + buf.readUInt16LE(h + 26) + buf.readUInt16LE(h + 28);
  const t = sd.get('downsample_layers.0.0.weight')!;
  // torch streams entries: the local header has flag bit 3 and zero sizes, and the real sizes
  // follow the data in a data descriptor ('PK\x07\x08', crc, compressed, uncompressed).
  assert.ok(buf.readUInt16LE(h + 6) & 8, 'data descriptor flag');
  const nbytes = t.data.length * 4;
  assert.equal(buf.readUInt32LE(start + nbytes), 0x08074b50, 'data descriptor follows the data');
  assert.equal(buf.readUInt32LE(start + nbytes + 12), nbytes);
  for (let i = 0; i < t.data.length; i++) assert.equal(t.data[i], buf.readFloatLE(start + 4 * i), `element ${i}`);
  // And through the ZIP reader, for a second entry.
  const zip = openZip(buf, FIXTURE);
  assert.equal(zip.names().length, 133);
  assert.ok(zip.read('ckpt/data/0').equals(buf.subarray(start, start + t.data.length * 4)));
});

test('fixture: parseTorchCheckpoint exposes the whole object', () => {
  const root = parseTorchCheckpoint(readFileSync(FIXTURE), FIXTURE);
  assert.ok(root instanceof Map);
  assert.deepEqual([...root.keys()], ['state_dict', 'arch']);
  assert.equal(root.get('arch'), 'conv2former_tiny');
  const sd = root.get('state_dict');
  assert.ok(sd instanceof Map && sd.size === 131);
  const t = sd.get('pred.bias') as RawTensor;
  assert.deepEqual(t.shape, [1000]);
});

/** A state dict exercising float16, transposed strides, a storage offset, shared storage and int64. */
function richStateDict(): PyValue {
  const base = floatStorage([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const mat = floatStorage([0, 1, 2, 3, 4, 5]);
  return dict({
    'conv.weight': tensor(mat, [2, 3]),
    'conv.weight_t': tensor(mat, [3, 2], { stride: [1, 3] }), // a transposed view: not contiguous
    'slice': tensor(base, [2, 2], { offset: 5 }),
    'strided_slice': tensor(base, [2, 2], { offset: 1, stride: [4, 2] }), // base[1::4][:, ::2]
    'half': tensor(halfStorage(HALF_BITS), [HALF_BITS.length]),
    'bn.num_batches_tracked': tensor(longStorage([12345]), []),
    'big_count': tensor(longStorage([2 ** 40, -(2 ** 40), -7]), [3]),
    'empty': tensor(floatStorage([]), [0, 4]),
    'note': 'not a tensor',
  });
}

test('synthetic: float16, strides, storage offsets, int64 and non-tensor entries', async () => {
  const sd = await readSynthetic(dict({ state_dict: richStateDict(), epoch: 7 }, false));
  assert.deepEqual([...sd.keys()], ['conv.weight', 'conv.weight_t', 'slice', 'strided_slice', 'half', 'bn.num_batches_tracked', 'big_count', 'empty']);
  assert.deepEqual(values(sd.get('conv.weight')), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(sd.get('conv.weight_t')?.shape, [3, 2]);
  assert.deepEqual(values(sd.get('conv.weight_t')), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(values(sd.get('slice')), [5, 6, 7, 8]);
  assert.deepEqual(values(sd.get('strided_slice')), [1, 3, 5, 7]);
  const half = sd.get('half')!;
  assert.equal(half.dtype, 'float16');
  assert.ok(half.data instanceof Float32Array);
  assert.deepEqual(values(half), HALF_VALUES);
  assert.ok(Object.is(half.data[1], -0));
  const nbt = sd.get('bn.num_batches_tracked')!;
  assert.equal(nbt.dtype, 'int64');
  assert.deepEqual(nbt.shape, []);
  assert.deepEqual(values(nbt), [12345]);
  assert.deepEqual(values(sd.get('big_count')), [2 ** 31 - 1, -(2 ** 31), -7]); // saturated to int32
  assert.deepEqual(sd.get('empty')?.shape, [0, 4]);
  assert.equal(sd.get('empty')?.data.length, 0);
});

test('synthetic: deflated entries, ZIP64 records and another folder name read the same', async () => {
  const obj = dict({ state_dict: richStateDict() }, false);
  const plain = await readSynthetic(obj);
  for (const opts of [{ deflate: true }, { zip64: true }, { zip64: true, deflate: true, prefix: 'my_model' }]) {
    const other = await readSynthetic(obj, opts);
    assert.deepEqual([...other.keys()], [...plain.keys()], JSON.stringify(opts));
    for (const [k, t] of plain) assert.deepEqual(other.get(k), t, `${k} ${JSON.stringify(opts)}`);
  }
});

const w = () => tensor(floatStorage([1, 2]), [2]);
const v = () => tensor(floatStorage([3, 4]), [2]);

test('unwrap: state_dict_ema when there is no state_dict', async () => {
  const sd = await readSynthetic(dict({ epoch: 3, optimizer: dict({ lr: 0.1 }, false), state_dict_ema: dict({ 'a.w': w() }) }, false));
  assert.deepEqual([...sd.keys()], ['a.w']);
});

test('unwrap: state_dict wins over state_dict_ema and model', async () => {
  const sd = await readSynthetic(dict({ model: dict({ m: w() }), state_dict_ema: dict({ e: w() }), state_dict: dict({ s: v() }) }, false));
  assert.deepEqual([...sd.keys()], ['s']);
  assert.deepEqual(values(sd.get('s')), [3, 4]);
});

test('unwrap: model, skipping a state_dict that holds no tensors', async () => {
  const sd = await readSynthetic(dict({ state_dict: dict({ note: 'x' }), model: dict({ 'head.w': w() }) }, false));
  assert.deepEqual([...sd.keys()], ['head.w']);
});

test('unwrap: a raw dict of tensors, with non-tensor entries dropped', async () => {
  const sd = await readSynthetic(dict({ 'x.w': w(), meta: 'junk', 'y.w': v() }));
  assert.deepEqual([...sd.keys()], ['x.w', 'y.w']);
});

test("unwrap: 'module.' is stripped only when every key has it", async () => {
  const all = await readSynthetic(dict({ state_dict: dict({ 'module.a.w': w(), 'module.b.w': v() }) }, false));
  assert.deepEqual([...all.keys()], ['a.w', 'b.w']);
  const mixed = await readSynthetic(dict({ 'module.a.w': w(), 'b.w': v() }));
  assert.deepEqual([...mixed.keys()], ['module.a.w', 'b.w']);
});

test('unwrap: explicit key, and the error listing top-level keys', async () => {
  const obj = dict({ state_dict: dict({ s: w() }), ema_model: dict({ e: v() }) }, false);
  const sd = await readSynthetic(obj, { key: 'ema_model' });
  assert.deepEqual([...sd.keys()], ['e']);
  await assert.rejects(readSynthetic(obj, { key: 'nope' }), (err: Error) => {
    assert.match(err.message, /no top-level entry 'nope'/);
    assert.match(err.message, /'state_dict', 'ema_model'/);
    assert.match(err.message, /\.pth/);
    return true;
  });
});

test('unwrap: no state dict anywhere is an error naming the file and keys', async () => {
  await assert.rejects(readSynthetic(dict({ epoch: 1, arch: 'x' }, false)), /found no state dict.*'epoch', 'arch'/);
});

test('unknown globals (argparse.Namespace, numpy scalars) become inert placeholders', async () => {
  const npFloat = {
    kind: 'object' as const,
    module: 'numpy.core.multiarray',
    name: 'scalar',
    args: [{ kind: 'object' as const, module: 'numpy', name: 'dtype', args: ['f8', false, true], state: tuple(3, '<', null, null, null, -1, -1, 0) }, Buffer.from(new Float64Array([0.25]).buffer)],
  };
  const args = { kind: 'object' as const, module: 'argparse', name: 'Namespace', args: [], state: dict({ lr: 0.001, best: npFloat, name: 'run1' }, false) };
  const obj = dict({ args, state_dict: dict({ w: w() }), epoch: 12 }, false);
  const p = tmpFile(buildTorchCheckpoint(obj));
  const sd = await readTorchCheckpoint(p);
  assert.deepEqual([...sd.keys()], ['w']);

  const root = parseTorchCheckpoint(readFileSync(p), p) as Map<PickleValue, PickleValue>;
  const ns = root.get('args');
  assert.ok(ns instanceof PickleObject);
  assert.equal(ns.module, 'argparse');
  assert.equal(ns.name, 'Namespace');
  const state = ns.state as Map<PickleValue, PickleValue>;
  assert.equal(state.get('lr'), 0.001);
  const best = state.get('best') as PickleObject;
  assert.equal(best.name, 'scalar');
  assert.ok(best.args[0] instanceof PickleObject);
  // bytes come through _codecs.encode as a Buffer
  assert.equal((best.args[1] as Buffer).readDoubleLE(0), 0.25);
});

test('parseTorchCheckpoint: tensors inside nested tuples and lists are decoded', () => {
  const obj = dict({ pair: tuple(tuple(w()), [v(), 'x']), n: 1 }, false);
  const root = parseTorchCheckpoint(buildTorchCheckpoint(obj), 'mem.pth') as Map<PickleValue, PickleValue>;
  const pair = root.get('pair') as PickleValue[];
  const inner = pair[0] as PickleValue[];
  assert.ok(Object.isFrozen(pair) && Object.isFrozen(inner));
  assert.deepEqual(values(inner[0] as RawTensor), [1, 2]);
  assert.deepEqual(values((pair[1] as PickleValue[])[0] as RawTensor), [3, 4]);
});

test('unsupported storage types only fail when they are in the chosen state dict', async () => {
  const complex = { type: 'ComplexFloatStorage' as unknown as 'FloatStorage', numel: 1, bytes: Buffer.alloc(8) };
  const sd = await readSynthetic(dict({ state_dict: dict({ w: w() }), optimizer: dict({ exp_avg: tensor(complex, [1]) }, false) }, false));
  assert.deepEqual([...sd.keys()], ['w']);
  await assert.rejects(readSynthetic(dict({ w: w(), z: tensor(complex, [1]) })), /tensor 'z': storage type torch\.ComplexFloatStorage is not supported/);
});

test('torch errors: missing file', async () => {
  const p = path.join(TMP, 'does-not-exist.pth');
  await assert.rejects(readTorchCheckpoint(p), (err: Error) => err.message.includes(p) && /not found/.test(err.message));
});

test('torch errors: random bytes', async () => {
  const bytes = Buffer.alloc(4096);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24; // deterministic noise
  const p = tmpFile(bytes);
  await assert.rejects(readTorchCheckpoint(p), (err: Error) => err.message.includes(p) && /not a PyTorch checkpoint/.test(err.message));
  const empty = tmpFile(Buffer.alloc(0));
  await assert.rejects(readTorchCheckpoint(empty), (err: Error) => err.message.includes(empty) && /empty/.test(err.message));
});

test('torch errors: truncated copies of the fixture', async () => {
  const full = readFileSync(FIXTURE);
  for (const keep of [full.length - 10, Math.floor(full.length / 2), 100]) {
    const p = tmpFile(full.subarray(0, keep));
    await assert.rejects(readTorchCheckpoint(p), (err: Error) => {
      assert.ok(err.message.includes(p), err.message);
      assert.match(err.message, /truncated/);
      return true;
    });
  }
});

test('torch errors: a corrupted storage byte fails the CRC check', async () => {
  const bytes = buildTorchCheckpoint(dict({ w: w() }));
  const at = bytes.indexOf(Buffer.from(new Float32Array([1, 2]).buffer));
  bytes[at + 1]! ^= 0xff;
  const p = tmpFile(bytes);
  await assert.rejects(readTorchCheckpoint(p), (err: Error) => err.message.includes(p) && /archive\/data\/0.*CRC-32 mismatch/.test(err.message));
});

test('torch errors: legacy (pre-1.6) format explains how to re-save', async () => {
  // pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2), then a protocol number, as legacy files begin.
  const p = tmpFile(Buffer.concat([Buffer.from('80028a0a6cfc9c46f9206aa850192e80024de9032e', 'hex'), Buffer.alloc(64)]));
  await assert.rejects(readTorchCheckpoint(p), (err: Error) => {
    assert.ok(err.message.includes(p));
    assert.match(err.message, /legacy/);
    assert.match(err.message, /torch\.save\(/);
    assert.match(err.message, /1\.6/);
    return true;
  });
});

test('torch errors: big-endian byteorder is refused clearly', async () => {
  const p = tmpFile(buildTorchCheckpoint(dict({ w: w() }), { byteorder: 'big' }));
  await assert.rejects(readTorchCheckpoint(p), (err: Error) => err.message.includes(p) && /little-endian/.test(err.message));
});
