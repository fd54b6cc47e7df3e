/**
 * Bilinear resize and adaptive average pooling on NHWC tensors with PyTorch semantics.
 *
 * `resizeBilinear` = PyTorch `F.interpolate(mode='bilinear', align_corners=False)` (no antialias):
 * `src = (dst + 0.5) * in / out - 0.5`, clamped at 0, neighbours clamped at `in - 1`. The forward pass
 * is `tf.image.resizeBilinear(x, size, false, true)` (halfPixelCenters), which follows the same
 * formula; its gradient is ours, because tfjs 4.22's ResizeBilinearGrad kernels (cpu and wasm)
 * ignore `halfPixelCenters` and would back-propagate the wrong (legacy) interpolation weights.
 * The gradient is the transposed interpolation applied separably: dx = Rhᵀ · dy · Rw.
 *
 * `adaptiveAvgPool2d` = PyTorch `nn.AdaptiveAvgPool2d`: bin i covers
 * `[floor(i*in/out), ceil((i+1)*in/out))`; computed as separable averaging matrices (autodiff).
 */
import * as tf from '@tensorflow/tfjs';

/** Row `dst` holds the weights of input index `src` for PyTorch's align_corners=False bilinear. */
export function bilinearMatrix(outSize: number, inSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let d = 0; d < outSize; d++) {
    let s = (d + 0.5) * scale - 0.5;
    if (s < 0) s = 0;
    let i0 = Math.floor(s);
    if (i0 > inSize - 1) i0 = inSize - 1;
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l = s - i0;
    m[d * inSize + i0] += 1 - l;
    m[d * inSize + i1] += l;
  }
  return m;
}

/** Row `i` averages PyTorch AdaptiveAvgPool bin i: `[floor(i*in/out), ceil((i+1)*in/out))`. */
export function adaptivePoolMatrix(outSize: number, inSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  for (let i = 0; i < outSize; i++) {
    const start = Math.floor((i * inSize) / outSize);
    const end = Math.ceil(((i + 1) * inSize) / outSize);
    for (let j = start; j < end; j++) m[i * inSize + j] = 1 / (end - start);
  }
  return m;
}

/** `y[n] = A · x[n] · Bᵀ` per channel: x `[N,H,W,C]`, A `[Ho,H]`, B `[Wo,W]` → `[N,Ho,Wo,C]`. */
export function applySeparable(x: tf.Tensor4D, a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const ho = a.shape[0];
    const wo = b.shape[0];
    // Along W.
    let t: tf.Tensor = x.transpose([0, 1, 3, 2]).reshape([n * h * c, w]);
    t = tf.matMul(t as tf.Tensor2D, b, false, true).reshape([n, h, c, wo]);
    // Along H.
    t = t.transpose([0, 2, 3, 1]).reshape([n * c * wo, h]);
    t = tf.matMul(t as tf.Tensor2D, a, false, true).reshape([n, c, wo, ho]);
    return t.transpose([0, 3, 2, 1]) as tf.Tensor4D;
  });
}

function transposed(m: Float32Array, rows: number, cols: number): tf.Tensor2D {
  return tf.tensor2d(m, [rows, cols]).transpose() as tf.Tensor2D;
}

/** PyTorch `F.interpolate(x, size, mode='bilinear', align_corners=False)` on NHWC, with a correct gradient. */
export function resizeBilinear(x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  const [, h, w] = x.shape;
  const [ho, wo] = size;
  if (h === ho && w === wo) return tf.clone(x);
  const f = tf.customGrad(((input: tf.Tensor) => {
    const value = tf.image.resizeBilinear(input as tf.Tensor4D, [ho, wo], false, true);
    const gradFunc = (dy: tf.Tensor) => tf.tidy(() => {
      const ah = transposed(bilinearMatrix(ho, h), ho, h); // [H, Ho]
      const bw = transposed(bilinearMatrix(wo, w), wo, w); // [W, Wo]
      return applySeparable(dy as tf.Tensor4D, ah, bw);
    });
    return { value, gradFunc };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(x) as tf.Tensor4D;
}

/** PyTorch `nn.AdaptiveAvgPool2d([oh, ow])` on NHWC. */
export function adaptiveAvgPool2d(x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const [oh, ow] = size;
    if (oh === 1 && ow === 1) return tf.mean(x, [1, 2], true) as tf.Tensor4D;
    const a = tf.tensor2d(adaptivePoolMatrix(oh, h), [oh, h]);
    const b = tf.tensor2d(adaptivePoolMatrix(ow, w), [ow, w]);
    return applySeparable(x, a, b);
  });
}
