/**
 * Reading JSON files with errors that name the file: a missing or unreadable file, malformed or
 * truncated JSON, and nesting too deep for the parser (a hostile file of `[[[[...` would otherwise
 * surface as a bare "Maximum call stack size exceeded").
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';

/**
 * Reads and parses the JSON file `path`; `what` says what the file is (e.g. 'checkpoint pointer').
 * @throws naming `path` when it cannot be read or parsed.
 */
export function readJsonFileSync(path: string, what = 'JSON file'): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const msg = e instanceof RangeError ? 'nested too deep' : (e as Error).message;
    throw new Error(`${what} ${path} is not valid JSON (truncated or damaged?): ${msg}`);
  }
}

/** SHA-256 (hex) of a file's bytes, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
