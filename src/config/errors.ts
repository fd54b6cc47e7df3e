/**
 * Config errors and "did you mean" suggestions, shared by the loader, the cfg-options parser,
 * the schema validator and the `type:` tables, so every message has the same shape:
 * `<file>: <key.path>: <what is wrong>`.
 */

/** Where a config error is and what was wrong, for programs (the message says the same for people). */
export interface ConfigErrorDetails {
  /** The config file (or `--cfg-options`). */
  file?: string;
  /** The full key path, e.g. `model.decode_head.norm_cfg.type`. */
  path?: string;
  /** The offending value (undefined for a missing key). */
  value?: unknown;
  /** What is allowed there: the known types/keys, or a description like `an integer >= 1`. */
  allowed?: readonly string[] | string;
}

/**
 * The one error of config validation (the loader, `--cfg-options`, the schemas and every `type:`
 * table): `message` is `<file>: <key.path>: <what is wrong>`, `details` the same as fields.
 */
export class ConfigError extends Error {
  readonly details: ConfigErrorDetails;
  constructor(message: string, details: ConfigErrorDetails = {}) {
    super(message);
    this.name = 'ConfigError';
    this.details = details;
  }
}

/** Levenshtein distance (small strings only: config keys and type names). */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length];
}

/** Case-insensitive distance, so `adamw` vs `AdamW` counts as (almost) a match. */
function distance(a: string, b: string): number {
  return a === b ? 0 : Math.min(editDistance(a, b), editDistance(a.toLowerCase(), b.toLowerCase()) + 0.5);
}

/**
 * The candidate closest to `name`, or undefined when none is close enough to be a plausible
 * misspelling (suggesting an unrelated key would be more confusing than saying nothing).
 */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(name, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  if (best === undefined) return undefined;
  const longest = Math.max(name.length, best.length);
  const limit = Math.max(2, Math.floor(longest / 3));
  // `bestD < longest`: replacing every character (`x` vs `n`) is not a misspelling.
  if (bestD <= limit && bestD < longest) return best;
  // A truncated, extended or re-suffixed key (`drop_path` for `drop_path_rate`, `sliding` for
  // `slide`) is far in edits but obvious: take the longest shared prefix of 4+ characters
  // (or a whole 3-character key).
  let byPrefix: string | undefined;
  let bestP = 0;
  for (const c of candidates) {
    const p = commonPrefix(name.toLowerCase(), c.toLowerCase());
    const enough = p >= 4 || (p === 3 && (c.length === 3 || name.length === 3));
    if (enough && p > bestP) [byPrefix, bestP] = [c, p];
  }
  return byPrefix;
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Candidates ordered by closeness to `name` (stable for ties), for "keys that exist" lists. */
export function byCloseness(name: string, candidates: Iterable<string>): string[] {
  return [...candidates]
    .map((c, i) => ({ c, i, d: distance(name, c) }))
    .sort((x, y) => x.d - y.d || x.i - y.i)
    .map((x) => x.c);
}

/** ` (did you mean 'x'?)` or the empty string. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const c = closest(name, candidates);
  return c === undefined ? '' : ` (did you mean '${c}'?)`;
}

/** Joins `file` and `path` into the `file: path` prefix, skipping empty parts. */
export function where(file: string | undefined, path: string): string {
  return [file, path].filter((p) => p).join(': ');
}

/** Rendering of a bad value for messages (one helper for config, datasets and src/coco). */
export { formatValue } from '../util/format_value.ts';
