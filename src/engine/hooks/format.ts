/** Number formats shared by the hooks' human-readable lines. */

/** A loss or metric: 4 decimals without trailing zeros, exponent notation below 1e-3. */
export function fmt(v: number): string {
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4).replace(/\.?0+$/, '') || '0' : v.toExponential(3);
}

/** Seconds as `1h05m` or `3m07s` ('?' when not finite). */
export function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}
