/**
 * The few numpy/Python numerics whose exact floating-point behaviour COCOeval's numbers depend on:
 * numpy's summation (pairwise, in buffers of 8192), a stable descending argsort (numpy's
 * mergesort), and Python's `'{:0.Nf}'` formatting (round half to even on the exact value).
 */

/** numpy's `pairwise_sum` for float64 (unrolled by 8, blocks of 128). */
function pairwiseSum(a: ArrayLike<number>, off: number, n: number): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[off + i];
    return res;
  }
  if (n <= 128) {
    let r0 = a[off], r1 = a[off + 1], r2 = a[off + 2], r3 = a[off + 3];
    let r4 = a[off + 4], r5 = a[off + 5], r6 = a[off + 6], r7 = a[off + 7];
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      const p = off + i;
      r0 += a[p];
      r1 += a[p + 1];
      r2 += a[p + 2];
      r3 += a[p + 3];
      r4 += a[p + 4];
      r5 += a[p + 5];
      r6 += a[p + 6];
      r7 += a[p + 7];
    }
    let res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7));
    for (; i < n; i++) res += a[off + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, off, n2) + pairwiseSum(a, off + n2, n - n2);
}

/** numpy's buffer size: a reduction sums buffers of this many elements, pairwise within each. */
const NPY_BUFSIZE = 8192;

/**
 * `np.sum` of a contiguous float64 vector as numpy 1.x computes it (the numbers in the parity
 * fixture): pairwise within buffers of 8192 elements, the buffers added left to right. numpy 2
 * sums one buffer; the two differ by an ulp at most, and only beyond 8192 elements.
 */
export function npSum(a: ArrayLike<number>, n: number = a.length): number {
  let total = 0;
  for (let s = 0; s < n; s += NPY_BUFSIZE) total += pairwiseSum(a, s, Math.min(NPY_BUFSIZE, n - s));
  return total;
}

/** `np.mean` of the first n values. */
export function npMean(a: ArrayLike<number>, n: number = a.length): number {
  return npSum(a, n) / n;
}

/**
 * Stable argsort, highest key first (numpy `argsort(-keys, kind='mergesort')`), of keys made of
 * consecutive runs that are each already non-increasing; `runStarts` lists each run's first index
 * (ascending, starting with 0). Runs are merged pairwise, left before right on ties. NaN-free keys.
 * `buf1`/`buf2` (length >= n) are work space; the result is one of them.
 */
export function mergeRunsDesc(
  keys: Float64Array,
  n: number,
  runStarts: number[],
  buf1: Int32Array = new Int32Array(n),
  buf2: Int32Array = new Int32Array(n),
): Int32Array {
  let src = buf1;
  let dst = buf2;
  for (let i = 0; i < n; i++) src[i] = i;
  // run boundaries, ping-ponged between two halves of one array: b[0..nb) then next in place
  const bounds = new Int32Array(runStarts.length + 1);
  let nb = 0;
  if (runStarts.length === 0 || runStarts[0] !== 0) bounds[nb++] = 0;
  for (const s of runStarts) if (s < n && (nb === 0 || s > bounds[nb - 1])) bounds[nb++] = s;
  while (nb > 1) {
    let nn = 0;
    for (let r = 0; r < nb; r += 2) {
      const lo = bounds[r];
      const mid = r + 1 < nb ? bounds[r + 1] : n;
      const hi = r + 2 < nb ? bounds[r + 2] : n;
      bounds[nn++] = lo; // nn <= r: overwrites only boundaries already read
      let i = lo;
      let j = mid;
      let o = lo;
      while (i < mid && j < hi) dst[o++] = keys[src[j]] > keys[src[i]] ? src[j++] : src[i++];
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    const tmp = src;
    src = dst;
    dst = tmp;
    nb = nn;
  }
  return src;
}

/**
 * Python's `'{:0.<digits>f}'.format(x)`: the exact binary value rounded half to even (JavaScript's
 * `toFixed` rounds exact ties up instead; ties are the only difference).
 */
export function pyFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'nan' : x > 0 ? 'inf' : '-inf';
  const s = Object.is(x, -0) ? `-${(0).toFixed(digits)}` : x.toFixed(digits);
  const ax = Math.abs(x);
  const scale = 10 ** digits;
  const twice = ax * 2 * scale;
  // An exact tie is (2k + 1) / (2 * 10^d): an odd integer divisible by 5^d, times 2^-(d+1).
  if (Number.isInteger(twice) && twice % 2 === 1 && twice % 5 ** digits === 0 && twice / (2 * scale) === ax && twice < 2 ** 53) {
    const k = (twice - 1) / 2; // round down to k, or up to k + 1: pick the even one
    const q = k % 2 === 0 ? k : k + 1;
    const body = String(q).padStart(digits + 1, '0');
    const txt = digits > 0 ? `${body.slice(0, body.length - digits)}.${body.slice(body.length - digits)}` : body;
    return x < 0 || Object.is(x, -0) ? `-${txt}` : txt;
  }
  return s;
}
