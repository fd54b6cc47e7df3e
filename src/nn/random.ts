/**
 * A seedable pseudo-random generator whose state can be saved and restored, so that DropPath masks
 * and initialisation are reproducible and a resumed run continues the exact random stream.
 * tfjs's own random ops are seeded per call and keep no global state we could checkpoint.
 */

/** xoshiro128** state: four uint32 words. */
export type RngState = [number, number, number, number];

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** A small, fast generator (xoshiro128**) with explicit state. */
export class Rng {
  private s: Uint32Array;

  constructor(seed = 0) {
    const next = splitmix32(seed);
    this.s = new Uint32Array([next(), next(), next(), next()]);
  }

  /** Next uint32. */
  nextUint32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }

  /** Normal(0, std) truncated to [a, b] by rejection, like `torch.nn.init.trunc_normal_`. */
  truncNormal(std: number, a = -2, b = 2): number {
    for (;;) {
      const v = this.normal() * std;
      if (v >= a && v <= b) return v;
    }
  }

  getState(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  setState(state: RngState): void {
    this.s = new Uint32Array(state);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The process-wide generator used by initialisers and DropPath. */
export const globalRng = new Rng(0);

/** Reseeds the process-wide generator. */
export function manualSeed(seed: number): void {
  globalRng.setState(new Rng(seed).getState());
}
