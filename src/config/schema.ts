/**
 * A small schema DSL for config validation. Every error names the file, the key path, the bad
 * value and what is allowed; closed dicts reject unknown keys (with a suggestion) instead of
 * ignoring them, so a misspelt option cannot silently fall back to its default.
 *
 * ```ts
 * const s = obj({ lr: num({ min: 0 }), policy: str({ enum: ['poly', 'step'] as const }) });
 * const v = validate(s, data, 'optimizer', 'configs/x.yaml'); // { lr: number; policy: 'poly' | 'step' }
 * ```
 */
import { ConfigError, didYouMean, where } from './errors.ts';
import { formatValue } from '../util/format_value.ts';
import { childPath as child, lookupType } from './lookup.ts';

/** What kind of YAML value a schema accepts; `oneOf` uses it to pick the error worth reporting. */
export type Kind = 'number' | 'string' | 'boolean' | 'null' | 'list' | 'dict' | 'any';

export interface Schema<T> {
  readonly kind: Kind;
  /** "an integer >= 1", for "expected ..." messages. */
  readonly expected: string;
  /** Returns the validated value (defaults filled in) or throws a ConfigError. */
  check(value: unknown, path: string, file: string | undefined): T;
  /** Set by {@link optional}: a missing key is allowed. */
  readonly optional?: boolean;
}

/** The value type a schema produces. */
export type Infer<S> = S extends Schema<infer T> ? T : never;

function kindOf(v: unknown): Kind {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  if (typeof v === 'object') return 'dict';
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return typeof v as Kind;
  return 'any';
}

function fail(file: string | undefined, path: string, msg: string, details: { value?: unknown; allowed?: readonly string[] | string } = {}): never {
  throw new ConfigError(`${where(file, path)}: ${msg}`, { file, path, ...details });
}

function expectedGot(file: string | undefined, path: string, expected: string, value: unknown): never {
  return fail(file, path, `expected ${expected}, got ${formatValue(value)}`, { value, allowed: expected });
}

export interface NumOptions {
  min?: number;
  max?: number;
  int?: boolean;
}

/** A number (finite), optionally an integer and within [min, max]. */
export function num(opts: NumOptions = {}): Schema<number> {
  const noun = opts.int ? 'an integer' : 'a number';
  const { min, max } = opts;
  const expected =
    min !== undefined && max !== undefined ? `${noun} in [${min}, ${max}]`
      : min !== undefined ? `${noun} >= ${min}`
        : max !== undefined ? `${noun} <= ${max}`
          : noun;
  return {
    kind: 'number',
    expected,
    check(v, path, file) {
      const ok = typeof v === 'number' && Number.isFinite(v) && (!opts.int || Number.isInteger(v)) &&
        (min === undefined || v >= min) && (max === undefined || v <= max);
      return ok ? (v as number) : expectedGot(file, path, expected, v);
    },
  };
}

/** An integer; shorthand for `num({ ...opts, int: true })`. */
export const int = (opts: Omit<NumOptions, 'int'> = {}): Schema<number> => num({ ...opts, int: true });

/** A string, optionally one of `enum` (misspellings get a suggestion). */
export function str<const E extends string>(opts: { enum: readonly E[] }): Schema<E>;
export function str(opts?: { enum?: undefined }): Schema<string>;
export function str(opts: { enum?: readonly string[] } = {}): Schema<string> {
  const values = opts.enum;
  const expected = values ? `one of ${values.map((e) => `'${e}'`).join(', ')}` : 'a string';
  return {
    kind: 'string',
    expected,
    check(v, path, file) {
      if (typeof v !== 'string') return expectedGot(file, path, expected, v);
      if (values && !values.includes(v)) return fail(file, path, `expected ${expected}, got ${formatValue(v)}${didYouMean(v, values)}`, { value: v, allowed: values });
      return v;
    },
  };
}

export function bool(): Schema<boolean> {
  return {
    kind: 'boolean',
    expected: 'true or false',
    check: (v, path, file) => (typeof v === 'boolean' ? v : expectedGot(file, path, 'true or false', v)),
  };
}

/** Exactly `null` (YAML `null` or `~`); combine with {@link oneOf} for nullable values. */
export function nul(): Schema<null> {
  return { kind: 'null', expected: 'null', check: (v, path, file) => (v === null ? null : expectedGot(file, path, 'null', v)) };
}

/** Anything; for sub-blocks validated by the code that consumes them (pipelines, datasets). */
export function any(): Schema<unknown> {
  return { kind: 'any', expected: 'anything', check: (v) => v };
}

/** A list of `item`s, optionally of exactly `len` elements. */
export function list<T>(item: Schema<T>, opts: { len?: number } = {}): Schema<T[]> {
  const expected = `a list of ${opts.len !== undefined ? `${opts.len} ` : ''}elements (each ${item.expected})`;
  return {
    kind: 'list',
    expected,
    check(v, path, file) {
      if (!Array.isArray(v)) return expectedGot(file, path, expected, v);
      if (opts.len !== undefined && v.length !== opts.len) return fail(file, path, `expected a list of ${opts.len} elements, got ${v.length}: ${formatValue(v)}`);
      return v.map((x, i) => item.check(x, child(path, i), file));
    },
  };
}

type Fields = Record<string, Schema<unknown>>;
/** The validated dict type: keys of `optional(x)` without a default may be undefined. */
export type ObjType<F extends Fields> = { [K in keyof F]: Infer<F[K]> };

/**
 * A dict with the given fields. Missing non-optional fields are errors; unknown keys are errors
 * listing the allowed ones, unless `open` (then they pass through unvalidated, for blocks whose
 * remaining keys belong to another builder).
 */
export function obj<F extends Fields>(fields: F, opts: { open: true }): Schema<ObjType<F> & Record<string, unknown>>;
export function obj<F extends Fields>(fields: F, opts?: { open?: false }): Schema<ObjType<F>>;
export function obj<F extends Fields>(fields: F, opts: { open?: boolean } = {}): Schema<ObjType<F>> {
  const allowed = Object.keys(fields);
  const expected = 'a dict';
  return {
    kind: 'dict',
    expected,
    check(v, path, file) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return expectedGot(file, path, expected, v);
      const src = v as Record<string, unknown>;
      // Unknown keys first: a misspelt key usually also explains a "missing" one.
      if (!opts.open) {
        for (const k of Object.keys(src)) {
          if (!Object.hasOwn(fields, k)) fail(file, child(path, k), `unknown key '${k}'; allowed: ${allowed.join(', ')}${didYouMean(k, allowed)}`, { value: src[k], allowed });
        }
      }
      const checked: Record<string, unknown> = {};
      for (const [k, schema] of Object.entries(fields)) {
        if (!Object.hasOwn(src, k) && !schema.optional) fail(file, path, `missing required key '${k}' (${schema.expected})`);
        checked[k] = schema.check(src[k], child(path, k), file);
      }
      // Keep the file's key order (then defaults), so dumps and logs read like the config.
      const out: Record<string, unknown> = {};
      // defineProperty: a `__proto__` key stays data instead of replacing the prototype.
      const put = (k: string, v: unknown) => Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
      for (const k of Object.keys(src)) put(k, Object.hasOwn(checked, k) ? checked[k] : src[k]);
      for (const [k, v] of Object.entries(checked)) if (!Object.hasOwn(out, k) && v !== undefined) put(k, v);
      return out as ObjType<F>;
    },
  };
}

/** The first alternative that accepts the value (a union type). */
export function oneOf<S extends Schema<unknown>[]>(...alts: S): Schema<Infer<S[number]>> {
  const expected = alts.map((a) => a.expected).join(' or ');
  const kinds = new Set(alts.map((a) => a.kind));
  return {
    kind: kinds.size === 1 ? alts[0].kind : 'any',
    expected,
    check(v, path, file) {
      const errors: ConfigError[] = [];
      for (const a of alts) {
        try {
          return a.check(v, path, file) as Infer<S[number]>;
        } catch (e) {
          if (!(e instanceof ConfigError)) throw e;
          errors.push(e);
        }
      }
      // When exactly one alternative takes this kind of value (e.g. the only dict one), its
      // error is the specific one (a bad nested key); otherwise list every alternative.
      const k = kindOf(v);
      const same = alts.map((a, i) => (a.kind === k ? i : -1)).filter((i) => i >= 0);
      if (same.length === 1 && (k === 'dict' || k === 'list')) throw errors[same[0]];
      // For scalars the union is the clearer message, keeping a leaf's suggestion if it had one.
      const hint = same.length === 1 ? / \(did you mean '[^']*'\?\)$/.exec(errors[same[0]].message)?.[0] ?? '' : '';
      return fail(file, path, `expected ${expected}, got ${formatValue(v)}${hint}`);
    },
  };
}

/** A key that may be missing: it then takes `dflt` (or stays undefined without one). */
export function optional<T>(schema: Schema<T>): Schema<T | undefined>;
export function optional<T>(schema: Schema<T>, dflt: T): Schema<T>;
export function optional<T>(schema: Schema<T>, ...rest: [T?]): Schema<T | undefined> {
  const hasDefault = rest.length > 0;
  return {
    kind: schema.kind,
    expected: schema.expected,
    optional: true,
    check: (v, path, file) => (v === undefined ? (hasDefault ? structuredClone(rest[0]) : undefined) : schema.check(v, path, file)),
  };
}

/**
 * Adds a cross-field check run after `schema` accepted the value; `rule` returns an error
 * message (relative to `path`) or undefined.
 */
export function refine<T>(schema: Schema<T>, rule: (value: T) => string | undefined): Schema<T> {
  return {
    ...schema,
    check(v, path, file) {
      const value = schema.check(v, path, file);
      const msg = rule(value);
      if (msg !== undefined) fail(file, path, msg);
      return value;
    },
  };
}

/**
 * Validates `value` against `schema`.
 * @param path key path of `value` in the config ('' for the whole config).
 * @param file config file for messages.
 * @throws ConfigError `file: path: expected ..., got ...`.
 */
export function validate<T>(schema: Schema<T>, value: unknown, path = '', file?: string): T {
  return schema.check(value, path, file);
}

/** The validated block of a {@link byType} table entry. */
export type TypedBlock<T extends Record<string, Schema<unknown>>> = { [K in keyof T]: Infer<T[K]> & { type: K } }[keyof T];

/**
 * A `{type: NAME, ...}` block validated by the schema of its type in `table` (each entry an
 * {@link obj} with a `type` field). An unknown or missing type lists the known ones.
 * @param kind what the types are, for messages: `'model type'`, `'decode head type'`.
 */
export function byType<T extends Record<string, Schema<unknown>>>(kind: string, table: T): Schema<TypedBlock<T>> {
  const known = Object.keys(table);
  return {
    kind: 'dict',
    expected: `a dict with 'type' (${kind}: ${known.join(', ')})`,
    check(v, path, file) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return expectedGot(file, path, `a dict with 'type' (${kind})`, v);
      const entry = lookupType(table, (v as Record<string, unknown>).type, file, child(path, 'type'), kind);
      return entry.check(v, path, file) as TypedBlock<T>;
    },
  };
}
