/**
 * 2-D convolution with gradients built from forward ops.
 *
 * tfjs's own convolution gradients are naive loops on the cpu backend and partly missing on wasm
 * (`Conv2DBackpropFilter`, `DepthwiseConv2dNativeBackpropInput/Filter`). Here every gradient is a
 * forward convolution, a matmul, or a strided slice, all of which are fast on cpu and wasm:
 * - pointwise (1x1) and patchify (k == stride) convs ARE matmuls: autodiff handles them;
 * - general dense convs: input grad = conv of the (zero-stuffed) output grad with the flipped,
 *   in/out-swapped kernel; filter grad = one native pass where the addon is built (kernels/conv_grad.ts),
 *   else a convolution with dy as the kernel, or one matmul per kernel tap;
 * - depthwise convs: input grad = depthwise conv with the flipped kernel; filter grad = depthwise conv
 *   of the padded input with the output grad as kernel, batch folded into channels.
 * Grouped convs are split into per-group dense convs.
 *
 * Weights use tfjs layouts: dense `[kh, kw, inC/groups, outC]`, depthwise `[kh, kw, C, multiplier]`.
 */
import * as tf from '@tensorflow/tfjs';
import { matMul } from './matmul.ts';
import { inputNeedsGradient } from './backprop.ts';
import { flipKernel } from '../kernels/host.ts';
import { nativeConvFilterGrad } from '../kernels/conv_grad.ts';

/** Convolution geometry, PyTorch-style explicit symmetric or asymmetric padding. */
export interface ConvGeometry {
  stride: [number, number];
  /** `[[top, bottom], [left, right]]` zero padding. */
  padding: [[number, number], [number, number]];
  dilation: [number, number];
  groups: number;
}

type Pad2 = [[number, number], [number, number]];

/** Output size of a convolution along one axis (PyTorch's formula). */
export function convOutSize(inSize: number, k: number, stride: number, padBefore: number, padAfter: number, dilation: number): number {
  return Math.floor((inSize + padBefore + padAfter - dilation * (k - 1) - 1) / stride) + 1;
}

/** Pads (positive amounts) or crops (negative amounts) the spatial axes of an NHWC tensor. */
function padOrCrop(x: tf.Tensor4D, p: Pad2): tf.Tensor4D {
  const [[t, b], [l, r]] = p;
  let y = x;
  if (t > 0 || b > 0 || l > 0 || r > 0) {
    y = tf.pad(y, [[0, 0], [Math.max(t, 0), Math.max(b, 0)], [Math.max(l, 0), Math.max(r, 0)], [0, 0]]);
  }
  if (t < 0 || b < 0 || l < 0 || r < 0) {
    const [n, h, w, c] = y.shape;
    const top = Math.max(-t, 0);
    const left = Math.max(-l, 0);
    y = tf.slice(y, [0, top, left, 0], [n, h - top - Math.max(-b, 0), w - left - Math.max(-r, 0), c]);
  }
  return y;
}

/**
 * `x` padded/cropped by `p` as a convolution's input: non-negative pads become the convolution's own
 * explicit padding (no padded copy), crops a slice.
 */
function asConvInput(x: tf.Tensor4D, p: Pad2): [tf.Tensor4D, ExplicitPadding | 'valid'] {
  if (p.every(([a, b]) => a >= 0 && b >= 0)) return [x, [[0, 0], p[0], p[1], [0, 0]]];
  return [padOrCrop(x, p), 'valid'];
}

/** `[N, H, W, C]` → `[H, W, N, C]`; a reshape when N = 1. */
function batchToThirdAxis(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  return (n === 1 ? x.reshape([h, w, 1, c]) : x.transpose([1, 2, 0, 3])) as tf.Tensor4D;
}

/** Inserts `stride - 1` zeros between spatial elements: `[N,H,W,C]` → `[N,s(H-1)+1,s(W-1)+1,C]`. */
function zeroStuff(x: tf.Tensor4D, stride: [number, number]): tf.Tensor4D {
  const [sh, sw] = stride;
  if (sh === 1 && sw === 1) return x;
  const [n, h, w, c] = x.shape;
  const spread = tf.pad(x.reshape([n, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
  return tf.slice(spread.reshape([n, h * sh, w * sw, c]) as tf.Tensor4D, [0, 0, 0, 0], [n, sh * (h - 1) + 1, sw * (w - 1) + 1, c]);
}

/**
 * Padding that turns the zero-stuffed output gradient into the input gradient under a stride-1
 * "full" convolution with the flipped kernel, already cropped by the forward padding.
 */
function inputGradPadding(inShape: [number, number], outShape: [number, number], k: [number, number], g: ConvGeometry): Pad2 {
  const pads: number[][] = [];
  for (let a = 0; a < 2; a++) {
    const [pb, pa] = g.padding[a];
    const span = g.dilation[a] * (k[a] - 1);
    const padded = inShape[a] + pb + pa;
    const stuffed = g.stride[a] * (outShape[a] - 1) + 1;
    pads.push([span - pb, padded - stuffed - pa]);
  }
  return pads as Pad2;
}

/** One strided view of the padded input per kernel tap `(i, j)`: `[N, Ho, Wo, C]`. */
function tapSlice(xPad: tf.Tensor4D, i: number, j: number, outHW: [number, number], g: ConvGeometry): tf.Tensor4D {
  const [n, , , c] = xPad.shape;
  const [dh, dw] = g.dilation;
  const [sh, sw] = g.stride;
  const top = i * dh;
  const left = j * dw;
  return tf.stridedSlice(xPad, [0, top, left, 0], [n, top + sh * (outHW[0] - 1) + 1, left + sw * (outHW[1] - 1) + 1, c], [1, sh, sw, 1]) as tf.Tensor4D;
}

function padInput(x: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  const [[t, b], [l, r]] = g.padding;
  return t || b || l || r ? tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]]) : x;
}

type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

function explicitPad(g: ConvGeometry): ExplicitPadding {
  return [[0, 0], g.padding[0], g.padding[1], [0, 0]];
}

/** The three pieces of a convolution whose gradients we supply ourselves. */
interface ConvKernels {
  forward(x: tf.Tensor4D, w: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D;
  inputGrad(dy: tf.Tensor4D, w: tf.Tensor4D, xShape: number[], g: ConvGeometry): tf.Tensor4D;
  filterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], g: ConvGeometry): tf.Tensor4D;
}

/** Runs `k.forward` with `k.inputGrad`/`k.filterGrad` as its gradients (instead of tfjs's kernels). */
function convWithGrads(k: ConvKernels, x: tf.Tensor4D, w: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  const run = tf.customGrad((...args: unknown[]) => {
    const [xIn, wIn, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([xIn, wIn]);
    return {
      value: k.forward(xIn, wIn, g),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ws] = saved as [tf.Tensor4D, tf.Tensor4D];
        // The image into the first conv needs no gradient (nor a frozen weight): skip what nothing reads.
        const dx = inputNeedsGradient(0) ? k.inputGrad(dy as tf.Tensor4D, ws, xs.shape, g) : tf.zeros(xs.shape);
        const dw = inputNeedsGradient(1) ? k.filterGrad(xs, dy as tf.Tensor4D, ws.shape, g) : tf.zeros(ws.shape);
        return [dx, dw];
      },
    };
  });
  return run(x, w) as tf.Tensor4D;
}

/** Dense convolution (groups = 1) through `tf.conv2d`, with the gradients described above. */
const DENSE: ConvKernels = {
  forward: (x, w, g) => tf.conv2d(x, w, g.stride, explicitPad(g), 'NHWC', g.dilation),
  inputGrad: denseInputGrad,
  filterGrad: denseFilterGrad,
};

function denseInputGrad(dy: tf.Tensor4D, w: tf.Tensor4D, xShape: number[], g: ConvGeometry): tf.Tensor4D {
  const [kh, kw] = w.shape;
  const flipped = flipKernel(w, true);
  const pads = inputGradPadding([xShape[1], xShape[2]], [dy.shape[1], dy.shape[2]], [kh, kw], g);
  const [z, pad] = asConvInput(zeroStuff(dy, g.stride), pads);
  return tf.conv2d(z, flipped, 1, pad, 'NHWC', g.dilation);
}

/** Up to this many `kh*kw*cin` patch columns, the filter gradient uses one im2col convolution. */
const IM2COL_MAX_COLUMNS = 64;

function denseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], g: ConvGeometry): tf.Tensor4D {
  const native = nativeConvFilterGrad(x, dy, wShape, { stride: g.stride, padTopLeft: [g.padding[0][0], g.padding[1][0]], dilation: g.dilation });
  if (native) return native;
  const [kh, kw, cin, cout] = wShape;
  if (kh * kw * cin <= IM2COL_MAX_COLUMNS) return filterGradIm2col(padInput(x, g), dy, wShape, g);
  const [sh, sw] = g.stride, [dh, dw] = g.dilation;
  if ((sh === 1 || dh === 1) && (sw === 1 || dw === 1)) {
    // dW[i, j, ci, co] = Σ_{n,y,x} xPad[n, y·s + i·d, x·s + j·d, ci] · dy[n, y, x, co] is itself a
    // convolution: batch ↔ channels swapped, dy as the kernel (dilated by the stride, strided by
    // the dilation), the forward padding as its padding. tfjs refuses stride and dilation both > 1
    // on one axis, hence the condition. About twice as fast as kh*kw matmuls on wasm (XNNPACK's
    // convolution beats its matmul).
    const xT = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D; // [cin, H, W, n]
    const dyT = batchToThirdAxis(dy); // [ho, wo, n, cout]
    const full = tf.conv2d(xT, dyT, [dh, dw], explicitPad(g), 'NHWC', [sh, sw]); // [cin, >=kh, >=kw, cout]
    const cropped = full.shape[1] === kh && full.shape[2] === kw ? full : tf.slice(full, [0, 0, 0, 0], [cin, kh, kw, cout]);
    return tf.transpose(cropped, [1, 2, 0, 3]);
  }
  return filterGradByTaps(padInput(x, g), dy, wShape, g);
}

/** Thin inputs (the RGB stem): all patches from one convolution by a one-hot kernel, one matmul. */
function filterGradIm2col(xPad: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], g: ConvGeometry): tf.Tensor4D {
  const [kh, kw, cin, cout] = wShape;
  const [n, ho, wo] = dy.shape;
  const cols = kh * kw * cin;
  const eye = tf.oneHot(tf.range(0, cols, 1, 'int32'), cols).toFloat().reshape([kh, kw, cin, cols]) as tf.Tensor4D;
  const patches = tf.conv2d(xPad, eye, g.stride, 'valid', 'NHWC', g.dilation).reshape([n * ho * wo, cols]) as tf.Tensor2D;
  const dyT = tf.transpose(dy.reshape([n * ho * wo, cout])) as tf.Tensor2D;
  return tf.matMul(dyT, patches).transpose().reshape([kh, kw, cin, cout]);
}

/** Stride and dilation both > 1: one `[cout, rows] x [rows, cin]` matmul per kernel tap. */
function filterGradByTaps(xPad: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], g: ConvGeometry): tf.Tensor4D {
  const [kh, kw, cin, cout] = wShape;
  const [n, ho, wo] = dy.shape;
  const rows = n * ho * wo;
  // Transposing dy once is cheaper than transposing every [rows, cin] tap (wasm transposes are slow).
  const dyT = tf.transpose(dy.reshape([rows, cout])) as tf.Tensor2D;
  const taps: tf.Tensor2D[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const patch = tapSlice(xPad, i, j, [ho, wo], g);
      const p2 = patch.reshape([rows, cin]) as tf.Tensor2D;
      taps.push(tf.matMul(dyT, p2));
      // Free each tap's copy at once: kh*kw of them alive together is the im2col blow-up.
      patch.dispose();
      p2.dispose();
    }
  }
  return tf.stack(taps).reshape([kh, kw, cout, cin]).transpose([0, 1, 3, 2]);
}

/** Depthwise convolution (groups = inC) through `tf.depthwiseConv2d`, with forward-op gradients. */
const DEPTHWISE: ConvKernels = {
  forward: (x, w, g) => tf.depthwiseConv2d(x, w, g.stride, explicitPad(g), 'NHWC', g.dilation),
  inputGrad: depthwiseInputGrad,
  filterGrad: depthwiseFilterGrad,
};

function depthwiseInputGrad(dy: tf.Tensor4D, w: tf.Tensor4D, xShape: number[], g: ConvGeometry): tf.Tensor4D {
  const [kh, kw, c, m] = w.shape;
  // Output channel c*m+k depends on input channel c only: convolve each output channel with its own
  // flipped kernel, then sum the m multiplier channels of each input channel.
  const flipped = flipKernel(w, false).reshape([kh, kw, c * m, 1]) as tf.Tensor4D;
  const pads = inputGradPadding([xShape[1], xShape[2]], [dy.shape[1], dy.shape[2]], [kh, kw], g);
  const [z, pad] = asConvInput(zeroStuff(dy, g.stride), pads);
  const full = tf.depthwiseConv2d(z, flipped, 1, pad, 'NHWC', g.dilation);
  if (m === 1) return full;
  const [n, h, wd] = full.shape;
  return full.reshape([n, h, wd, c, m]).sum(4) as tf.Tensor4D;
}

function depthwiseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], g: ConvGeometry): tf.Tensor4D {
  const [kh, kw, c, m] = wShape;
  const [n, ho, wo] = dy.shape;
  let xm = x;
  if (m > 1) {
    const [, h, w] = x.shape;
    xm = tf.tile(x.reshape([n, h, w, c, 1]), [1, 1, 1, 1, m]).reshape([n, h, w, c * m]);
  }
  const [sh, sw] = g.stride;
  const [dh, dw] = g.dilation;
  if (4 * dy.size > DW_KERNEL_MAX_BYTES) return depthwiseFilterGradByTaps(padInput(xm, g), dy, wShape, g);
  // dw[i,j,ch] = sum_{n,y,x} xPad[n, d*i + s*y, d*j + s*x, ch] * dy[n,y,x,ch]: a depthwise conv of
  // the input (batch folded into channels, the forward padding as its padding) with dy as the
  // kernel, stride d and dilation s.
  const [, h, w, cm] = xm.shape;
  const xFold = batchToThirdAxis(xm).reshape([1, h, w, n * cm]);
  const kFold = batchToThirdAxis(dy).reshape([ho, wo, n * cm, 1]);
  const out = tf.depthwiseConv2d(xFold as tf.Tensor4D, kFold as tf.Tensor4D, [dh, dw], explicitPad(g), 'NHWC', [sh, sw]);
  return out.slice([0, 0, 0, 0], [1, kh, kw, n * cm]).reshape([kh, kw, n, cm]).sum(2).reshape([kh, kw, c, m]);
}

/**
 * Above this many bytes of dy, the depthwise filter gradient is not a convolution with dy as its
 * kernel: XNNPACK would pack a copy of that kernel (77 MB for a 288-channel map at 200x336) and, near
 * the wasm heap's cap, fails to allocate it without raising an error (the gradient comes out wrong).
 */
const DW_KERNEL_MAX_BYTES = 32 * 2 ** 20;

/**
 * Depthwise filter gradient one tap at a time: `sum(view_ij(xPad) * dy)` over batch and space.
 * @param xPad the padded input `[N, Hp, Wp, C*M]` (channels already repeated for multiplier M)
 * @param dy `[N, Ho, Wo, C*M]`
 * @returns `[kh, kw, C, M]`
 */
export function depthwiseFilterGradByTaps(xPad: tf.Tensor4D, dy: tf.Tensor4D, wShape: number[], g: ConvGeometry): tf.Tensor4D {
  const [kh, kw, c, m] = wShape;
  const taps: tf.Tensor1D[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const view = tapSlice(xPad, i, j, [dy.shape[1], dy.shape[2]], g);
      const prod = tf.mul(view, dy);
      taps.push(tf.sum(prod, [0, 1, 2]) as tf.Tensor1D);
      // Free each tap's full-size temporaries at once (a tidy would keep all kh*kw of them).
      tf.dispose([view, prod]);
    }
  }
  return tf.stack(taps).reshape([kh, kw, c, m]);
}

/** Kernel with `dilation - 1` zeros between taps: `[kh, kw, a, b]` → `[d(kh-1)+1, d(kw-1)+1, a, b]`. */
export function dilateKernel(w: tf.Tensor4D, dilation: [number, number]): tf.Tensor4D {
  const [kh, kw, a, b] = w.shape;
  const [dh, dw] = dilation;
  const spread = tf.pad(w.reshape([kh, 1, kw, 1, a, b]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]);
  return tf.slice(spread.reshape([kh * dh, kw * dw, a, b]) as tf.Tensor4D, [0, 0, 0, 0], [dh * (kh - 1) + 1, dw * (kw - 1) + 1, a, b]);
}

/** 1x1, stride 1, no padding: a matmul over channels. */
function pointwiseConv(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  const [n, h, wd, c] = x.shape;
  const cout = w.shape[3];
  return matMul(x.reshape([n * h * wd, c]), w.reshape([c, cout])).reshape([n, h, wd, cout]);
}

/** Kernel == stride, no padding, no dilation: non-overlapping patches, i.e. space-to-depth + matmul. */
function patchifyConv(x: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  const [kh, kw, cin, cout] = w.shape;
  const [n, h, wd] = x.shape;
  const ho = Math.floor(h / kh);
  const wo = Math.floor(wd / kw);
  let xs = x;
  if (ho * kh !== h || wo * kw !== wd) xs = tf.slice(x, [0, 0, 0, 0], [n, ho * kh, wo * kw, cin]);
  const patches = xs.reshape([n, ho, kh, wo, kw, cin]).transpose([0, 1, 3, 2, 4, 5]).reshape([n * ho * wo, kh * kw * cin]);
  return matMul(patches as tf.Tensor2D, w.reshape([kh * kw * cin, cout])).reshape([n, ho, wo, cout]);
}

/**
 * 2-D convolution, NHWC, differentiable with fast gradients on every backend.
 * @param x `[N, H, W, inC]`
 * @param w dense/grouped `[kh, kw, inC/groups, outC]`; depthwise (groups == inC) `[kh, kw, inC, mult]`
 * @returns `[N, Ho, Wo, outC]` with PyTorch's output size.
 */
export function conv2d(x: tf.Tensor4D, w: tf.Tensor4D, g: ConvGeometry): tf.Tensor4D {
  if ((g.stride[0] > 1 || g.stride[1] > 1) && (g.dilation[0] > 1 || g.dilation[1] > 1)) {
    // tfjs refuses stride and dilation together: spell the holes out in the kernel (rare geometry).
    return conv2d(x, dilateKernel(w, g.dilation), { ...g, dilation: [1, 1] });
  }
  const [kh, kw, wIn] = w.shape;
  const cin = x.shape[3];
  const noPad = g.padding.every(([a, b]) => a === 0 && b === 0);
  const unitDil = g.dilation[0] === 1 && g.dilation[1] === 1;
  if (g.groups === 1) {
    tf.util.assert(wIn === cin, () => `conv2d: input has ${cin} channels but the weight expects ${wIn}`);
    if (kh === 1 && kw === 1 && noPad && g.stride[0] === 1 && g.stride[1] === 1) return pointwiseConv(x, w);
    if (kh === g.stride[0] && kw === g.stride[1] && noPad && unitDil) return patchifyConv(x, w);
    return convWithGrads(DENSE, x, w, g);
  }
  if (g.groups === cin && wIn === cin) return convWithGrads(DEPTHWISE, x, w, g);
  tf.util.assert(cin % g.groups === 0 && wIn === cin / g.groups,
    () => `conv2d: ${cin} input channels, ${g.groups} groups, weight expects ${wIn} per group`);
  const cout = w.shape[3];
  const xs = tf.split(x, g.groups, 3);
  const ws = tf.split(w, g.groups, 3);
  tf.util.assert(cout % g.groups === 0, () => `conv2d: ${cout} output channels not divisible by ${g.groups} groups`);
  return tf.concat(xs.map((xi, i) => conv2d(xi as tf.Tensor4D, ws[i] as tf.Tensor4D, { ...g, groups: 1 })), 3) as tf.Tensor4D;
}
