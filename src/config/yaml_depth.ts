/**
 * A nesting check of YAML text before it reaches the YAML library, which parses recursively:
 * a few thousand nested levels overflow its stack (sometimes fatally, inside V8's regexp
 * compiler), a hundred thousand take it tens of seconds, and nested complex keys (`? ? ? x`) grow
 * polynomially. Configs nest a handful of levels; the limits below are far above that and far
 * below what the library handles.
 */

/** Deepest flow nesting (`[`/`{`) accepted. */
export const MAX_FLOW_DEPTH = 100;
/** Widest indentation accepted, in columns (block nesting needs at least one column per level). */
export const MAX_INDENT = 200;
/** Most compact block indicators (`- `, `? `, `: `) accepted at the start of one line. */
export const MAX_COMPACT_INDICATORS = 50;

/** Where and why YAML text nests too deep. */
export interface YamlNestingProblem {
  /** 1-based line and column. */
  line: number;
  col: number;
  reason: string;
}

/** Characters after which a scalar starts, so that a quote there opens a quoted scalar. */
const NODE_START = new Set([0x3a /* : */, 0x2d /* - */, 0x3f /* ? */, 0x5b /* [ */, 0x7b /* { */, 0x2c /* , */]);

/**
 * Finds YAML nesting beyond the limits above. Flow brackets are counted outside quoted scalars
 * and comments (an unbalanced bracket inside a plain scalar counts too, which needs a hundred of
 * them to matter). Linear in the text.
 * @returns the first problem, or null.
 */
export function yamlNestingProblem(text: string): YamlNestingProblem | null {
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  let quote = 0; // 0, or the open quote's char code
  let last = -1; // the last non-blank character code on this line (-1: none yet)
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a /* \n */) {
      line++;
      lineStart = i + 1;
      last = -1;
      continue;
    }
    if (i === lineStart && quote === 0) {
      const p = lineProblem(text, i);
      if (p) return { line, col: 1, reason: p };
    }
    if (quote !== 0) {
      if (c === quote) {
        if (quote === 0x27 /* ' */ && text.charCodeAt(i + 1) === 0x27) i++; // '' escapes a quote
        else quote = 0;
      } else if (c === 0x5c /* \ */ && quote === 0x22 /* " */) {
        i++;
      }
    } else if ((c === 0x22 || c === 0x27) && (last === -1 || NODE_START.has(last))) {
      quote = c;
    } else if (c === 0x23 /* # */ && (i === lineStart || text.charCodeAt(i - 1) <= 0x20)) {
      const eol = text.indexOf('\n', i);
      i = (eol < 0 ? n : eol) - 1; // the comment's end; the newline is handled next
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > MAX_FLOW_DEPTH) return { line, col: i - lineStart + 1, reason: `flow collections nested more than ${MAX_FLOW_DEPTH} deep` };
    } else if ((c === 0x5d /* ] */ || c === 0x7d /* } */) && depth > 0) {
      depth--;
    }
    if (c > 0x20) last = c;
  }
  return null;
}

/** The indentation and compact-indicator limits of the line starting at `start`. */
function lineProblem(text: string, start: number): string | null {
  let i = start;
  while (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09) i++;
  if (i - start > MAX_INDENT && i < text.length && text.charCodeAt(i) !== 0x0a) return `indented more than ${MAX_INDENT} columns`;
  let indicators = 0;
  for (;;) {
    const c = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    if (!((c === 0x2d /* - */ || c === 0x3f /* ? */ || c === 0x3a /* : */) && (next === 0x20 || next === 0x09))) break;
    if (++indicators > MAX_COMPACT_INDICATORS) return `more than ${MAX_COMPACT_INDICATORS} nested block indicators ('- ', '? ', ': ') on one line`;
    i += 2;
    while (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x09) i++;
  }
  return null;
}
