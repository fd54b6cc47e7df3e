/**
 * `type:` tables: one plain object per kind of component (datasets, transforms, models, ...)
 * mapping type names to a schema and a builder. No registration by import side effect, so
 * jump-to-definition works from the table; an unknown type lists the known ones.
 *
 * ```ts
 * const TRANSFORMS = { Resize: RESIZE_SPEC, Pad: PAD_SPEC };
 * const t = buildFromTable(TRANSFORMS, block, { file, path: 'data.train.pipeline.2' }, 'transform type');
 * ```
 */
import { ConfigError, didYouMean, formatValue, where } from './errors.ts';
import type { Schema } from './schema.ts';

/** Where a config block is: the file (or `--cfg-options`) and its key path, e.g. `data.train`. */
export interface ConfigAt {
  file?: string;
  path: string;
}

/** `path.key`, or `key` at the root. */
export const childPath = (path: string, key: string | number): string => (path ? `${path}.${key}` : String(key));

/** One row of a `type:` table. */
export interface TypeSpec<R> {
  /** Schema of the block's keys other than `type`. */
  readonly schema: Schema<unknown>;
  /** Validates `block` (the keys other than `type`) located at `at`, and builds from it. */
  build(block: unknown, at: ConfigAt): R;
}

/** A `type:` table row from a schema and a builder taking what the schema validated. */
export function typeSpec<C, R>(schema: Schema<C>, build: (cfg: C) => R): TypeSpec<R> {
  return { schema, build: (block, at) => build(schema.check(block, at.path, at.file)) };
}

/**
 * The entry of `table` named `name`.
 * @param path key path of the `type` key, e.g. `data.train.type`.
 * @param kind what the entries are, for messages: `'dataset type'`.
 * @throws ConfigError `file: path: unknown <kind> 'X'; known: A, B (did you mean 'Y'?)`, with
 *   `details.allowed` the known names.
 */
export function lookupType<E>(table: Readonly<Record<string, E>>, name: unknown, file: string | undefined, path: string, kind: string): E {
  if (typeof name === 'string' && Object.hasOwn(table, name)) return table[name];
  const known = Object.keys(table);
  const list = known.length ? known.join(', ') : '(none)';
  const msg = typeof name === 'string'
    ? `unknown ${kind} '${name}'; known: ${list}${didYouMean(name, known)}`
    : `expected a ${kind} (one of ${list}), got ${formatValue(name)}`;
  throw new ConfigError(`${where(file, path)}: ${msg}`, { file, path, value: name, allowed: known });
}

/**
 * Builds the `{type, ...}` block at `at` through the `table` entry for its `type`.
 * @throws ConfigError when the block is not a dict, the type is unknown or a key is bad.
 */
export function buildFromTable<R>(table: Readonly<Record<string, TypeSpec<R>>>, block: unknown, at: ConfigAt, kind: string): R {
  if (typeof block !== 'object' || block === null || Array.isArray(block)) {
    throw new ConfigError(`${where(at.file, at.path)}: expected a dict with a 'type' key, got ${formatValue(block)}`,
      { file: at.file, path: at.path, value: block, allowed: 'a dict with a type key' });
  }
  const { type, ...rest } = block as Record<string, unknown>;
  return lookupType(table, type, at.file, childPath(at.path, 'type'), kind).build(rest, at);
}
