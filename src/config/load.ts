/**
 * YAML config loading with MMCV-style `_base_` inheritance.
 *
 * Merge rules (the MMCV ones, so recipes port over unchanged):
 * - dicts merge key by key, recursively;
 * - lists and scalars replace (merging lists element-wise is never what a recipe means);
 * - `_delete_: true` in a dict replaces the inherited dict instead of merging into it;
 * - bases apply in order (later override earlier), then the file overrides its bases.
 */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import YAML from 'yaml';
import { applyCfgOptions } from './cfg_options.ts';
import { ConfigError } from './errors.ts';
import { yamlNestingProblem } from './yaml_depth.ts';

/** A merged config: plain YAML data (dicts, lists, strings, numbers, booleans, null). */
export type Config = Record<string, unknown>;

export interface LoadConfigOptions {
  /** `a.b.c=value` overrides applied after merging (see {@link applyCfgOptions}). */
  cfgOptions?: readonly string[];
  /** Dotted paths of dicts that `cfgOptions` may add new keys to (none by default). */
  openPaths?: readonly string[];
}

/** True for YAML mappings (not lists, not null). */
export function isDict(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A deep copy with every `_delete_` marker removed (markers only mean something while merging). */
function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(strip);
  if (!isDict(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k !== '_delete_') Object.defineProperty(out, k, { value: strip(x), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * `override` merged onto `base` by the rules above; neither argument is modified.
 * Exported for tools that merge config fragments themselves.
 */
export function mergeConfig(base: unknown, override: unknown): unknown {
  if (!isDict(override) || !isDict(base) || override._delete_ === true) return strip(override);
  const out = strip(base) as Record<string, unknown>;
  for (const [k, v] of Object.entries(override)) {
    if (k === '_delete_') continue;
    // defineProperty: a YAML key `__proto__` stays a plain key instead of replacing the prototype.
    Object.defineProperty(out, k, { value: Object.hasOwn(out, k) ? mergeConfig(out[k], v) : strip(v), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** Paths relative to the working directory read better in messages than absolute ones. */
function show(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
}

/**
 * Parses one YAML file into a dict; syntax errors name `file:line:column`, other failures (nesting
 * too deep, alias bombs) the file. A file that cannot be read (missing, a directory) throws the
 * `fs` error as it is, for the callers to name the reference that led to it.
 */
function parseFile(abs: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    err.path ??= abs; // a read error (EISDIR) carries no path; the callers match on it
    throw err;
  }
  const deep = yamlNestingProblem(text);
  if (deep) throw new ConfigError(`${show(abs)}:${deep.line}:${deep.col}: YAML nested too deep: ${deep.reason}`);
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  const err = doc.errors[0];
  if (err) {
    const pos = err.linePos?.[0];
    const at = pos ? `${show(abs)}:${pos.line}:${pos.col}` : show(abs);
    // The library's message repeats the position and may span lines; keep its first line.
    const msg = err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    if (/Maximum call stack/.test(msg)) throw new ConfigError(`${at}: YAML nested too deep for the parser`);
    throw new ConfigError(`${at}: YAML syntax error: ${msg}`);
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (e) {
    // e.g. "Excessive alias count indicates a resource exhaustion attack" (an alias bomb).
    throw new ConfigError(`${show(abs)}: cannot read the YAML: ${(e as Error).message}`);
  }
  if (data === null || data === undefined) return {};
  if (!isDict(data)) throw new ConfigError(`${show(abs)}: a config file must be a YAML mapping, got ${Array.isArray(data) ? 'a list' : typeof data}`);
  return data;
}

/** Loads `abs` with its bases merged; `chain` is the files that led here, for cycle detection. */
function loadMerged(abs: string, chain: readonly string[]): Record<string, unknown> {
  if (chain.includes(abs)) {
    const cycle = [...chain.slice(chain.indexOf(abs)), abs].map(show).join(' -> ');
    throw new ConfigError(`_base_ cycle: ${cycle}`);
  }
  const data = parseFile(abs);
  const rawBases = data._base_;
  delete data._base_;
  const bases = rawBases === undefined || rawBases === null ? [] : Array.isArray(rawBases) ? rawBases : [rawBases];
  let merged: unknown = {};
  for (const b of bases) {
    if (typeof b !== 'string') throw new ConfigError(`${show(abs)}: _base_: expected a path or a list of paths, got ${JSON.stringify(b)}`);
    const target = resolve(dirname(abs), b);
    let base: Record<string, unknown>;
    try {
      base = loadMerged(target, [...chain, abs]);
    } catch (e) {
      const { code, path: failed } = e as NodeJS.ErrnoException;
      if (code === 'ENOENT' && failed === target) throw new ConfigError(`${show(abs)}: _base_ '${b}' not found (tried ${target})`);
      if (code !== undefined && failed === target) throw new ConfigError(`${show(abs)}: _base_ '${b}' cannot be read (${target}): ${(e as Error).message}`);
      throw e;
    }
    merged = mergeConfig(merged, base);
  }
  return mergeConfig(merged, data) as Record<string, unknown>;
}

/**
 * Reads the YAML config at `path`, merges its `_base_` chain, then applies `cfgOptions`.
 * @throws ConfigError for YAML syntax errors (file:line:col), nesting too deep for the parser,
 *   unreadable files and missing bases (naming the referencing file and the path tried), `_base_`
 *   cycles (naming the chain) and bad overrides.
 */
export function loadConfig(path: string, opts: LoadConfigOptions = {}): Config {
  const abs = resolve(path);
  let cfg: Config;
  try {
    cfg = loadMerged(abs, []);
  } catch (e) {
    const { code, path: failed } = e as NodeJS.ErrnoException;
    if (code === 'ENOENT' && failed === abs) throw new ConfigError(`config file not found: ${path}`);
    if (code !== undefined && failed === abs) throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
    throw e;
  }
  return opts.cfgOptions?.length ? applyCfgOptions(cfg, opts.cfgOptions, { openPaths: opts.openPaths }) : cfg;
}
