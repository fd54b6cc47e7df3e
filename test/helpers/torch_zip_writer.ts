/**
 * Test-only writer of `torch.save`-style checkpoints, so the reader can be tested on synthetic
 * files without PyTorch: a protocol-2 pickle (what torch.save emits by default) whose tensors are
 * `torch._utils._rebuild_tensor_v2` calls over persistent storages, inside a ZIP archive of stored
 * (or, optionally, deflated) entries, optionally with ZIP64 records.
 */
import { crc32, deflateRawSync } from 'node:zlib';

/** Storage classes the writer can name. */
export type StorageType =
  | 'FloatStorage' | 'HalfStorage' | 'BFloat16Storage' | 'DoubleStorage' | 'LongStorage'
  | 'IntStorage' | 'ShortStorage' | 'CharStorage' | 'ByteStorage' | 'BoolStorage';

/** One storage: its class, element count and raw little-endian bytes. Shared by identity. */
export interface StorageSpec {
  type: StorageType;
  numel: number;
  bytes: Buffer;
}

/** A tensor view of a storage. */
export interface TensorSpec {
  kind: 'tensor';
  storage: StorageSpec;
  offset: number;
  shape: number[];
  stride: number[];
}

/** A Python tuple. */
export interface TupleSpec {
  kind: 'tuple';
  items: PyValue[];
}

/** An instance of an arbitrary class: `module.name(*args)` then BUILD with `state`. */
export interface ObjectSpec {
  kind: 'object';
  module: string;
  name: string;
  args: PyValue[];
  state?: PyValue;
}

/** A Python dict (`ordered`: a collections.OrderedDict, as state dicts are). */
export interface DictSpec {
  kind: 'dict';
  entries: [PyValue, PyValue][];
  ordered?: boolean;
}

/** Values the writer can pickle. Numbers that are integers are pickled as ints, others as floats. */
export type PyValue = null | boolean | number | string | Buffer | PyValue[] | TupleSpec | DictSpec | ObjectSpec | TensorSpec;

/** C-contiguous strides of a shape. */
export function contiguousStrides(shape: number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** A float32 storage holding `values`. */
export function floatStorage(values: number[]): StorageSpec {
  return { type: 'FloatStorage', numel: values.length, bytes: Buffer.from(new Float32Array(values).buffer) };
}

/** A float16 storage from raw binary16 bit patterns. */
export function halfStorage(bits: number[]): StorageSpec {
  return { type: 'HalfStorage', numel: bits.length, bytes: Buffer.from(new Uint16Array(bits).buffer) };
}

/** An int64 storage. */
export function longStorage(values: number[]): StorageSpec {
  return { type: 'LongStorage', numel: values.length, bytes: Buffer.from(new BigInt64Array(values.map(BigInt)).buffer) };
}

/** A tensor over `storage`; contiguous strides unless given. */
export function tensor(storage: StorageSpec, shape: number[], opts: { offset?: number; stride?: number[] } = {}): TensorSpec {
  return { kind: 'tensor', storage, shape, offset: opts.offset ?? 0, stride: opts.stride ?? contiguousStrides(shape) };
}

/** A dict spec from string keys (OrderedDict unless `ordered` is false). */
export function dict(obj: Record<string, PyValue> | [PyValue, PyValue][], ordered = true): DictSpec {
  return { kind: 'dict', entries: Array.isArray(obj) ? obj : Object.entries(obj), ordered };
}

/** A tuple spec. */
export function tuple(...items: PyValue[]): TupleSpec {
  return { kind: 'tuple', items };
}

/** Emits protocol-2 pickle opcodes. Storage keys are assigned in first-use order ("0", "1", …). */
export class PickleWriter {
  private chunks: Buffer[] = [];
  readonly storages = new Map<StorageSpec, string>();

  constructor() {
    this.raw(0x80, 2); // PROTO 2
  }

  /** Appends raw bytes. */
  raw(...bytes: number[]): this {
    this.chunks.push(Buffer.from(bytes));
    return this;
  }

  private str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    this.chunks.push(Buffer.from([0x58]), len, b); // BINUNICODE
    return this;
  }

  private int(v: number): this {
    if (v >= 0 && v < 256) return this.raw(0x4b, v); // BININT1
    if (v >= -0x80000000 && v <= 0x7fffffff) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT
      b.writeInt32LE(v, 1);
      this.chunks.push(b);
      return this;
    }
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    this.chunks.push(Buffer.from([0x8a, 8]), b); // LONG1
    return this;
  }

  private global(module: string, name: string): this {
    this.chunks.push(Buffer.from(`c${module}\n${name}\n`, 'utf8')); // GLOBAL
    return this;
  }

  private tupleOf(items: PyValue[]): this {
    this.raw(0x28); // MARK
    for (const it of items) this.value(it);
    return this.raw(0x74); // TUPLE
  }

  /** Pickles one value. */
  value(v: PyValue): this {
    if (v === null) return this.raw(0x4e);
    if (v === true) return this.raw(0x88);
    if (v === false) return this.raw(0x89);
    if (typeof v === 'number') {
      if (Number.isInteger(v) && !Object.is(v, -0)) return this.int(v);
      const b = Buffer.alloc(9);
      b[0] = 0x47; // BINFLOAT, big-endian
      b.writeDoubleBE(v, 1);
      this.chunks.push(b);
      return this;
    }
    if (typeof v === 'string') return this.str(v);
    if (Buffer.isBuffer(v)) {
      // Protocol 2 has no bytes opcode: Python writes _codecs.encode(latin1_text, 'latin1').
      this.global('_codecs', 'encode');
      return this.tupleOf([v.toString('latin1'), 'latin1']).raw(0x52);
    }
    if (Array.isArray(v)) {
      this.raw(0x5d, 0x28); // EMPTY_LIST, MARK
      for (const it of v) this.value(it);
      return this.raw(0x65); // APPENDS
    }
    switch (v.kind) {
      case 'tuple':
        return this.tupleOf(v.items);
      case 'dict':
        if (v.ordered) this.global('collections', 'OrderedDict').raw(0x29, 0x52); // OrderedDict()
        else this.raw(0x7d); // EMPTY_DICT
        this.raw(0x28);
        for (const [k, x] of v.entries) this.value(k).value(x);
        return this.raw(0x75); // SETITEMS
      case 'object':
        this.global(v.module, v.name).tupleOf(v.args).raw(0x52);
        if (v.state !== undefined) this.value(v.state).raw(0x62); // BUILD
        return this;
      case 'tensor': {
        let key = this.storages.get(v.storage);
        if (key === undefined) this.storages.set(v.storage, (key = String(this.storages.size)));
        this.global('torch._utils', '_rebuild_tensor_v2').raw(0x28); // MARK of the args tuple
        // persistent id ('storage', torch.XStorage, key, location, numel), then BINPERSID
        this.raw(0x28).str('storage').global('torch', v.storage.type).str(key).str('cpu').int(v.storage.numel).raw(0x74, 0x51);
        this.int(v.offset).tupleOf(v.shape).tupleOf(v.stride).value(false);
        this.global('collections', 'OrderedDict').raw(0x29, 0x52); // backward_hooks
        return this.raw(0x74, 0x52); // TUPLE, REDUCE
      }
    }
  }

  /** The pickle so far, terminated with STOP. */
  finish(): Buffer {
    return Buffer.concat([...this.chunks, Buffer.from([0x2e])]);
  }
}

/** One archive member. */
export interface ZipInput {
  name: string;
  data: Buffer;
}

/**
 * Builds a ZIP archive. `deflate` compresses every entry; `zip64` writes the sizes/offsets through
 * ZIP64 extra fields and a ZIP64 end-of-central-directory record + locator, as writers do for
 * archives over 4 GiB.
 */
export function buildZip(files: ZipInput[], opts: { deflate?: boolean; zip64?: boolean; comment?: string } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const body = opts.deflate ? deflateRawSync(f.data) : f.data;
    const crc = crc32(f.data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(opts.zip64 ? 45 : 20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(opts.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, body);

    const extra = opts.zip64 ? Buffer.alloc(4 + 24) : Buffer.alloc(0);
    if (opts.zip64) {
      extra.writeUInt16LE(0x0001, 0);
      extra.writeUInt16LE(24, 2);
      extra.writeBigUInt64LE(BigInt(f.data.length), 4);
      extra.writeBigUInt64LE(BigInt(body.length), 12);
      extra.writeBigUInt64LE(BigInt(offset), 20);
    }
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(45, 4);
    c.writeUInt16LE(opts.zip64 ? 45 : 20, 6);
    c.writeUInt16LE(0x0800, 8);
    c.writeUInt16LE(opts.deflate ? 8 : 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : body.length, 20);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : f.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(extra.length, 30);
    c.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 42);
    central.push(c, name, extra);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (opts.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4); // size of the remaining record
    rec.writeUInt16LE(45, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(files.length), 24);
    rec.writeBigUInt64LE(BigInt(files.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(offset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(offset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const comment = Buffer.from(opts.comment ?? '', 'utf8');
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : files.length, 8);
  eocd.writeUInt16LE(opts.zip64 ? 0xffff : files.length, 10);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(opts.zip64 ? 0xffffffff : offset, 16);
  eocd.writeUInt16LE(comment.length, 20);
  return Buffer.concat([...parts, cd, ...tail, eocd, comment]);
}

/**
 * A complete torch.save-style checkpoint of `obj`: `<prefix>/data.pkl`, `<prefix>/byteorder`,
 * `<prefix>/data/<key>` for every storage, `<prefix>/version`.
 */
export function buildTorchCheckpoint(
  obj: PyValue,
  opts: { prefix?: string; byteorder?: string; deflate?: boolean; zip64?: boolean } = {},
): Buffer {
  const prefix = opts.prefix ?? 'archive';
  const w = new PickleWriter().value(obj);
  const files: ZipInput[] = [{ name: `${prefix}/data.pkl`, data: w.finish() }];
  if (opts.byteorder !== undefined) files.push({ name: `${prefix}/byteorder`, data: Buffer.from(opts.byteorder) });
  for (const [storage, key] of w.storages) files.push({ name: `${prefix}/data/${key}`, data: storage.bytes });
  files.push({ name: `${prefix}/version`, data: Buffer.from('3\n') });
  return buildZip(files, { deflate: opts.deflate, zip64: opts.zip64 });
}
