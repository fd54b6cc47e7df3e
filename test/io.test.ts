/**
 * Tests of src/io: ZIP reader, pickle VM, PyTorch checkpoint reader and safetensors reader/writer.
 * Synthetic checkpoints come from test/helpers/torch_zip_writer.ts; the real one is the shared
 * Conv2Former-tiny fixture (read-only).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  PickleGlobal,
  PickleObject,
  bfloat16ToFloat,
  halfToFloat,
  openZip,
  parseSafetensors,
  parseTorchCheckpoint,
  readSafetensors,
  readTorchCheckpoint,
  serializeSafetensors,
  unpickle,
  writeSafetensors,
  type PickleValue,
  type RawTensor,
  type TensorDict,
} from '../src/io/index.ts';
import {
  buildTorchCheckpoint,
  buildZip,
  dict,
  floatStorage,
  halfStorage,
  longStorage,
  tensor,
  tuple,
  type PyValue,
} from './helpers/torch_zip_writer.ts';
import { TINY_CKPT } from './helpers/fixtures.ts';

const FIXTURE = TINY_CKPT;
const TMP = mkdtempSync(path.join(tmpdir(), 'io-test-'));
process.on('exit', () => rmSync(TMP, { recursive: true, force: true }));

let fileCounter = 0;
/** Writes bytes to a fresh temp file and returns its path. */
function tmpFile(bytes: Buffer, ext = '.pth'): string {
  const p = path.join(TMP, `f${fileCounter++}${ext}`);
  writeFileSync(p, bytes);
  return p;
}

/** Reads a synthetic checkpoint through the public file API. */
async function readSynthetic(obj: PyValue, opts: { key?: string; prefix?: string; deflate?: boolean; zip64?: boolean } = {}): Promise<TensorDict> {
  const p = tmpFile(buildTorchCheckpoint(obj, { prefix: opts.prefix, deflate: opts.deflate, zip64: opts.zip64 }));
  return readTorchCheckpoint(p, opts.key === undefined ? {} : { key: opts.key });
}

function values(t: RawTensor | undefined): number[] {
  assert.ok(t, 'tensor missing');
  return Array.from(t.data);
}

// ---------------------------------------------------------------- fixture

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

// ---------------------------------------------------------------- synthetic checkpoints

const HALF_BITS = [0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x3555];
const HALF_VALUES = [0, -0, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 1, -2, 65504, Infinity, -Infinity, NaN, 0.333251953125];

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

// ---------------------------------------------------------------- torch errors

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

// ---------------------------------------------------------------- pickle VM

/** `pickle.dumps(obj, protocol=p)` from CPython 3.11 for the object checked in the next test. */
const PY_PICKLES: Record<number, string> = {
  0: '286470300a56610a70310a286c70320a49310a61492d320a6146332e350a614e614930310a614930300a61493330300a614937303030300a61492d310a617356620a70330a2849310a49320a7470340a7356630a70350a5668e96c6c6f5c75303030610a70360a73566269670a70370a4c313138303539313632303731373431313330333432344c0a73566e65670a70380a4c2d313039393531313632373737364c0a735662797465730a70390a635f636f646563730a656e636f64650a7031300a28565c7530303030ff0a7031310a566c6174696e310a7031320a747031330a527031340a73567365740a7031350a635f5f6275696c74696e5f5f0a7365740a7031360a28286c7031370a49370a61747031380a527031390a735666730a7032300a635f5f6275696c74696e5f5f0a66726f7a656e7365740a7032310a28286c7032320a49320a61747032330a527032340a735662610a7032350a635f5f6275696c74696e5f5f0a6279746561727261790a7032360a286731300a285678790a7032370a6731320a747032380a527032390a747033300a527033310a7356650a7033320a2874735674330a7033330a2849310a56780a7033340a4e747033350a7356660a7033360a462d302e310a735673310a7033370a286c7033380a4934320a61735673320a7033390a6733380a732e',
  1: '7d71002858010000006171015d7102284b014afeffffff47400c0000000000004e4930310a4930300a4d2c014a701101004affffffff655801000000627103284b014b027471045801000000637105580700000068c3a96c6c6f0a7106580300000062696771074c313138303539313632303731373431313330333432344c0a58030000006e656771084c2d313039393531313632373737364c0a580500000062797465737109635f636f646563730a656e636f64650a710a28580300000000c3bf710b58060000006c6174696e31710c74710d52710e5803000000736574710f635f5f6275696c74696e5f5f0a7365740a7110285d71114b0761747112527113580200000066737114635f5f6275696c74696e5f5f0a66726f7a656e7365740a7115285d71164b0261747117527118580200000062617119635f5f6275696c74696e5f5f0a6279746561727261790a711a28680a2858020000007879711b680c74711c52711d74711e52711f580100000065712029580200000074337121284b0158010000007871224e747123580100000066712447bfb999999999999a5802000000733171255d71264b2a615802000000733271276826752e',
  2: '80027d71002858010000006171015d7102284b014afeffffff47400c0000000000004e88894d2c014a701101004affffffff6558010000006271034b014b028671045801000000637105580700000068c3a96c6c6f0a7106580300000062696771078a0900000000000000004058030000006e656771088a060000000000ff580500000062797465737109635f636f646563730a656e636f64650a710a580300000000c3bf710b58060000006c6174696e31710c86710d52710e5803000000736574710f635f5f6275696c74696e5f5f0a7365740a71105d71114b0761857112527113580200000066737114635f5f6275696c74696e5f5f0a66726f7a656e7365740a71155d71164b0261857117527118580200000062617119635f5f6275696c74696e5f5f0a6279746561727261790a711a680a58020000007879711b680c86711c52711d85711e52711f5801000000657120295802000000743371214b0158010000007871224e877123580100000066712447bfb999999999999a5802000000733171255d71264b2a615802000000733271276826752e',
  3: '80037d71002858010000006171015d7102284b014afeffffff47400c0000000000004e88894d2c014a701101004affffffff6558010000006271034b014b028671045801000000637105580700000068c3a96c6c6f0a7106580300000062696771078a0900000000000000004058030000006e656771088a060000000000ff580500000062797465737109430200ff710a5803000000736574710b636275696c74696e730a7365740a710c5d710d4b076185710e52710f580200000066737110636275696c74696e730a66726f7a656e7365740a71115d71124b0261857113527114580200000062617115636275696c74696e730a6279746561727261790a7116430278797117857118527119580100000065711a2958020000007433711b4b01580100000078711c4e87711d580100000066711e47bfb999999999999a58020000007331711f5d71204b2a615802000000733271216820752e',
  4: '800495df000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e88894d2c014a701101004affffffff658c0162944b014b0286948c0163948c0768c3a96c6c6f0a948c03626967948a090000000000000000408c036e6567948a060000000000ff8c05627974657394430200ff948c03736574948f94284b07908c02667394284b0291948c026261948c086275696c74696e73948c096279746561727261799493944302787994859452948c016594298c027433944b018c0178944e87948c01669447bfb999999999999a8c027331945d944b2a618c02733294681c752e',
  5: '800595c9000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e88894d2c014a701101004affffffff658c0162944b014b0286948c0163948c0768c3a96c6c6f0a948c03626967948a090000000000000000408c036e6567948a060000000000ff8c05627974657394430200ff948c03736574948f94284b07908c02667394284b0291948c026261949602000000000000007879948c016594298c027433944b018c0178944e87948c01669447bfb999999999999a8c027331945d944b2a618c027332946817752e',
};

test('pickle: CPython pickles of protocols 0-5 decode identically', () => {
  // obj = {'a': [1, -2, 3.5, None, True, False, 300, 70000, -1], 'b': (1, 2), 'c': 'héllo\n', 'big': 2**70,
  //        'neg': -2**40, 'bytes': b'\x00\xff', 'set': {7}, 'fs': frozenset({2}), 'ba': bytearray(b'xy'),
  //        'e': (), 't3': (1, 'x', None), 'f': -0.1, 's1': shared, 's2': shared}  with shared = [42]
  for (const [proto, hex] of Object.entries(PY_PICKLES)) {
    const o = unpickle(Buffer.from(hex, 'hex'), { label: `protocol ${proto}` }) as Map<PickleValue, PickleValue>;
    assert.ok(o instanceof Map, `protocol ${proto}`);
    assert.deepEqual(o.get('a'), [1, -2, 3.5, null, true, false, 300, 70000, -1], `protocol ${proto}`);
    assert.deepEqual(o.get('b'), [1, 2]);
    assert.ok(Object.isFrozen(o.get('b')), 'tuples are frozen');
    assert.equal(o.get('c'), 'héllo\n');
    assert.equal(o.get('big'), 2n ** 70n);
    assert.equal(o.get('neg'), -(2 ** 40));
    assert.deepEqual(o.get('bytes'), Buffer.from([0, 255]));
    assert.deepEqual(o.get('set'), new Set([7]));
    assert.deepEqual(o.get('fs'), new Set([2]));
    assert.deepEqual(o.get('ba'), Buffer.from('xy'));
    assert.deepEqual(o.get('e'), []);
    assert.deepEqual(o.get('t3'), [1, 'x', null]);
    assert.equal(o.get('f'), -0.1);
    assert.deepEqual(o.get('s1'), [42]);
    assert.equal(o.get('s1'), o.get('s2'), `protocol ${proto}: memo keeps identity`);
  }
});

test('pickle: protocol 0 STRING, GLOBAL resolution and inert unknown objects', () => {
  const src = "(S'a\\x41\\n\\'q'\ncmy.mod\nThing\n(I5\ntR(dVk\nI1\nsbcos\nsystem\n(S'rm -rf'\ntRl.";
  const out = unpickle(Buffer.from(src, 'latin1'), { label: 't' }) as PickleValue[];
  assert.equal(out[0], "aA\n'q");
  const thing = out[1] as PickleObject;
  assert.ok(thing instanceof PickleObject);
  assert.equal(`${thing.module}.${thing.name}`, 'my.mod.Thing');
  assert.deepEqual(thing.args, [5]);
  assert.deepEqual(thing.state, new Map([['k', 1]]));
  // Nothing is ever executed: os.system is just recorded.
  const sys = out[2] as PickleObject;
  assert.equal(sys.name, 'system');
  assert.deepEqual(sys.args, ['rm -rf']);

  const resolved = unpickle(Buffer.from('cmy.mod\nThing\n(I5\ntR.', 'latin1'), {
    resolveGlobal: (m, n) => (m === 'my.mod' && n === 'Thing' ? (args) => ({ made: args[0] }) : undefined),
  });
  assert.deepEqual(resolved, { made: 5 });
  const ref = unpickle(Buffer.from('\x80\x02ctorch\nFloatStorage\n.', 'latin1'));
  assert.ok(ref instanceof PickleGlobal && ref.qualifiedName === 'torch.FloatStorage');
});

test('pickle: errors name the label, offset and opcode', () => {
  assert.throws(() => unpickle(Buffer.from([0x80, 0x02, 0x4b, 0x01, 0xff]), { label: 'x.pkl' }), /x\.pkl: bad pickle at offset 4 \(opcode 0xff\): unknown or unsupported opcode 0xff/);
  assert.throws(() => unpickle(Buffer.from([0x80, 0x02, 0x58, 0x10, 0, 0, 0, 0x61]), { label: 'y' }), /y: bad pickle at offset 2.*truncated/);
  assert.throws(() => unpickle(Buffer.from([0x80, 0x02, 0x4e]), { label: 'z' }), /z: .*without a STOP/);
  assert.throws(() => unpickle(Buffer.from([0x80, 0x02, 0x68, 0x03, 0x2e]), { label: 'm' }), /memo key 3 not defined/);
  assert.throws(() => unpickle(Buffer.from('\x80\x02X\x01\x00\x00\x00aQ.', 'latin1'), { label: 'p' }), /persistent id found but no persistent_load/);
});

// ---------------------------------------------------------------- zip

test('zip: comments, deflate and clear errors', () => {
  const files = [
    { name: 'a.txt', data: Buffer.from('hello hello hello hello') },
    { name: 'dir/b.bin', data: Buffer.from([1, 2, 3]) },
  ];
  for (const opts of [{}, { deflate: true }, { zip64: true }, { comment: 'PK\x05\x06 tricky comment' }]) {
    const z = openZip(buildZip(files, opts), 'arch.zip');
    assert.deepEqual(z.names(), ['a.txt', 'dir/b.bin']);
    assert.equal(z.read('a.txt').toString(), 'hello hello hello hello');
    assert.deepEqual([...z.read('dir/b.bin')], [1, 2, 3]);
  }
  const good = buildZip(files);
  assert.throws(() => openZip(good, 'arch.zip').read('missing'), /arch\.zip: ZIP archive has no entry 'missing'/);
  assert.throws(() => openZip(good.subarray(0, good.length - 5), 'cut.zip'), /cut\.zip: corrupt ZIP archive: .*truncated/);
  assert.throws(() => openZip(Buffer.alloc(10), 'tiny.zip'), /tiny\.zip: .*too short/);
  // Central directory pointing past the data.
  const bad = Buffer.from(good);
  bad.writeUInt32LE(bad.length, bad.length - 6);
  assert.throws(() => openZip(bad, 'bad.zip'), /bad\.zip: corrupt ZIP archive: central directory/);
});

// ---------------------------------------------------------------- dtype conversions

test('half and bfloat16 conversions are exact, subnormals and specials included', () => {
  HALF_BITS.forEach((b, i) => assert.ok(Object.is(halfToFloat(b), HALF_VALUES[i]), `half 0x${b.toString(16)}`));
  const bf: [number, number][] = [
    [0x3f80, 1], [0xc000, -2], [0x0001, 2 ** -133], [0x007f, 127 * 2 ** -133], [0x0080, 2 ** -126],
    [0x7f80, Infinity], [0xff80, -Infinity], [0x7fc0, NaN], [0x8000, -0], [0x3eab, 0.333984375],
  ];
  for (const [b, want] of bf) assert.ok(Object.is(bfloat16ToFloat(b), want), `bf16 0x${b.toString(16)}`);
});

// ---------------------------------------------------------------- safetensors

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
