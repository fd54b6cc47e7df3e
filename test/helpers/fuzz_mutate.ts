/**
 * Seeded mutations for the reader fuzz test (test/fuzz_readers.test.ts): a seeded generator, byte-level
 * mutations of any file, and structure-aware mutations of JSON-like values (type swaps, deleted
 * keys, extreme numbers, deep nesting, long strings). Everything is deterministic in the seed, so
 * a failing case repeats from its seed and index.
 */
import { Rng as BaseRng } from '../../src/nn/random.ts';

/** The project's seeded generator (xoshiro128**) with the helpers the mutations use. */
export class Rng {
  private readonly base: BaseRng;

  constructor(seed: number) {
    this.base = new BaseRng(seed >>> 0);
  }

  /** The generator of case `index` under `seed`: cases are independent, so one can be rerun alone. */
  static forCase(seed: number, index: number): Rng {
    return new Rng(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.base.uniform();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

/** Text tokens that JSON.stringify cannot write; placed as strings, swapped in by {@link toJsonText}. */
const RAW = '\u0001raw:';
/** A value that serializes to `text` verbatim (e.g. `1e400`, `NaN`, deep brackets). */
export const raw = (text: string): string => `${RAW}${text}\u0001`;

/** Numbers that break readers: signs, zero, 2^k edges, huge, tiny, non-integers, and non-finite tokens. */
export const NASTY_NUMBERS: readonly (number | string)[] = [
  0, -0, -1, 1, 0.5, -0.5, 1e-320, 3, 255, 256, 65535, 46341, 1e5, 1e7, 429496729, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1,
  2 ** 32, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 1e9, -1e9, 1e20, 1e308, -1e308,
  raw('1e400'), raw('-1e400'), raw('NaN'), raw('Infinity'), raw('-'), raw('1e'), raw('0x10'), raw('01'),
];

/** Values of every JSON type, for type swaps. */
const SWAP_VALUES: readonly (() => unknown)[] = [
  () => null, () => true, () => false, () => 0, () => -1, () => '', () => 'x', () => '1', () => [], () => {
    return {};
  }, () => [1, 2, 3, 4], () => [[1, 2, 3, 4, 5, 6]], () => ({ size: [2, 2], counts: '04' }), () => [null], () => ['a'],
];

type Container = Record<string, unknown> | unknown[];
interface Slot {
  parent: Container;
  key: string | number;
  value: unknown;
}

const isContainer = (v: unknown): v is Container => typeof v === 'object' && v !== null;

/** Every (parent, key) slot of `root`, depth-first (the root itself is not a slot). */
export function slots(root: unknown): Slot[] {
  const out: Slot[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (!isContainer(v)) continue;
    const keys: (string | number)[] = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
    for (const k of keys) {
      const child = (v as Record<string | number, unknown>)[k];
      out.push({ parent: v, key: k, value: child });
      stack.push(child);
    }
  }
  return out;
}

function set(s: Slot, value: unknown): void {
  (s.parent as Record<string | number, unknown>)[s.key] = value;
}

function remove(s: Slot): void {
  if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
  else delete s.parent[s.key as string];
}

/** Brackets `depth` deep around a value (as raw text). */
export function nested(depth: number, inner = '0'): string {
  return raw('['.repeat(depth) + inner + ']'.repeat(depth));
}

/**
 * One structure-aware mutation of the JSON-like tree `root` (in place); returns its name. `list`
 * lets a caller aim at part of the tree; by default every slot is a target.
 */
export function mutateTree(rng: Rng, root: unknown, list: Slot[] = slots(root)): string {
  if (list.length === 0) return 'none';
  const s = rng.pick(list);
  const r = rng.int(12);
  switch (r) {
    case 0:
    case 1:
      set(s, rng.pick(SWAP_VALUES)());
      return 'swap-type';
    case 2:
    case 3:
      remove(s);
      return 'delete';
    case 4:
    case 5:
      set(s, rng.pick(NASTY_NUMBERS));
      return 'nasty-number';
    case 6:
      set(s, typeof s.value === 'number' ? String(s.value) : rng.pick(NASTY_NUMBERS));
      return 'number-as-string';
    case 7:
      set(s, nested(rng.pick([2, 50, 1000, 20000, 200000]), rng.chance(0.5) ? '0' : '{}'));
      return 'deep-nesting';
    case 8:
      set(s, 'x'.repeat(rng.pick([1000, 100000, 1000000])));
      return 'long-string';
    case 9:
      if (Array.isArray(s.parent)) {
        const times = rng.pick([1, 2, 100]);
        s.parent.splice(s.key as number, 0, ...Array.from({ length: times }, () => structuredClone(s.value)));
        return 'duplicate-element';
      }
      s.parent[rng.pick(['__proto__', 'constructor', 'size', 'counts', 'id', 'x'.repeat(10000)])] = structuredClone(s.value);
      return 'add-key';
    case 10:
      if (Array.isArray(s.value)) {
        const times = rng.pick([2, 3, 1000]);
        set(s, Array.from({ length: times }, () => structuredClone(s.value)).flat());
        return 'repeat-array';
      }
      set(s, [s.value]);
      return 'wrap-in-array';
    default:
      if (isContainer(s.value)) set(s, Array.isArray(s.value) ? Object.fromEntries(s.value.map((v, i) => [i, v])) : Object.values(s.value));
      else set(s, { value: s.value });
      return 'array-object-swap';
  }
}

/** JSON text of `v` with the {@link raw} tokens swapped in. */
export function toJsonText(v: unknown): string {
  return JSON.stringify(v).replace(/"\\u0001raw:(.*?)\\u0001"/g, (_m, text: string) => text);
}

const NASTY_BYTES = [0, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x0a, 0x09, 0x30, 0x6f, 0xc3];

/** One byte-level mutation (flips, sets, truncation, insertion, deletion, duplicated chunks). */
export function mutateBytes(rng: Rng, buf: Uint8Array): { bytes: Uint8Array; name: string } {
  const n = buf.length;
  const at = (): number => rng.int(n + 1);
  switch (rng.int(7)) {
    case 0: {
      const out = Uint8Array.from(buf);
      for (let k = 1 + rng.int(8); k > 0 && n > 0; k--) out[rng.int(n)] ^= 1 << rng.int(8);
      return { bytes: out, name: 'bit-flip' };
    }
    case 1: {
      const out = Uint8Array.from(buf);
      for (let k = 1 + rng.int(4); k > 0 && n > 0; k--) out[rng.int(n)] = rng.chance(0.5) ? rng.pick(NASTY_BYTES) : rng.int(256);
      return { bytes: out, name: 'set-byte' };
    }
    case 2:
      return { bytes: buf.slice(0, rng.int(n)), name: 'truncate' };
    case 3: {
      const p = at();
      const ins = Uint8Array.from({ length: 1 + rng.int(64) }, () => rng.int(256));
      return { bytes: concat(buf.subarray(0, p), ins, buf.subarray(p)), name: 'insert' };
    }
    case 4: {
      const p = at();
      return { bytes: concat(buf.subarray(0, p), buf.subarray(Math.min(n, p + 1 + rng.int(32)))), name: 'delete' };
    }
    case 5: {
      const p = at();
      const q = Math.min(n, p + 1 + rng.int(256));
      const chunk = buf.subarray(p, q);
      const times = rng.pick([1, 2, 10]);
      const d = at();
      return { bytes: concat(buf.subarray(0, d), ...Array.from({ length: times }, () => chunk), buf.subarray(d)), name: 'duplicate-chunk' };
    }
    default: {
      const out = Uint8Array.from(buf);
      const p = rng.int(Math.max(1, n - 8));
      const q = rng.int(Math.max(1, n - 8));
      const len = Math.min(1 + rng.int(8), n - Math.max(p, q));
      if (len > 0) out.copyWithin(p, q, q + len);
      return { bytes: out, name: 'overwrite-chunk' };
    }
  }
}

/** Concatenation of byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
