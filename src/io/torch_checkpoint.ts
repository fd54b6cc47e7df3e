/**
 * Reader for PyTorch checkpoints in the zip format that `torch.save` writes by default since 1.6
 * (`.pth`, `.pt`, `.pth.tar`, `.bin`: all the same format).
 *
 * Layout of such an archive (`<prefix>` is any single folder name, e.g. `archive` or the file stem):
 *   <prefix>/data.pkl     the pickled object; every tensor storage appears as a persistent id
 *                         ('storage', torch.XStorage, key, location, numel)
 *   <prefix>/data/<key>   raw little-endian bytes of that storage
 *   <prefix>/byteorder    'little' or 'big' (absent in older files, meaning little)
 *
 * Tensors are built lazily: unpickling records (storage, offset, shape, strides) and only the
 * tensors of the chosen state dict are decoded, so optimizer state and EMA copies in a training
 * checkpoint cost no memory or time.
 */
import { DTYPE_SIZE, allocWidened, decodeElements } from './dtype_codec.ts';
import { PickleGlobal, PickleObject, describe, unpickle, type GlobalResolver, type PickleValue } from './pickle.ts';
import { readWholeFile } from './read_file.ts';
import { numel, type DType, type RawTensor, type TensorDict } from './tensor_data.ts';
import { openZip, type ZipArchive } from './zip.ts';

/** Options of `readTorchCheckpoint`. */
export interface ReadTorchCheckpointOptions {
  /** Top-level entry holding the state dict; by default the first of `state_dict`, `state_dict_ema`, `model` that is one. */
  key?: string;
}

/** Legacy storage class name → element type. */
const STORAGE_DTYPES: Readonly<Record<string, DType>> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8', // bytes; only meaningful with _rebuild_tensor_v3, which names the dtype
};

/** `torch.<name>` dtype globals (as passed to `_rebuild_tensor_v3`) → element type. */
const TORCH_DTYPES: Readonly<Record<string, DType>> = {
  float32: 'float32', float: 'float32', float16: 'float16', half: 'float16', bfloat16: 'bfloat16',
  float64: 'float64', double: 'float64', int64: 'int64', long: 'int64', int32: 'int32', int: 'int32',
  int16: 'int16', short: 'int16', int8: 'int8', uint8: 'uint8', bool: 'bool',
};

/** `pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)` minus the trailing STOP: how legacy files begin. */
const LEGACY_MAGIC = Buffer.from('80028a0a6cfc9c46f9206aa85019', 'hex');

/** One storage of the archive: its element type and raw bytes (a view into the file buffer). */
class TorchStorage {
  constructor(
    readonly dtype: DType,
    readonly key: string,
    readonly bytes: Buffer,
    /** Number of elements. */
    readonly numel: number,
  ) {}
}

/** A storage whose element type we cannot decode (complex, quantized, float8, …). */
class UnsupportedStorage {
  constructor(readonly typeName: string) {}
}

/** A tensor that has been described by the pickle but not decoded yet. */
class LazyTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly dtype: DType,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/**
 * Stand-in for a tensor this reader cannot decode. It only causes an error if it lands in the
 * chosen state dict; elsewhere (optimizer state, extra entries) it is harmless.
 */
export class UnsupportedTensor {
  constructor(readonly reason: string) {}
}

/** Whether a value is a decoded tensor (`RawTensor`). */
export function isRawTensor(v: unknown): v is RawTensor {
  if (v === null || typeof v !== 'object') return false;
  const t = v as Partial<RawTensor>;
  return typeof t.dtype === 'string' && Array.isArray(t.shape) && ArrayBuffer.isView(t.data);
}

function isIntArray(v: PickleValue): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isInteger(x) && (x as number) >= 0);
}

/** Decodes a lazy tensor into a contiguous C-order RawTensor, honouring storage offset and strides. */
function materialize(t: LazyTensor, where: string): RawTensor {
  const { storage, dtype, offset, shape, stride } = t;
  const n = numel(shape);
  if (n === 0) return { dtype, shape: [...shape], data: allocWidened(dtype, 0) };
  const size = DTYPE_SIZE[dtype];
  const available = Math.floor((storage.numel * DTYPE_SIZE[storage.dtype]) / size); // in elements of `dtype`
  let last = offset; // highest element index touched
  for (let i = 0; i < shape.length; i++) last += (shape[i]! - 1) * stride[i]!;
  if (last >= available) {
    throw new Error(
      `${where}: tensor of shape [${shape}] with strides [${stride}] at offset ${offset} needs ${last + 1} elements but storage '${storage.key}' has ${available}`,
    );
  }
  const bytes = storage.bytes.subarray(offset * size);
  if (isContiguous(shape, stride)) return { dtype, shape: [...shape], data: decodeElements(bytes, dtype, n) };
  // Decode the touched range once, then gather in C order.
  const src = decodeElements(bytes, dtype, last - offset + 1);
  const out = allocWidened(dtype, n);
  gather(src, out, shape, stride);
  return { dtype, shape: [...shape], data: out };
}

/** C-contiguity, ignoring the strides of size-1 dimensions (PyTorch does the same). */
function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

/** Copies a strided view of `src` (element 0 = the view's origin) into `out` in C order. */
function gather(src: RawTensor['data'], out: RawTensor['data'], shape: number[], stride: number[]): void {
  const nd = shape.length;
  const lastN = shape[nd - 1]!;
  const lastS = stride[nd - 1]!;
  const idx = new Array<number>(nd).fill(0);
  let base = 0;
  let o = 0;
  for (;;) {
    for (let j = 0; j < lastN; j++) out[o++] = src[base + j * lastS]!;
    // Odometer increment over the outer dimensions.
    let d = nd - 2;
    for (; d >= 0; d--) {
      idx[d]!++;
      base += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      base -= idx[d]! * stride[d]!;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

/**
 * Builds a LazyTensor from `_rebuild_tensor*` arguments; bad arguments fail loudly because they
 * mean a corrupt file, not junk we may skip.
 */
function rebuildTensor(storage: PickleValue, offset: PickleValue, size: PickleValue, stride: PickleValue, dtype: DType | undefined, fail: (m: string) => never): PickleValue {
  if (storage instanceof UnsupportedStorage) return new UnsupportedTensor(`storage type torch.${storage.typeName} is not supported`);
  if (!(storage instanceof TorchStorage)) return fail(`tensor storage is a ${describe(storage)}, expected a persistent storage`);
  if (!Number.isInteger(offset) || (offset as number) < 0) fail(`bad storage offset ${String(offset)}`);
  if (!isIntArray(size) || !isIntArray(stride) || size.length !== stride.length) {
    fail(`bad tensor size/stride ${describe(size)} / ${describe(stride)}`);
  }
  let target = storage.dtype;
  if (dtype !== undefined && dtype !== storage.dtype) {
    // _rebuild_tensor_v3 over an untyped (byte) storage: reinterpret; the offset counts elements of `dtype`.
    if (storage.dtype !== 'uint8') fail(`cannot view a ${storage.dtype} storage as ${dtype}`);
    target = dtype;
  }
  return new LazyTensor(storage, target, offset as number, [...(size as number[])], [...(stride as number[])]);
}

interface ArchiveLayout {
  zip: ZipArchive;
  /** Folder of data.pkl, with trailing slash (possibly ''). */
  prefix: string;
}

/** Finds `<prefix>/data.pkl`, preferring the shallowest one. */
function locateData(zip: ZipArchive, label: string): ArchiveLayout {
  const pkls = zip.names().filter((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
  if (pkls.length === 0) {
    throw new Error(`${label}: ZIP archive has no data.pkl entry, so it is not a torch.save checkpoint (entries: ${zip.names().slice(0, 8).join(', ')})`);
  }
  pkls.sort((a, b) => a.split('/').length - b.split('/').length);
  const name = pkls[0]!;
  return { zip, prefix: name.slice(0, name.length - 'data.pkl'.length) };
}

/** Explains non-zip inputs: legacy format, empty file, something else. */
function rejectNonZip(buf: Buffer, label: string): never {
  if (buf.length === 0) throw new Error(`${label}: file is empty, not a PyTorch checkpoint`);
  // Byte 1 is the pickle protocol, which `torch.save(pickle_protocol=...)` may have changed.
  const isLegacy = buf[0] === 0x80 && buf.subarray(2, LEGACY_MAGIC.length).equals(LEGACY_MAGIC.subarray(2));
  if (isLegacy) {
    throw new Error(
      `${label}: legacy (pre-1.6, non-zip) PyTorch checkpoint format, which is not supported. ` +
        `Re-save it in the zip format: load it with PyTorch >= 1.6 and call torch.save(obj, path), e.g. ` +
        `python -c "import torch; torch.save(torch.load('${label}', map_location='cpu', weights_only=False), 'resaved.pth')" ` +
        `(the zip format is the default since PyTorch 1.6).`,
    );
  }
  const head = buf.subarray(0, 8).toString('hex').replace(/(..)/g, '$1 ').trim();
  if (buf[0] === 0x80) {
    throw new Error(`${label}: a raw pickle, not a torch.save checkpoint (no ZIP header, no legacy magic number); first bytes: ${head}`);
  }
  throw new Error(`${label}: not a PyTorch checkpoint (neither the zip format nor the legacy format); first bytes: ${head}`);
}

/**
 * Unpickles a checkpoint, leaving tensors lazy. `torchScript` tells whether the archive came from
 * `torch.jit.save` (it has data.pkl too, but holds modules rather than a state dict).
 * @throws naming `label` for every format problem.
 */
function unpickleCheckpoint(buf: Buffer, label: string): { root: PickleValue; torchScript: boolean } {
  if (buf.length < 4 || buf.readUInt32LE(0) !== 0x04034b50) rejectNonZip(buf, label);
  const { zip, prefix } = locateData(openZip(buf, label), label);

  if (zip.has(`${prefix}byteorder`)) {
    const order = zip.read(`${prefix}byteorder`).toString('utf8').trim();
    if (order !== 'little') {
      throw new Error(`${label}: tensors are stored with byteorder '${order}'; only little-endian checkpoints are supported (re-save it on a little-endian machine)`);
    }
  }

  const pklLabel = `${label} (${prefix}data.pkl)`;
  const fail = (m: string): never => {
    throw new Error(`${pklLabel}: ${m}`);
  };
  const storages = new Map<string, TorchStorage>();

  const persistentLoad = (pid: PickleValue): PickleValue => {
    if (!Array.isArray(pid) || pid.length < 5 || pid[0] !== 'storage') {
      return fail(`unsupported persistent id ${describe(pid)} (expected ('storage', type, key, location, numel))`);
    }
    const [, type, key, , count] = pid as PickleValue[];
    if (typeof key !== 'string') return fail(`storage key is a ${describe(key)}`);
    if (!(type instanceof PickleGlobal)) return fail(`storage type is a ${describe(type)}`);
    const dtype = Object.hasOwn(STORAGE_DTYPES, type.name) ? STORAGE_DTYPES[type.name] : undefined;
    if (type.module !== 'torch' || !dtype) return new UnsupportedStorage(type.name);
    if (!Number.isInteger(count) || (count as number) < 0) return fail(`storage '${key}' has a bad element count ${String(count)}`);
    const cached = storages.get(key);
    if (cached) return cached;
    const entry = `${prefix}data/${key}`;
    if (!zip.has(entry)) return fail(`storage '${key}' is missing: no entry '${entry}' in the archive`);
    const bytes = zip.read(entry);
    const need = (count as number) * DTYPE_SIZE[dtype];
    if (bytes.length < need) fail(`storage '${key}' holds ${bytes.length} bytes, expected ${need} (${count} × ${dtype})`);
    const s = new TorchStorage(dtype, key, bytes, count as number);
    storages.set(key, s);
    return s;
  };

  const resolveGlobal: GlobalResolver = (module, name) => {
    if (module === 'collections' && name === 'OrderedDict') {
      return () => new Map<PickleValue, PickleValue>();
    }
    if (module === 'torch._utils') {
      switch (name) {
        case '_rebuild_tensor_v2': // (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
        case '_rebuild_tensor': // (storage, offset, size, stride)
          return (a) => rebuildTensor(a[0] ?? null, a[1] ?? null, a[2] ?? null, a[3] ?? null, undefined, fail);
        case '_rebuild_tensor_v3': {
          // (storage, offset, size, stride, requires_grad, backward_hooks, dtype[, metadata])
          return (a) => {
            const dt = a[6];
            const dtype = dt instanceof PickleGlobal && dt.module === 'torch' && Object.hasOwn(TORCH_DTYPES, dt.name) ? TORCH_DTYPES[dt.name] : undefined;
            if (!dtype) return new UnsupportedTensor(`dtype ${describe(dt ?? null)} is not supported`);
            return rebuildTensor(a[0] ?? null, a[1] ?? null, a[2] ?? null, a[3] ?? null, dtype, fail);
          };
        }
        case '_rebuild_parameter': // (data, requires_grad, backward_hooks)
        case '_rebuild_parameter_with_state': // (data, requires_grad, backward_hooks, state)
          return (a) => a[0] ?? null;
      }
    }
    if (module === 'torch._tensor' && name === '_rebuild_from_type_v2') {
      // (func, new_type, args, state): tensor subclasses; the data is what func builds.
      return (a) => {
        const [func, , args] = a;
        if (func instanceof PickleGlobal && func.fn && Array.isArray(args)) return func.fn(args);
        return new PickleObject(module, name, a);
      };
    }
    // torch.XStorage classes stay inert references: they only appear inside persistent ids.
    return undefined;
  };

  const root = unpickle(zip.read(`${prefix}data.pkl`), { label: pklLabel, resolveGlobal, persistentLoad });
  return { root, torchScript: zip.has(`${prefix}constants.pkl`) };
}

/**
 * Replaces every LazyTensor reachable from `root` by its RawTensor. Mutable containers are updated
 * in place; frozen tuples that (transitively) hold tensors are rebuilt. Shared values stay shared
 * and cycles terminate, because every container is converted once.
 */
function materializeAll(root: PickleValue, label: string): PickleValue {
  const converted = new Map<object, PickleValue>(); // original → its replacement (often itself)
  const conv = (v: PickleValue, where: string): PickleValue => {
    if (v === null || typeof v !== 'object') return v;
    const known = converted.get(v);
    if (known !== undefined) return known;
    if (v instanceof LazyTensor) {
      const t = materialize(v, where);
      converted.set(v, t);
      return t;
    }
    converted.set(v, v); // provisional, so that a cycle back to `v` ends here
    if (v instanceof Map) {
      for (const [k, x] of v) v.set(k, conv(x, `${where}[${typeof k === 'string' ? `'${k}'` : describe(k)}]`));
    } else if (Array.isArray(v)) {
      const items = v.map((x, i) => conv(x, `${where}[${i}]`));
      if (Object.isFrozen(v)) {
        if (items.some((x, i) => x !== v[i])) {
          const copy = Object.freeze(items);
          converted.set(v, copy);
          return copy;
        }
      } else {
        items.forEach((x, i) => (v[i] = x));
      }
    } else if (v instanceof PickleObject) {
      if (v.state !== undefined) v.state = conv(v.state, `${where}.state`);
      v.args = v.args.map((x, i) => conv(x, `${where}.args[${i}]`));
      v.listItems = v.listItems.map((x, i) => conv(x, `${where}[${i}]`));
      for (const [k, x] of v.dictItems) v.dictItems.set(k, conv(x, `${where}[${describe(k)}]`));
      if (v.kwargs) for (const [k, x] of v.kwargs) v.kwargs.set(k, conv(x, `${where}.kwargs[${describe(k)}]`));
    }
    // Sets, Buffers and resolver results are left alone: checkpoints never keep tensors in them.
    return v;
  };
  return conv(root, label);
}

/**
 * Parses a `torch.save` zip checkpoint held in memory and returns the whole unpickled object, with
 * every tensor decoded to a RawTensor (dicts are Maps; see `pickle.ts` for the full mapping).
 * Tensors of unsupported types become `UnsupportedTensor`; unknown classes `PickleObject`.
 * @param buf the file contents.
 * @param label names the file in errors.
 * @throws naming `label` when the data is not a zip checkpoint, is legacy, truncated or corrupt.
 */
export function parseTorchCheckpoint(buf: Buffer, label: string): PickleValue {
  return materializeAll(unpickleCheckpoint(buf, label).root, label);
}

/** Whether `v` is a dict with at least one (possibly undecodable) tensor under a string key. */
function isTensorDict(v: PickleValue | undefined): v is Map<PickleValue, PickleValue> {
  if (!(v instanceof Map)) return false;
  for (const [k, x] of v) if (typeof k === 'string' && (x instanceof LazyTensor || x instanceof UnsupportedTensor)) return true;
  return false;
}

function listKeys(m: Map<PickleValue, PickleValue>): string {
  const keys = [...m.keys()].map((k) => (typeof k === 'string' ? `'${k}'` : describe(k)));
  return keys.length > 20 ? `${keys.slice(0, 20).join(', ')}, … (${keys.length} in all)` : keys.join(', ') || '(none)';
}

/** Applies the unwrap rules documented on `readTorchCheckpoint`. */
function chooseStateDict(root: PickleValue, label: string, key: string | undefined): Map<PickleValue, PickleValue> {
  if (!(root instanceof Map)) {
    throw new Error(`${label}: checkpoint holds a ${describe(root)}, not a dict; expected a state dict or a dict containing one`);
  }
  if (key !== undefined) {
    if (!root.has(key)) throw new Error(`${label}: no top-level entry '${key}'; available keys: ${listKeys(root)}`);
    const v = root.get(key);
    if (!isTensorDict(v)) throw new Error(`${label}: entry '${key}' is a ${describe(v)}, not a dict of tensors`);
    return v;
  }
  for (const k of ['state_dict', 'state_dict_ema', 'model']) {
    const v = root.get(k);
    if (isTensorDict(v)) return v;
  }
  if (isTensorDict(root)) return root;
  throw new Error(
    `${label}: found no state dict: none of 'state_dict', 'state_dict_ema', 'model' is a dict of tensors and the top level holds no tensors ` +
      `(top-level keys: ${listKeys(root)}); pass the entry to use as \`key\``,
  );
}

/**
 * Reads the state dict of a PyTorch checkpoint written by `torch.save` (zip format).
 *
 * Unwrapping: with `opts.key`, that top-level entry; otherwise the first of `state_dict`,
 * `state_dict_ema`, `model` that is a dict of tensors, else the top-level dict itself. Non-tensor
 * entries are dropped, and a `module.` prefix (from DataParallel) is stripped when every key has it.
 * Values keep PyTorch layouts; see `RawTensor` for how dtypes are widened.
 * @throws naming `path` when it is missing, legacy-format, truncated or corrupt, when no state dict
 *   is found, or when a tensor in it has an unsupported type.
 */
export async function readTorchCheckpoint(path: string, opts: ReadTorchCheckpointOptions = {}): Promise<TensorDict> {
  const buf = await readWholeFile(path, 'PyTorch checkpoint');
  const { root, torchScript } = unpickleCheckpoint(buf, path);
  let chosen: Map<PickleValue, PickleValue>;
  try {
    chosen = chooseStateDict(root, path, opts.key);
  } catch (err) {
    if (!torchScript) throw err;
    throw new Error(
      `${(err as Error).message}. This is a TorchScript archive (torch.jit.save); save the weights with torch.save(model.state_dict(), path) instead`,
    );
  }

  const out: TensorDict = new Map();
  for (const [k, v] of chosen) {
    if (typeof k !== 'string') continue;
    if (v instanceof UnsupportedTensor) throw new Error(`${path}: tensor '${k}': ${v.reason}`);
    if (v instanceof LazyTensor) out.set(k, materialize(v, `${path}: tensor '${k}'`));
  }
  const keys = [...out.keys()];
  if (keys.length > 0 && keys.every((k) => k.startsWith('module.'))) {
    return new Map([...out].map(([k, v]) => [k.slice('module.'.length), v]));
  }
  return out;
}
