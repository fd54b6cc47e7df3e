/**
 * The shapes segmentor's test pipeline and post-processing in plain JS (no DOM, no dependency), so the
 * page predicts what `tools/test.ts` predicts:
 *  - {@link rescaleSize}: the keep-ratio size rule of `Resize` (src/datasets/transforms/resize.ts,
 *    `rescaleSize`, MMCV `rescale_size`);
 *  - {@link resizeImageBilinear}: its bilinear image resize (same file, `resizeImageBilinear`: cv2
 *    INTER_LINEAR half-pixel centres, uint8 rounded);
 *  - {@link normalizeToNchw}: `Normalize` (src/datasets/transforms/normalize.ts, `(v - mean) * (1 / std)`
 *    into float32) laid out NCHW for the ONNX input `[1, 3, h, w]`;
 *  - {@link resizeArgmax}: the logits resized back to the original size as `inferenceLogits` does
 *    (src/models/seg_inference.ts with `resizeBilinear` of src/ops/resize.ts: PyTorch bilinear,
 *    align_corners=False), then argmax over classes (first maximum wins, as tf.argMax).
 * Each is a port, not a re-design: test/browser_preprocess.test.ts checks them against the TS code.
 * Images are interleaved RGB `Uint8Array`s of `height * width * 3` bytes, row-major.
 */

/**
 * Output `[w, h]` of keep-ratio resizing a `w x h` image to `scale` `[w, h]` (MMCV `rescale_size`):
 * factor `min(max(scale) / long_edge, min(scale) / short_edge)`, sides `int(side * f + 0.5)`.
 * @param {number} w
 * @param {number} h
 * @param {[number, number]} scale
 * @returns {[number, number]}
 */
export function rescaleSize(w, h, scale) {
  const longMax = Math.max(scale[0], scale[1]);
  const shortMax = Math.min(scale[0], scale[1]);
  const f = Math.min(longMax / Math.max(h, w), shortMax / Math.min(h, w));
  return [Math.trunc(w * f + 0.5), Math.trunc(h * f + 0.5)];
}

/**
 * Source index pair and weight of output index `d` for half-pixel bilinear (cv2 INTER_LINEAR):
 * `s = (d + 0.5) * scale - 0.5`, clamped to the border.
 * @returns {[number, number, number]} `[i0, i1, weight of i1]`
 */
function coord(d, scale, n) {
  const s = (d + 0.5) * scale - 0.5;
  let i = Math.floor(s);
  let f = s - i;
  if (i < 0) { i = 0; f = 0; }
  if (i >= n - 1) { i = n - 1; f = 0; }
  return [i, Math.min(i + 1, n - 1), f];
}

/**
 * Bilinear resize of an RGB image `[inH, inW, 3]` (uint8) to `[outH, outW, 3]`, values rounded.
 * @param {Uint8Array | Uint8ClampedArray} data
 * @param {number} inW
 * @param {number} inH
 * @param {number} outW
 * @param {number} outH
 * @returns {Uint8Array}
 */
export function resizeImageBilinear(data, inW, inH, outW, outH) {
  if (data.length !== inW * inH * 3) throw new Error(`resizeImageBilinear: ${data.length} bytes for ${inW}x${inH} RGB`);
  const C = 3;
  const out = new Uint8Array(outW * outH * C);
  const x0s = new Int32Array(outW), x1s = new Int32Array(outW), fxs = new Float64Array(outW);
  const sx = inW / outW, sy = inH / outH;
  for (let x = 0; x < outW; x++) {
    const [a, b, f] = coord(x, sx, inW);
    x0s[x] = a; x1s[x] = b; fxs[x] = f;
  }
  for (let y = 0; y < outH; y++) {
    const [y0, y1, fy] = coord(y, sy, inH);
    const gy = 1 - fy;
    const r0 = y0 * inW * C, r1 = y1 * inW * C;
    let o = y * outW * C;
    for (let x = 0; x < outW; x++, o += C) {
      const fx = fxs[x], gx = 1 - fx;
      const a = r0 + x0s[x] * C, b = r0 + x1s[x] * C, c = r1 + x0s[x] * C, d = r1 + x1s[x] * C;
      for (let k = 0; k < C; k++) {
        const v = (data[a + k] * gx + data[b + k] * fx) * gy + (data[c + k] * gx + data[d + k] * fx) * fy;
        out[o + k] = (v + 0.5) | 0; // a convex combination of bytes: round, no clamp needed
      }
    }
  }
  return out;
}

/**
 * `(v - mean) * (1 / std)` per channel of an RGB image `[h, w, 3]`, as float32 `[1, 3, h, w]` (NCHW).
 * @param {Uint8Array} data
 * @param {number} w
 * @param {number} h
 * @param {{mean: number[], std: number[]}} norm
 * @returns {Float32Array}
 */
export function normalizeToNchw(data, w, h, norm) {
  const n = w * h;
  const out = new Float32Array(3 * n);
  for (let k = 0; k < 3; k++) {
    const m = norm.mean[k], inv = 1 / norm.std[k];
    for (let p = 0; p < n; p++) out[k * n + p] = (data[p * 3 + k] - m) * inv;
  }
  return out;
}

/**
 * Interpolation taps for PyTorch bilinear, align_corners=False (`resizeBilinear` in src/ops/resize.ts):
 * `s = max((d + 0.5) * in / out - 0.5, 0)`, `i0 = min(floor(s), in - 1)`, `i1 = min(i0 + 1, in - 1)`.
 * @returns {{i0: Int32Array, i1: Int32Array, w1: Float64Array}}
 */
function taps(outSize, inSize) {
  const i0 = new Int32Array(outSize), i1 = new Int32Array(outSize), w1 = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let d = 0; d < outSize; d++) {
    const s = Math.max((d + 0.5) * scale - 0.5, 0);
    const a = Math.min(Math.floor(s), inSize - 1);
    i0[d] = a; i1[d] = Math.min(a + 1, inSize - 1); w1[d] = s - a;
  }
  return { i0, i1, w1 };
}

/**
 * Bilinear (align_corners=False) resize of planar logits `[K, inH, inW]` to `[K, outH, outW]`.
 * @param {Float32Array} logits
 * @returns {Float32Array}
 */
export function resizeLogitsBilinear(logits, k, inH, inW, outH, outW) {
  if (logits.length !== k * inH * inW) throw new Error(`resizeLogitsBilinear: ${logits.length} values for [${k}, ${inH}, ${inW}]`);
  if (inH === outH && inW === outW) return Float32Array.from(logits);
  const tx = taps(outW, inW), ty = taps(outH, inH);
  const out = new Float32Array(k * outH * outW);
  for (let c = 0; c < k; c++) {
    const src = c * inH * inW;
    for (let y = 0; y < outH; y++) {
      const r0 = src + ty.i0[y] * inW, r1 = src + ty.i1[y] * inW, fy = ty.w1[y];
      let o = (c * outH + y) * outW;
      for (let x = 0; x < outW; x++, o++) {
        const a = tx.i0[x], b = tx.i1[x], fx = tx.w1[x];
        const top = logits[r0 + a] + (logits[r0 + b] - logits[r0 + a]) * fx;
        const bottom = logits[r1 + a] + (logits[r1 + b] - logits[r1 + a]) * fx;
        out[o] = top + (bottom - top) * fy;
      }
    }
  }
  return out;
}

/**
 * Label map of planar logits `[K, inH, inW]` resized (bilinear, align_corners=False) to `outH x outW`:
 * argmax over K per pixel, the first maximum on ties.
 * @param {Float32Array} logits
 * @returns {Uint8Array | Uint16Array} `outH * outW` class ids, row-major
 */
export function resizeArgmax(logits, k, inH, inW, outH, outW) {
  const r = resizeLogitsBilinear(logits, k, inH, inW, outH, outW);
  const n = outH * outW;
  const labels = k <= 256 ? new Uint8Array(n) : new Uint16Array(n);
  for (let p = 0; p < n; p++) {
    let best = 0, bv = r[p];
    for (let c = 1; c < k; c++) {
      const v = r[c * n + p];
      if (v > bv) { bv = v; best = c; }
    }
    labels[p] = best;
  }
  return labels;
}
