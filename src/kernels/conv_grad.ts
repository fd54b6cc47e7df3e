/**
 * The dense convolution's filter gradient in one native pass (patches of a chunk of output rows,
 * then one sgemm into the gradient) on cpu/wasm memory. As forward ops it was a convolution of
 * the transposed input with the output gradient as a kernel (two transposes, a 32x32 "kernel" whose
 * patches XNNPACK or im2col copy at full size), or a one-hot-kernel convolution for thin inputs.
 */
import * as tf from '@tensorflow/tfjs';
import { runOnHost } from './host.ts';
import { hostAddon } from './native.ts';

/** Stride, top/left zero padding and dilation of a convolution (bottom/right padding follows from the sizes). */
export interface ConvGradGeometry {
  stride: [number, number];
  padTopLeft: [number, number];
  dilation: [number, number];
}

/**
 * `dW[i, j, ci, co] = Σ_{n,y,x} x[n, y·sh − pt + i·dh, x·sw − pl + j·dw, ci] · dy[n, y, x, co]` (zero
 * outside `x`), or null where the addon does not serve the active backend.
 * @param x `[N, H, W, Cin]` float32
 * @param dy `[N, Ho, Wo, Cout]` float32
 * @param wShape `[kh, kw, Cin, Cout]`
 */
export function nativeConvFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], g: ConvGradGeometry): tf.Tensor4D | null {
  const lib = hostAddon();
  if (!lib || x.dtype !== 'float32' || dy.dtype !== 'float32') return null;
  const [n, h, w, cin] = x.shape;
  const [, ho, wo, cout] = dy.shape;
  const [kh, kw] = wShape;
  const dims = Int32Array.of(n, h, w, cin, kh, kw, cout, g.stride[0], g.stride[1], g.padTopLeft[0], g.padTopLeft[1],
    g.dilation[0], g.dilation[1], ho, wo);
  return runOnHost([x, dy], [wShape], ([xv, dyv], [dwv]) => lib.conv2dFilterGrad(xv as Float32Array, dyv as Float32Array, dwv, dims))[0] as tf.Tensor4D;
}
