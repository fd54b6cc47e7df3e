/**
 * `--cfg-options a.b.c=value` overrides. Only keys that already exist in the merged config can
 * be set (unless their dict is declared open), because a silently added misspelt key is the
 * classic way an override does nothing.
 */
import YAML from 'yaml';
import { ConfigError, byCloseness, didYouMean } from './errors.ts';

type Dict = Record<string, unknown>;

function isDict(v: unknown): v is Dict {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface CfgOptionsOptions {
  /**
   * Dotted paths (`model`, `data.train`) of dicts that may receive new keys, at any depth below
   * them too; none by default.
   */
  openPaths?: readonly string[];
}

/**
 * The value text parsed as a YAML scalar or flow collection: `0.2` → number, `true` → boolean,
 * `null`, `[1,2]` → list, `'text'` → string; bare words and anything unparsable stay strings.
 */
export function parseOptionValue(text: string): unknown {
  if (text.trim() === '') return '';
  try {
    const v: unknown = YAML.parse(text);
    // `a: b` would parse as a mapping; only an explicit `{...}` is meant as one.
    if (isDict(v) && !text.trim().startsWith('{')) return text;
    return v === undefined ? text : v;
  } catch {
    return text;
  }
}

/** Splits `key=value` (at the first `=`, so values may contain `=`). */
export function parseCfgOption(option: string): { keys: string[]; value: unknown } {
  const eq = option.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--cfg-options '${option}': expected key.path=value`);
  const keyPath = option.slice(0, eq).trim();
  const keys = keyPath.split('.');
  if (keys.some((k) => k === '')) throw new ConfigError(`--cfg-options '${option}': empty key in '${keyPath}'`);
  return { keys, value: parseOptionValue(option.slice(eq + 1)) };
}

/**
 * Returns a copy of `cfg` with each `key.path=value` override applied, in order.
 * List elements are addressed by index (`data.train.pipeline.2.scale=[512,512]`).
 * @throws ConfigError for a key that does not exist, listing the keys at that level closest first.
 */
export function applyCfgOptions<C extends Dict>(cfg: C, options: readonly string[], opts: CfgOptionsOptions = {}): C {
  const out = structuredClone(cfg);
  const open = new Set(opts.openPaths ?? []);
  // A dict is open when it or a dict above it is listed: an open block is owned as a whole by
  // a builder that accepts keys this module cannot know.
  const isOpen = (keys: string[]): boolean => keys.some((_, i) => open.has(keys.slice(0, i + 1).join('.'))) || open.has('');
  for (const option of options) {
    const { keys, value } = parseCfgOption(option);
    const fail = (msg: string): never => {
      throw new ConfigError(`--cfg-options ${option}: ${msg}`);
    };
    let node: unknown = out;
    // Dicts created by this override under an open dict are new, hence open too.
    let created = false;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      const at = keys.slice(0, i).join('.') || '(top level)';
      const last = i === keys.length - 1;
      if (Array.isArray(node)) {
        const idx = /^\d+$/.test(key) ? Number(key) : NaN;
        if (!(idx < node.length)) fail(`'${key}' is not an index of the list at '${at}' (length ${node.length})`);
        if (last) node[idx] = value;
        else node = node[idx];
      } else if (isDict(node)) {
        // Own keys only: `__proto__` or `constructor` must never reach Object.prototype.
        if (key === '__proto__') fail(`'__proto__' cannot be a config key`);
        if (!Object.hasOwn(node, key)) {
          if (!(created || isOpen(keys.slice(0, i)))) {
            const existing = byCloseness(key, Object.keys(node));
            fail(`unknown key '${key}' at '${at}'; existing keys: ${existing.join(', ') || '(none)'}${didYouMean(key, existing)}`);
          }
          if (!last) node[key] = {};
          created = true;
        }
        if (last) node[key] = value;
        else node = node[key];
      } else {
        fail(`cannot set '${key}' inside '${at}', which is ${JSON.stringify(node)}, not a dict or list`);
      }
    }
  }
  return out;
}
