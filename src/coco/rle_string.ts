/**
 * pycocotools' compressed RLE count strings (`rleToString` / `rleFrString` of maskApi.c).
 *
 * Each count is written like LEB128 but with 5 payload bits per character and the characters
 * `'0'..'o'` (ASCII 48-111): bit 5 (0x20) says "more characters follow", bit 4 (0x10) of the last
 * character is the sign. From the fourth count on (index > 2), the difference to the count two
 * places before is written instead of the count itself, so a mask's repeating column pattern
 * compresses to small numbers.
 */

const ASCII = new TextDecoder('latin1');

/** Two's-complement `x & 31` and `x >> 5` for integers beyond 32 bits (|x| < 2^53). */
function low5(x: number): number {
  return x - Math.floor(x / 32) * 32;
}

/**
 * Encodes run lengths as pycocotools' compressed string (`rleToString`).
 *
 * @param counts `[m]` run lengths, each an integer in `[0, 2^32)`, first run counting zeros.
 * @returns the `counts` string of a compressed RLE, byte-identical to pycocotools.
 */
export function rleCountsToString(counts: ArrayLike<number>): string {
  const n = counts.length;
  // A value is in (-2^32, 2^32): 33 bits with the sign, so at most 7 characters of 5 bits.
  const out = new Uint8Array(n * 7);
  let p = 0;
  for (let i = 0; i < n; i++) {
    const ci = counts[i];
    if (ci >>> 0 !== ci) throw new RangeError(`rleCountsToString: counts[${i}] = ${ci} is not an integer in [0, 2^32)`);
    let x = i > 2 ? ci - counts[i - 2] : ci;
    if (x === (x | 0)) {
      // 32-bit fast path (every count of a real mask): `>>` is the arithmetic shift of the C code.
      for (;;) {
        let c = x & 0x1f;
        x >>= 5;
        const more = c & 0x10 ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        out[p++] = c + 48;
        if (!more) break;
      }
    } else {
      for (;;) {
        let c = low5(x);
        x = Math.floor(x / 32);
        const more = c & 0x10 ? x !== -1 : x !== 0;
        if (more) c |= 0x20;
        out[p++] = c + 48;
        if (!more) break;
      }
    }
  }
  return ASCII.decode(out.subarray(0, p));
}

/** Reused decode buffer (one allocation per string instead of two), for strings of up to 64 Ki characters. */
let scratch = new Uint32Array(4096);

/**
 * Decodes pycocotools' compressed counts string (`rleFrString`).
 *
 * Refuses what pycocotools would silently turn into garbage: a character outside `'0'..'o'`, a
 * string that ends inside a value, and a count that comes out negative or at least 2^32. Values
 * longer than 6 characters (counts of 2^29 and more, images of over 500 megapixels) are decoded
 * as the exact inverse of {@link rleCountsToString}; maskApi.c's 32-bit shift is undefined there.
 *
 * @param s the `counts` string of a compressed RLE.
 * @returns `[m]` run lengths, the first counting zeros.
 */
export function rleCountsFromString(s: string): Uint32Array {
  const n = s.length;
  if (n > scratch.length && n <= 65536) scratch = new Uint32Array(65536);
  const cnts = n <= scratch.length ? scratch : new Uint32Array(n);
  let m = 0;
  let p = 0;
  while (p < n) {
    const first = p;
    let x = 0;
    let shift = 0;
    let c = 0;
    // Up to 6 characters (30 bits) in 32-bit integer arithmetic, as maskApi.c does.
    do {
      c = s.charCodeAt(p++) - 48; // NaN past the end
      if (!(c >= 0 && c <= 63)) throw badChar(s, p - 1);
      x |= (c & 0x1f) << shift;
      shift += 5;
    } while (c & 0x20 && shift < 30);
    let v: number = x;
    if (c & 0x20) {
      v = longValue(s, p, x);
      p = longEnd;
    } else if (c & 0x10) v = x | (-1 << shift);
    if (m > 2) v += cnts[m - 2];
    if (v < 0 || v > 0xffffffff) {
      throw new Error(`RLE counts string decodes to run length ${v} at run ${m} (characters ${first}..${p - 1}); run lengths are in [0, 2^32)`);
    }
    cnts[m++] = v;
  }
  return cnts.slice(0, m);
}

function badChar(s: string, p: number): Error {
  if (p >= s.length) return new Error(`RLE counts string ends inside a value ('${s.slice(-8)}' are its last characters)`);
  return new Error(`RLE counts string has ${JSON.stringify(s[p])} at character ${p}; only '0'..'o' (ASCII 48-111) occur`);
}

/** Where {@link longValue} stopped: the index after the value's last character. */
let longEnd = 0;

/**
 * A value of 7 characters or more (|value| >= 2^29, beyond 32-bit arithmetic): `low` holds its
 * first 30 bits, the 7th character is at `p`. Sets {@link longEnd}.
 */
function longValue(s: string, p: number, low: number): number {
  let x = low;
  let scale = 2 ** 30;
  for (;;) {
    const c = s.charCodeAt(p++) - 48;
    if (!(c >= 0 && c <= 63)) throw badChar(s, p - 1);
    x += (c & 0x1f) * scale;
    scale *= 32;
    if (!(c & 0x20)) {
      longEnd = p;
      return c & 0x10 ? x - scale : x;
    }
  }
}
