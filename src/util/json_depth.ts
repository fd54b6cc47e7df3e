/**
 * JSON nesting depth, checked before parsing: hostile or broken files nested thousands of levels
 * deep would overflow the stack of recursive code later (messages, copies, validation), far from
 * the file they came from. Import-free (src/coco uses it and stands on its own).
 */

/** The deepest JSON nesting read: a COCO file needs 5 levels, our pointers and metrics 3. */
export const MAX_JSON_DEPTH = 100;

/**
 * Where JSON text (UTF-8 bytes) nests arrays/objects deeper than `maxDepth`: the byte offset of
 * the first bracket beyond it (brackets inside strings do not count), or -1. One linear pass
 * (about a fifth of `JSON.parse`'s time) that stops at the first excess.
 */
export function jsonTooDeepAt(bytes: Uint8Array, maxDepth: number): number {
  let depth = 0;
  let inString = false;
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const c = bytes[i];
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return -1;
}
