/**
 * The one way to render a bad value in an error message. A leaf module (no imports), so that
 * `src/coco` can use it and stay importable without tfjs or the rest of `src`.
 */

/**
 * Short JSON of `value` for error messages: strings quoted, NaN and ±Infinity spelled out (JSON would
 * print `null`), `undefined` as `nothing`, anything longer than 80 characters cut with `...`.
 */
export function formatValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return String(value);
  let s: string | undefined;
  try {
    s = JSON.stringify(value, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x));
  } catch {
    s = undefined;
  }
  s ??= String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
