/**
 * A small, safe pickle virtual machine (protocols 0–5, minus out-of-band buffers and the
 * extension registry) for reading `torch.save` files.
 *
 * Safety: nothing is ever evaluated. A GLOBAL opcode only produces a `PickleGlobal` reference;
 * calling it (REDUCE / NEWOBJ) runs a JS function only if the caller's resolver supplied one,
 * otherwise it yields an inert `PickleObject` that records what Python would have built. This is
 * what lets a training checkpoint with an `argparse.Namespace` or numpy scalars in its `args` entry
 * still be read for its state dict.
 *
 * Python → JS mapping:
 *   None → null; bool → boolean; int → number (bigint beyond ±2^53); float → number;
 *   str → string; bytes / bytearray → Buffer; list and tuple → Array (tuples are frozen);
 *   dict → Map (keys compared by identity for non-primitive keys); set / frozenset → Set;
 *   class or function reference → PickleGlobal; unknown instance → PickleObject.
 */

/** Any value the unpickler can produce. */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Buffer
  | PickleValue[]
  | Map<PickleValue, PickleValue>
  | Set<PickleValue>
  | PickleGlobal
  | PickleObject
  | object; // whatever resolvers / persistent_load return (e.g. tensors)

/**
 * JS implementation of a Python callable, supplied by a resolver.
 * @param args positional arguments (REDUCE / NEWOBJ).
 * @param kwargs keyword arguments (NEWOBJ_EX only).
 */
export type PickleCallable = (args: PickleValue[], kwargs?: Map<PickleValue, PickleValue>) => PickleValue;

/** Maps a `module.name` global to its JS implementation, or `undefined` to leave it inert. */
export type GlobalResolver = (module: string, name: string) => PickleCallable | undefined;

/** A reference to a Python global (class or function), as produced by GLOBAL / STACK_GLOBAL. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    /** The resolver's implementation; absent for unknown globals. */
    readonly fn?: PickleCallable,
  ) {}
  /** `module.name`, as Python would print it. */
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/**
 * An inert stand-in for an instance of an unknown class (or the result of calling an unknown
 * function). It records everything the pickle said about it so callers can still inspect it.
 */
export class PickleObject {
  /** State passed to BUILD (`__setstate__` / `__dict__` update), if any. */
  state: PickleValue | undefined = undefined;
  /** Items appended by APPEND(S), for list subclasses. */
  listItems: PickleValue[] = [];
  /** Items set by SETITEM(S), for dict subclasses. */
  dictItems = new Map<PickleValue, PickleValue>();
  constructor(
    readonly module: string,
    readonly name: string,
    public args: PickleValue[],
    readonly kwargs?: Map<PickleValue, PickleValue>,
  ) {}
}

/** Options of `unpickle`. */
export interface UnpickleOptions {
  /** Names the data in error messages (usually the file path, plus the entry name). */
  label?: string;
  /** Implementations of globals; consulted before `builtinGlobals`. */
  resolveGlobal?: GlobalResolver;
  /** Implements `persistent_load` for PERSID / BINPERSID; without it those opcodes fail. */
  persistentLoad?: (pid: PickleValue) => PickleValue;
}

const BUILD_STATE = new WeakMap<object, PickleValue>();

/**
 * The BUILD state that was applied to a resolved object the VM cannot mutate meaningfully (e.g. the
 * `_metadata` attribute that PyTorch sets on a state-dict `OrderedDict`). `PickleObject`s keep theirs
 * in `.state` instead.
 */
export function pickleStateOf(obj: object): PickleValue | undefined {
  return BUILD_STATE.get(obj);
}

/** Builds a frozen array, the representation of a Python tuple. */
function tuple(items: PickleValue[]): PickleValue[] {
  return Object.freeze(items) as PickleValue[];
}

/**
 * Safe implementations of the handful of standard-library globals that generic pickles need
 * (protocol 2 encodes `bytes` via `_codecs.encode`, containers via `builtins`, old-style objects
 * via `copyreg._reconstructor`). Everything else stays inert.
 */
export const builtinGlobals: GlobalResolver = (module, name) => {
  const mod = module === '__builtin__' ? 'builtins' : module;
  const key = `${mod}.${name}`;
  switch (key) {
    case 'collections.OrderedDict':
    case 'builtins.dict':
      return (args) => {
        const m = new Map<PickleValue, PickleValue>();
        const init = args[0];
        if (init instanceof Map) for (const [k, v] of init) m.set(k, v);
        else if (Array.isArray(init)) for (const kv of init) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0]!, kv[1]!);
        return m;
      };
    case 'builtins.list':
      return (args) => (Array.isArray(args[0]) ? [...args[0]] : []);
    case 'builtins.tuple':
      return (args) => tuple(Array.isArray(args[0]) ? [...args[0]] : []);
    case 'builtins.set':
    case 'builtins.frozenset':
      return (args) => new Set(Array.isArray(args[0]) ? args[0] : args[0] instanceof Set ? args[0] : []);
    case 'builtins.bytearray':
    case 'builtins.bytes':
      return (args) => {
        const a = args[0];
        if (a === undefined) return Buffer.alloc(0);
        if (Buffer.isBuffer(a)) return Buffer.from(a);
        if (typeof a === 'string') return Buffer.from(a, args[1] === 'latin1' || args[1] === 'latin-1' ? 'latin1' : 'utf8');
        if (Array.isArray(a)) return Buffer.from(a.map(Number));
        return new PickleObject(module, name, args);
      };
    case '_codecs.encode':
      // Protocol 2 writes bytes b as _codecs.encode(b.decode('latin1'), 'latin1').
      return (args) => {
        const [s, enc] = args;
        if (typeof s !== 'string') return new PickleObject(module, name, args);
        return Buffer.from(s, enc === 'latin1' || enc === 'latin-1' ? 'latin1' : 'utf8');
      };
    case 'copyreg._reconstructor':
      // _reconstructor(cls, object, None) is protocol <2's way of saying "an instance of cls".
      return (args) => {
        const cls = args[0];
        if (cls instanceof PickleGlobal) return cls.fn ? cls.fn([]) : new PickleObject(cls.module, cls.name, []);
        return new PickleObject(module, name, args);
      };
    default:
      return undefined;
  }
};

/** Opcode bytes (names as in CPython's pickle.py). */
const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, DUP: 0x32,
  FLOAT: 0x46, INT: 0x49, BININT: 0x4a, BININT1: 0x4b, LONG: 0x4c, BININT2: 0x4d, NONE: 0x4e,
  PERSID: 0x50, BINPERSID: 0x51, REDUCE: 0x52, STRING: 0x53, BINSTRING: 0x54, SHORT_BINSTRING: 0x55,
  UNICODE: 0x56, BINUNICODE: 0x58, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63, DICT: 0x64,
  EMPTY_DICT: 0x7d, APPENDS: 0x65, GET: 0x67, BINGET: 0x68, LONG_BINGET: 0x6a, LIST: 0x6c,
  EMPTY_LIST: 0x5d, PUT: 0x70, BINPUT: 0x71, LONG_BINPUT: 0x72, SETITEM: 0x73, TUPLE: 0x74,
  EMPTY_TUPLE: 0x29, SETITEMS: 0x75, BINFLOAT: 0x47,
  // protocol 2
  PROTO: 0x80, NEWOBJ: 0x81, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89,
  LONG1: 0x8a, LONG4: 0x8b,
  // protocol 3
  BINBYTES: 0x42, SHORT_BINBYTES: 0x43,
  // protocol 4
  SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e, EMPTY_SET: 0x8f, ADDITEMS: 0x90,
  FROZENSET: 0x91, NEWOBJ_EX: 0x92, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95,
  // protocol 5
  BYTEARRAY8: 0x96, NEXT_BUFFER: 0x97, READONLY_BUFFER: 0x98,
} as const;

/** Converts a signed little-endian two's-complement integer (LONG1 / LONG4 payload). */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]!);
  if (bytes[bytes.length - 1]! & 0x80) v -= 1n << BigInt(bytes.length * 8);
  return narrow(v);
}

/** A bigint as a plain number when that is exact. */
function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** Decodes a Python `repr()` string literal body (protocol 0 STRING) without eval. */
function unescapePyString(s: string, fail: (m: string) => never): Buffer {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail(`STRING argument is not quoted: ${s.slice(0, 40)}`);
  const body = s.slice(1, -1);
  const out: number[] = [];
  const simple: Record<string, number> = { '\\': 0x5c, "'": 0x27, '"': 0x22, n: 0x0a, t: 0x09, r: 0x0d, a: 0x07, b: 0x08, f: 0x0c, v: 0x0b };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      for (const b of Buffer.from(c, 'latin1')) out.push(b);
      continue;
    }
    const n = body[++i] ?? '';
    if (n in simple) out.push(simple[n]!);
    else if (n === 'x') {
      out.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (n >= '0' && n <= '7') {
      let j = i;
      while (j < i + 3 && body[j]! >= '0' && body[j]! <= '7') j++;
      out.push(parseInt(body.slice(i, j), 8) & 0xff);
      i = j - 1;
    } else if (n === '\n') {
      // line continuation: nothing
    } else out.push(0x5c, n.charCodeAt(0));
  }
  return Buffer.from(out);
}

/** Decodes Python's raw-unicode-escape (protocol 0 UNICODE): latin-1 bytes plus \uXXXX / \UXXXXXXXX. */
function decodeRawUnicodeEscape(bytes: Buffer): string {
  const s = bytes.toString('latin1');
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u4: string | undefined, u8: string | undefined) =>
    String.fromCodePoint(parseInt((u4 ?? u8)!, 16)),
  );
}

/**
 * Runs a pickle and returns the object it describes.
 * @param data the pickle bytes (one pickle; anything after STOP is ignored, as in Python).
 * @param opts resolver, persistent-id callback and error label.
 * @throws naming the label, the offset and the opcode on malformed or unsupported input.
 */
export function unpickle(data: Uint8Array, opts: UnpickleOptions = {}): PickleValue {
  const label = opts.label ?? 'pickle';
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const resolve = (module: string, name: string): PickleGlobal =>
    new PickleGlobal(module, name, opts.resolveGlobal?.(module, name) ?? builtinGlobals(module, name));

  let pos = 0;
  let opPos = 0; // offset of the opcode being executed, for error messages
  let op = 0;
  let stack: PickleValue[] = [];
  const metastack: PickleValue[][] = [];
  const memo = new Map<number, PickleValue>();

  const fail = (msg: string): never => {
    throw new Error(`${label}: bad pickle at offset ${opPos} (opcode 0x${op.toString(16).padStart(2, '0')}): ${msg}`);
  };
  const take = (n: number): Buffer => {
    if (n < 0 || pos + n > buf.length) fail(`data truncated: need ${n} bytes at offset ${pos}, only ${buf.length - pos} left`);
    const out = buf.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const readLine = (): string => {
    const nl = buf.indexOf(0x0a, pos);
    if (nl < 0) fail('data truncated: unterminated text argument');
    const line = buf.toString('utf8', pos, nl);
    pos = nl + 1;
    return line;
  };
  const u8 = (): number => take(1)[0]!;
  const u16 = (): number => take(2).readUInt16LE(0);
  const u32 = (): number => take(4).readUInt32LE(0);
  const u64 = (): number => {
    const v = take(8).readBigUInt64LE(0);
    if (v > BigInt(buf.length)) fail(`length ${v} exceeds the data size`);
    return Number(v);
  };
  const pop = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop()!;
  };
  const top = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1]!;
  };
  const popMark = (): PickleValue[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) fail('MARK expected but none on the stack');
    stack = prev!;
    return items;
  };
  const memoGet = (idx: number): PickleValue => {
    if (!memo.has(idx)) fail(`memo key ${idx} not defined`);
    return memo.get(idx)!;
  };
  const call = (callee: PickleValue, args: PickleValue[], kwargs?: Map<PickleValue, PickleValue>): PickleValue => {
    if (!(callee instanceof PickleGlobal)) fail(`cannot call a ${describe(callee)}`);
    const g = callee as PickleGlobal;
    return g.fn ? g.fn(args, kwargs) : new PickleObject(g.module, g.name, args, kwargs);
  };
  const setItems = (target: PickleValue, items: PickleValue[]): void => {
    if (items.length % 2) fail('odd number of items for SETITEMS');
    const dict = target instanceof Map ? target : target instanceof PickleObject ? target.dictItems : fail(`cannot set items on a ${describe(target)}`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i]!, items[i + 1]!);
  };
  const appendItems = (target: PickleValue, items: PickleValue[]): void => {
    if (Array.isArray(target) && !Object.isFrozen(target)) target.push(...items);
    else if (target instanceof PickleObject) target.listItems.push(...items);
    else fail(`cannot append to a ${describe(target)}`);
  };

  for (;;) {
    opPos = pos;
    if (pos >= buf.length) fail('data truncated: reached the end without a STOP opcode');
    op = buf[pos++]!;
    switch (op) {
      // --- framing and control ---
      case OP.PROTO: {
        const proto = u8();
        if (proto > 5) fail(`unsupported pickle protocol ${proto}`);
        break;
      }
      case OP.FRAME:
        u64(); // frames only batch I/O; their contents are ordinary opcodes
        break;
      case OP.STOP:
        return pop();
      case OP.MARK:
        metastack.push(stack);
        stack = [];
        break;
      case OP.POP:
        if (stack.length) stack.pop();
        else popMark(); // CPython: POP with an empty stack after MARK discards the mark
        break;
      case OP.POP_MARK:
        popMark();
        break;
      case OP.DUP:
        stack.push(top());
        break;

      // --- constants and numbers ---
      case OP.NONE:
        stack.push(null);
        break;
      case OP.NEWTRUE:
        stack.push(true);
        break;
      case OP.NEWFALSE:
        stack.push(false);
        break;
      case OP.BININT:
        stack.push(take(4).readInt32LE(0));
        break;
      case OP.BININT1:
        stack.push(u8());
        break;
      case OP.BININT2:
        stack.push(u16());
        break;
      case OP.LONG1:
        stack.push(decodeLong(take(u8())));
        break;
      case OP.LONG4: {
        const n = take(4).readInt32LE(0);
        if (n < 0) fail('negative LONG4 length');
        stack.push(decodeLong(take(n)));
        break;
      }
      case OP.INT: {
        const s = readLine().trim();
        if (s === '01') stack.push(true); // protocol 0 spelled booleans as I01 / I00
        else if (s === '00') stack.push(false);
        else if (/^[+-]?\d+$/.test(s)) stack.push(narrow(BigInt(s)));
        else fail(`bad INT argument '${s}'`);
        break;
      }
      case OP.LONG: {
        const s = readLine().trim().replace(/L$/, '');
        if (!/^[+-]?\d+$/.test(s)) fail(`bad LONG argument '${s}'`);
        stack.push(narrow(BigInt(s)));
        break;
      }
      case OP.BINFLOAT:
        stack.push(take(8).readDoubleBE(0)); // the one big-endian field in the format
        break;
      case OP.FLOAT: {
        const s = readLine().trim();
        const v = /^(nan|[+-]?inf)$/i.test(s) ? (s.toLowerCase() === 'nan' ? NaN : s.startsWith('-') ? -Infinity : Infinity) : Number(s);
        if (Number.isNaN(v) && s.toLowerCase() !== 'nan') fail(`bad FLOAT argument '${s}'`);
        stack.push(v);
        break;
      }

      // --- strings and bytes ---
      case OP.BINUNICODE:
        stack.push(take(u32()).toString('utf8'));
        break;
      case OP.SHORT_BINUNICODE:
        stack.push(take(u8()).toString('utf8'));
        break;
      case OP.BINUNICODE8:
        stack.push(take(u64()).toString('utf8'));
        break;
      case OP.UNICODE: {
        const nl = buf.indexOf(0x0a, pos);
        if (nl < 0) fail('data truncated: unterminated UNICODE argument');
        stack.push(decodeRawUnicodeEscape(buf.subarray(pos, nl)));
        pos = nl + 1;
        break;
      }
      // Python 2 `str` values: torch.load decodes them as UTF-8 (its default `encoding`), so do we.
      case OP.BINSTRING: {
        const n = take(4).readInt32LE(0);
        if (n < 0) fail('negative BINSTRING length');
        stack.push(take(n).toString('utf8'));
        break;
      }
      case OP.SHORT_BINSTRING:
        stack.push(take(u8()).toString('utf8'));
        break;
      case OP.STRING:
        stack.push(unescapePyString(readLine().trim(), fail).toString('utf8'));
        break;
      case OP.BINBYTES:
        stack.push(Buffer.from(take(u32())));
        break;
      case OP.SHORT_BINBYTES:
        stack.push(Buffer.from(take(u8())));
        break;
      case OP.BINBYTES8:
      case OP.BYTEARRAY8:
        stack.push(Buffer.from(take(u64())));
        break;
      case OP.NEXT_BUFFER:
        fail('out-of-band buffers (pickle protocol 5 NEXT_BUFFER) are not supported');
        break;
      case OP.READONLY_BUFFER:
        top(); // a no-op for us: nothing distinguishes read-only buffers
        break;

      // --- containers ---
      case OP.EMPTY_TUPLE:
        stack.push(tuple([]));
        break;
      case OP.TUPLE: {
        // popMark() swaps `stack`, so it must run before `stack.push` is looked up.
        const items = popMark();
        stack.push(tuple(items));
        break;
      }
      case OP.TUPLE1: {
        const a = pop();
        stack.push(tuple([a]));
        break;
      }
      case OP.TUPLE2: {
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case OP.TUPLE3: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case OP.EMPTY_LIST:
        stack.push([]);
        break;
      case OP.LIST: {
        const items = popMark();
        stack.push(items);
        break;
      }
      case OP.APPEND: {
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case OP.APPENDS: {
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case OP.EMPTY_DICT:
        stack.push(new Map());
        break;
      case OP.DICT: {
        const m = new Map<PickleValue, PickleValue>();
        setItems(m, popMark());
        stack.push(m);
        break;
      }
      case OP.SETITEM: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case OP.SETITEMS: {
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case OP.EMPTY_SET:
        stack.push(new Set());
        break;
      case OP.ADDITEMS: {
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail(`cannot add items to a ${describe(s)}`);
        for (const it of items) (s as Set<PickleValue>).add(it);
        break;
      }
      case OP.FROZENSET: {
        const items = popMark();
        stack.push(new Set(items));
        break;
      }

      // --- memo ---
      case OP.PUT: {
        const idx = Number(readLine().trim());
        if (!Number.isInteger(idx) || idx < 0) fail('bad PUT index');
        memo.set(idx, top());
        break;
      }
      case OP.BINPUT:
        memo.set(u8(), top());
        break;
      case OP.LONG_BINPUT:
        memo.set(u32(), top());
        break;
      case OP.MEMOIZE:
        memo.set(memo.size, top());
        break;
      case OP.GET: {
        const idx = Number(readLine().trim());
        if (!Number.isInteger(idx) || idx < 0) fail('bad GET index');
        stack.push(memoGet(idx));
        break;
      }
      case OP.BINGET:
        stack.push(memoGet(u8()));
        break;
      case OP.LONG_BINGET:
        stack.push(memoGet(u32()));
        break;

      // --- objects ---
      case OP.GLOBAL: {
        const module = readLine();
        const name = readLine();
        stack.push(resolve(module, name));
        break;
      }
      case OP.STACK_GLOBAL: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(resolve(module as string, name as string));
        break;
      }
      case OP.REDUCE: {
        const args = pop();
        const callee = pop();
        if (!Array.isArray(args)) fail(`REDUCE arguments must be a tuple, got a ${describe(args)}`);
        stack.push(call(callee, args as PickleValue[]));
        break;
      }
      case OP.NEWOBJ: {
        // cls.__new__(cls, *args): for our purposes the same as calling the class.
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) fail(`NEWOBJ arguments must be a tuple, got a ${describe(args)}`);
        stack.push(call(cls, args as PickleValue[]));
        break;
      }
      case OP.NEWOBJ_EX: {
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args) || !(kwargs instanceof Map)) fail('NEWOBJ_EX needs a tuple and a dict');
        stack.push(call(cls, args as PickleValue[], kwargs as Map<PickleValue, PickleValue>));
        break;
      }
      case OP.BUILD: {
        const state = pop();
        const obj = top();
        if (obj instanceof PickleObject) obj.state = state;
        else if (obj !== null && typeof obj === 'object') BUILD_STATE.set(obj, state);
        // BUILD on a primitive cannot come from a well-formed pickle of anything we resolve; ignore it.
        break;
      }
      case OP.PERSID:
      case OP.BINPERSID: {
        const pid = op === OP.PERSID ? readLine() : pop();
        if (!opts.persistentLoad) fail('persistent id found but no persistent_load was provided');
        stack.push(opts.persistentLoad!(pid));
        break;
      }

      default:
        fail(`unknown or unsupported opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

/** Short human description of a value's type, for error messages. */
export function describe(v: PickleValue | undefined): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return Object.isFrozen(v) ? `tuple of ${v.length}` : `list of ${v.length}`;
  if (v instanceof Map) return `dict of ${v.size}`;
  if (v instanceof Set) return 'set';
  if (Buffer.isBuffer(v)) return 'bytes';
  if (v instanceof PickleGlobal) return `reference to ${v.qualifiedName}`;
  if (v instanceof PickleObject) return `${v.module}.${v.name} object`;
  if (typeof v === 'object') return v.constructor?.name ?? 'object';
  return typeof v;
}
