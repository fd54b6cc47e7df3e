/**
 * Reading JSON files with errors that name the file: a missing or unreadable file, malformed or
 * truncated JSON, and nesting deeper than any of our files needs (a hostile file of `[[[[...` would
 * otherwise surface later as a bare "Maximum call stack size exceeded").
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { MAX_JSON_DEPTH, jsonTooDeepAt } from '../util/json_depth.ts';

/**
 * Reads and parses the JSON file `path`; `what` says what the file is (e.g. 'checkpoint pointer').
 * @throws naming `path` when it cannot be read or parsed.
 */
export function readJsonFileSync(path: string, what = 'JSON file'): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  const deep = jsonTooDeepAt(bytes, MAX_JSON_DEPTH);
  if (deep >= 0) throw new Error(`${what} ${path} is not valid JSON: nested more than ${MAX_JSON_DEPTH} levels deep at byte ${deep}`);
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch (e) {
    throw new Error(`${what} ${path} is not valid JSON (truncated or damaged?): ${(e as Error).message}`);
  }
}

/** SHA-256 (hex) of a file's bytes, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** JSON of `value` as UTF-8 bytes (messages between processes). */
export function jsonBytes(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

/** The inverse of {@link jsonBytes}. */
export function fromJsonBytes<T>(bytes: Uint8Array): T {
  return JSON.parse(new TextDecoder().decode(bytes)) as T;
}
