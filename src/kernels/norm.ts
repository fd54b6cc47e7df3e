/**
 * Fused normalisation kernels on cpu/wasm memory (see host.ts): LayerNorm over the last axis and
 * BatchNorm's batch statistics over all but the last axis, each forward in one call and its
 * gradient in one call. Sums run in float64, results are stored as float32.
 *
 * Both see x as `[R, C]` rows of channels (NHWC flattened): LayerNorm normalises each row, BatchNorm
 * each column. The gradient of `y = xhat * w + b`, `xhat = (x - mean) * rstd`:
 * `dx = rstd (g - mean(g) - xhat mean(g xhat))` with `g = dy w` and means over the normalised
 * axis; `dw = sum(dy xhat)`, `db = sum(dy)` over the other axis.
 */
import * as tf from '@tensorflow/tfjs';
import { hostKernelsAvailable, runOnHost, type HostArray } from './host.ts';
import { nativeAddon } from './native.ts';

/** The five float32 inputs of a gradient kernel, typed for the addon. */
function f32(v: HostArray[]): [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array] {
  return v as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
}

/**
 * Where the fused loops beat the kernel chains on wasm (2 threads; measured forward + backward):
 * JavaScript runs ~1.4 ns per element and pass, wasm's SIMD element-wise kernels ~10x less, but a
 * chain pays ~20 µs per kernel and reduces a short last axis slowly. LayerNorm at [4,32,32,16]:
 * 1.2 ms fused vs 2.5 ms chain; at [4,32,32,64]: 4.2 vs 3.4; BatchNorm at [4,32,32,16]: 1.7 vs 2.8,
 * at [4,8,8,256]: 1.7 vs 1.2. With the native addon the same loops run compiled: always ahead.
 */
export function fusedNormPays(kind: 'layer' | 'batch', shape: number[]): boolean {
  if (nativeAddon()) return true; // compiled loops: ahead at every size
  const c = shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  return kind === 'layer' ? c <= 32 || size <= 65536 : c <= 32 && size <= 131072;
}

/**
 * LayerNorm over the last axis.
 * @param x `[..., C]`; `w`, `b` `[C]`
 * @returns `y` like x, `mean` and `rstd` `[R]` (R = x.size / C)
 */
export function layerNormForward(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): { y: tf.Tensor; mean: tf.Tensor; rstd: tf.Tensor } {
  const c = x.shape[x.rank - 1];
  const rows = x.size / c;
  const lib = nativeAddon();
  const [y, mean, rstd] = runOnHost([x, w, b], [x.shape, [rows], [rows]], ([xv, wv, bv], [yv, mv, rv]) => {
    if (lib) return lib.layerNorm(xv as Float32Array, wv as Float32Array, bv as Float32Array, yv, mv, rv, eps);
    for (let r = 0, o = 0; r < rows; r++, o += c) {
      // One pass for both moments: float64 sums of float32 values lose nothing that matters here.
      let s = 0, ss = 0;
      for (let k = 0; k < c; k++) {
        const v = xv[o + k];
        s += v;
        ss += v * v;
      }
      const mu = s / c;
      const rs = 1 / Math.sqrt(Math.max(ss / c - mu * mu, 0) + eps);
      for (let k = 0; k < c; k++) yv[o + k] = (xv[o + k] - mu) * rs * wv[k] + bv[k];
      mv[r] = mu;
      rv[r] = rs;
    }
  });
  return { y, mean, rstd };
}

/**
 * Gradient of {@link layerNormForward}.
 * @returns `[dx, dw, db]`
 */
export function layerNormBackward(dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor, rstd: tf.Tensor, w: tf.Tensor): tf.Tensor[] {
  const c = x.shape[x.rank - 1];
  const rows = x.size / c;
  const lib = nativeAddon();
  return runOnHost([dy, x, mean, rstd, w], [x.shape, [c], [c]], ([gv, xv, mv, rv, wv], [dxv, dwv, dbv]) => {
    if (lib) return lib.layerNormGrad(...f32([gv, xv, mv, rv, wv]), dxv, dwv, dbv);
    const dw = new Float64Array(c), db = new Float64Array(c);
    for (let r = 0, o = 0; r < rows; r++, o += c) {
      const mu = mv[r], rs = rv[r];
      let sg = 0, sgx = 0;
      for (let k = 0; k < c; k++) {
        const dyk = gv[o + k];
        const xh = (xv[o + k] - mu) * rs;
        const g = dyk * wv[k];
        sg += g;
        sgx += g * xh;
        dw[k] += dyk * xh;
        db[k] += dyk;
      }
      const mg = sg / c, mgx = sgx / c;
      for (let k = 0; k < c; k++) {
        const xh = (xv[o + k] - mu) * rs;
        dxv[o + k] = rs * (gv[o + k] * wv[k] - mg - xh * mgx);
      }
    }
    dwv.set(dw);
    dbv.set(db);
  });
}

/**
 * BatchNorm with batch statistics over every axis but the last.
 * @param x `[..., C]`; `w`, `b` `[C]`
 * @returns `y` like x; `mean`, biased `variance` and `rstd` `[C]`
 */
export function batchNormForward(x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, eps: number): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor; rstd: tf.Tensor } {
  const c = x.shape[x.rank - 1];
  const rows = x.size / c;
  const lib = nativeAddon();
  const [y, mean, variance, rstd] = runOnHost([x, w, b], [x.shape, [c], [c], [c]], ([xv, wv, bv], [yv, mv, vv, rv]) => {
    if (lib) return lib.batchNorm(xv as Float32Array, wv as Float32Array, bv as Float32Array, yv, mv, vv, rv, eps);
    const s = new Float64Array(c), ss = new Float64Array(c);
    for (let o = 0; o < xv.length; o += c) {
      for (let k = 0; k < c; k++) {
        const v = xv[o + k];
        s[k] += v;
        ss[k] += v * v;
      }
    }
    for (let k = 0; k < c; k++) {
      s[k] /= rows;
      ss[k] = Math.max(ss[k] / rows - s[k] * s[k], 0) * rows;
    }
    const scale = new Float64Array(c), shift = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      const v = ss[k] / rows;
      const rs = 1 / Math.sqrt(v + eps);
      mv[k] = s[k];
      vv[k] = v;
      rv[k] = rs;
      scale[k] = rs * wv[k];
      shift[k] = bv[k] - s[k] * scale[k];
    }
    for (let o = 0; o < xv.length; o += c) for (let k = 0; k < c; k++) yv[o + k] = xv[o + k] * scale[k] + shift[k];
  });
  return { y, mean, variance, rstd };
}

/**
 * Gradient of {@link batchNormForward}.
 * @returns `[dx, dw, db]`
 */
export function batchNormBackward(dy: tf.Tensor, x: tf.Tensor, mean: tf.Tensor, rstd: tf.Tensor, w: tf.Tensor): tf.Tensor[] {
  const c = x.shape[x.rank - 1];
  const rows = x.size / c;
  const lib = nativeAddon();
  return runOnHost([dy, x, mean, rstd, w], [x.shape, [c], [c]], ([gv, xv, mv, rv, wv], [dxv, dwv, dbv]) => {
    if (lib) return lib.batchNormGrad(...f32([gv, xv, mv, rv, wv]), dxv, dwv, dbv);
    const sdy = new Float64Array(c), sdyx = new Float64Array(c);
    for (let o = 0; o < xv.length; o += c) {
      for (let k = 0; k < c; k++) {
        const d = gv[o + k];
        sdy[k] += d;
        sdyx[k] += d * (xv[o + k] - mv[k]) * rv[k];
      }
    }
    const a = new Float64Array(c), m1 = new Float64Array(c), m2 = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      a[k] = rv[k] * wv[k];
      m1[k] = sdy[k] / rows;
      m2[k] = sdyx[k] / rows;
      dwv[k] = sdyx[k];
      dbv[k] = sdy[k];
    }
    for (let o = 0; o < xv.length; o += c) {
      for (let k = 0; k < c; k++) {
        const xh = (xv[o + k] - mv[k]) * rv[k];
        dxv[o + k] = a[k] * (gv[o + k] - m1[k] - xh * m2[k]);
      }
    }
  });
}

/**
 * BatchNorm's running averages after a batch: `(1 − m)·running + m·batch`, the variance's batch
 * value unbiased (× n/(n − 1), as PyTorch). One pass for both on cpu/wasm memory (the chain ran nine
 * kernels per layer), each step rounded to float32 as its kernel rounds: the same bits.
 * @param runningMean `[C]`, runningVar `[C]`, mean `[C]`, variance `[C]` (biased, over `n` values)
 * @returns the new `[runningMean, runningVar]`
 */
export function runningStatsUpdate(runningMean: tf.Tensor, runningVar: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, n: number, momentum: number): [tf.Tensor, tf.Tensor] {
  const bessel = n / Math.max(n - 1, 1);
  const all = [runningMean, runningVar, mean, variance];
  if (!hostKernelsAvailable() || all.some((t) => t.dtype !== 'float32')) {
    return tf.tidy(() => [
      tf.add(tf.mul(runningMean, 1 - momentum), tf.mul(mean, momentum)),
      tf.add(tf.mul(runningVar, 1 - momentum), tf.mul(tf.mul(variance, bessel), momentum)),
    ]);
  }
  const f = Math.fround, keep = f(1 - momentum), take = f(momentum), b = f(bessel);
  const [rm, rv] = runOnHost(all, [runningMean.shape, runningVar.shape], ([om, ov, bm, bv], [nm, nv]) => {
    for (let c = 0; c < nm.length; c++) {
      nm[c] = f(f(om[c] * keep) + f(bm[c] * take));
      nv[c] = f(f(ov[c] * keep) + f(f(bv[c] * b) * take));
    }
  });
  return [rm, rv];
}
