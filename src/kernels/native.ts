/**
 * Optional native kernels for the wasm backend: the `c2f-native-kernels` addon (`native/`, built by
 * node-gyp at install time against Debian's OpenBLAS; see the README) computes `BatchMatMul`,
 * `Conv2D`, `DepthwiseConv2dNative`, `Exp` and `Erf` in place on the wasm heap with OpenBLAS's
 * sgemm and OpenMP loops compiled for the machine (AVX2/AVX-512), where the wasm build is limited
 * to 128-bit SIMD and runs its transcendental kernels on one thread; `Concat` and `SplitV` along
 * inner axes become row copies (the wasm kernels' are JavaScript loops). Tensors stay in the wasm
 * heap; only the arithmetic moves. Cases the addon does not cover (other dtypes or layouts,
 * channel multipliers, broadcast batch shapes) run the original wasm kernel.
 *
 * Numerics: sgemm and the vectorised loops sum in another order than XNNPACK, so results differ
 * from the wasm kernels' in the last bits (the backbone parity and gradient tests hold either way).
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';
import { hostKernelsAvailable } from './host.ts';

/** The addon's functions (native/src/kernels.c). */
export interface NativeAddon {
  gemm(transA: boolean, transB: boolean, batch: number, m: number, n: number, k: number,
    a: Float32Array, strideA: number, b: Float32Array, strideB: number, c: Float32Array): void;
  conv2d(x: Float32Array, w: Float32Array, y: Float32Array, dims: Int32Array): void;
  conv2dFilterGrad(x: Float32Array, dy: Float32Array, dw: Float32Array, dims: Int32Array): void;
  depthwise(x: Float32Array, w: Float32Array, y: Float32Array, dims: Int32Array): void;
  unary(op: number, x: Float32Array, y: Float32Array): void;
  layerNorm(x: Float32Array, w: Float32Array, b: Float32Array, y: Float32Array, mean: Float32Array, rstd: Float32Array, eps: number): void;
  layerNormGrad(dy: Float32Array, x: Float32Array, mean: Float32Array, rstd: Float32Array, w: Float32Array, dx: Float32Array, dw: Float32Array, db: Float32Array): void;
  batchNorm(x: Float32Array, w: Float32Array, b: Float32Array, y: Float32Array, mean: Float32Array, variance: Float32Array, rstd: Float32Array, eps: number): void;
  batchNormGrad(dy: Float32Array, x: Float32Array, mean: Float32Array, rstd: Float32Array, w: Float32Array, dx: Float32Array, dw: Float32Array, db: Float32Array): void;
  gelu(x: Float32Array, y: Float32Array, cdf: Float32Array): void;
  geluGrad(dy: Float32Array, x: Float32Array, cdf: Float32Array, dx: Float32Array): void;
  /** consts: beta1, 1-beta1, beta2, 1-beta2, c1, c2, eps, lr, decay, decays (0/1) */
  adamw(p: Float32Array, m: Float32Array, v: Float32Array, g: Float32Array, out: Float32Array, consts: Float32Array): void;
  channelSum(x: Float32Array, out: Float32Array): void;
  channelDot(a: Float32Array, b: Float32Array, out: Float32Array): void;
  channelOp(op: number, x: Float32Array, v: Float32Array, out: Float32Array): void;
  /** @returns the first row whose label is neither in [0, C) nor `ignore`, or -1 */
  labelLogSoftmax(x: Float32Array, labels: Int32Array, logp: Float32Array, probs: Float32Array, ignore: number): number;
  labelLogSoftmaxGrad(dy: Float32Array, probs: Float32Array, labels: Int32Array, dx: Float32Array, ignore: number): void;
  copyRows(src: Float32Array, dst: Float32Array, rows: number, width: number, srcStride: number, srcOffset: number, dstStride: number, dstOffset: number): void;
  setThreads(n: number): void;
}

interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array;
}

/** `C2F_NATIVE_KERNELS=0`, read once: the addon is asked for on every fused op. */
const disabled = process.env.C2F_NATIVE_KERNELS === '0';
let addon: NativeAddon | null | undefined;
let loadError = '';

/** The addon, or null (why: {@link nativeKernelsStatus}) where it was not built or does not load. */
function loadAddon(): NativeAddon | null {
  if (addon !== undefined) return addon;
  // Before the OpenMP and OpenBLAS runtimes start: idle threads sleep instead of spinning (a
  // spinning pool took the cores from the wasm backend's threads between native calls).
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  process.env.OPENBLAS_NUM_THREADS ??= '1';
  try {
    addon = createRequire(import.meta.url)('c2f-native-kernels') as NativeAddon;
  } catch (e) {
    addon = null;
    loadError = (e as Error).message.split('\n')[0];
  }
  return addon;
}

let registered = false;
let threadCount = 1;

/** OpenMP threads of the native kernels (as last registered). */
export function nativeKernelThreads(): number {
  return threadCount;
}

/**
 * The addon for the fused host kernels (src/kernels/*.ts run it on cpu or wasm memory), or null
 * where it is not built or `C2F_NATIVE_KERNELS=0`.
 */
export function nativeAddon(): NativeAddon | null {
  return disabled ? null : loadAddon();
}

/** The addon where the fused kernels run on the active backend (cpu/wasm, host kernels on), else null. */
export function hostAddon(): NativeAddon | null {
  return hostKernelsAvailable() ? nativeAddon() : null;
}

/** True when the native kernels serve the active backend (wasm with the addon registered). */
export function nativeKernelsActive(): boolean {
  return registered && tf.getBackend() === 'wasm';
}

/** Whether the native kernels serve the wasm backend, and if not, why. */
export function nativeKernelsStatus(): { active: boolean; why?: string } {
  if (registered) return { active: true };
  if (disabled) return { active: false, why: 'C2F_NATIVE_KERNELS=0' };
  loadAddon();
  return { active: false, why: addon ? 'not registered (the wasm backend was not started)' : `addon not loaded: ${loadError}` };
}

/**
 * Registers the native kernels for the wasm backend (once; call after it is initialised), or sets
 * their thread count when they are registered.
 * @returns false where the addon is missing or `C2F_NATIVE_KERNELS=0`.
 */
export function registerNativeKernels(threads: number): boolean {
  const lib = nativeAddon();
  if (!lib) return false;
  lib.setThreads(threads);
  threadCount = threads;
  if (registered) return true;
  override(tf.BatchMatMul, (inputs, attrs, backend) => batchMatMul(lib, inputs, attrs, backend));
  override(tf.Conv2D, (inputs, attrs, backend) => conv(lib, inputs, attrs, backend, false));
  override(tf.DepthwiseConv2dNative, (inputs, attrs, backend) => conv(lib, inputs, attrs, backend, true));
  override(tf.Exp, (inputs, _attrs, backend) => unary(lib, 0, inputs, backend));
  override(tf.Erf, (inputs, _attrs, backend) => unary(lib, 1, inputs, backend));
  override(tf.Concat, (inputs, attrs, backend) => concat(lib, inputs, attrs, backend));
  override(tf.SplitV, (inputs, attrs, backend) => splitV(lib, inputs, attrs, backend));
  registered = true;
  return true;
}

type NativeFunc = (inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, backend: WasmBackend) => tf.TensorInfo | tf.TensorInfo[] | null;

/** Replaces a wasm kernel by `run`, which returns null for the cases the original keeps. */
function override(kernelName: string, run: NativeFunc): void {
  const original = tf.getKernel(kernelName, 'wasm');
  if (!original) throw new Error(`registerNativeKernels: the wasm backend has no ${kernelName} kernel`);
  tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({
    ...original,
    kernelFunc: (args) => run(args.inputs, args.attrs ?? {}, args.backend as unknown as WasmBackend) ?? original.kernelFunc(args),
  });
}

function allFloat32(...ts: tf.TensorInfo[]): boolean {
  return ts.every((t) => t.dtype === 'float32');
}

function batchMatMul(lib: NativeAddon, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, backend: WasmBackend): tf.TensorInfo | null {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
  if (!allFloat32(a, b) || a.shape.length !== b.shape.length || a.shape.length < 2) return null;
  const r = a.shape.length;
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, r - 2)), batchB = tf.util.sizeFromShape(b.shape.slice(0, r - 2));
  const sameBatch = tf.util.arraysEqual(a.shape.slice(0, r - 2), b.shape.slice(0, r - 2));
  if (!sameBatch && batchA !== 1 && batchB !== 1) return null;
  const m = transposeA ? a.shape[r - 1] : a.shape[r - 2];
  const k = transposeA ? a.shape[r - 2] : a.shape[r - 1];
  const kb = transposeB ? b.shape[r - 1] : b.shape[r - 2];
  const n = transposeB ? b.shape[r - 2] : b.shape[r - 1];
  if (k !== kb) return null; // the original kernel raises tfjs's error
  const batchShape = batchA >= batchB ? a.shape.slice(0, r - 2) : b.shape.slice(0, r - 2);
  const out = backend.makeOutput([...batchShape, m, n], 'float32');
  if (m * n === 0) return out;
  const batch = Math.max(batchA, batchB);
  lib.gemm(transposeA, transposeB, batch, m, n, k, backend.typedArrayFromHeap(a), batchA > 1 ? m * k : 0,
    backend.typedArrayFromHeap(b), batchB > 1 ? k * n : 0, backend.typedArrayFromHeap(out));
  return out;
}

function conv(lib: NativeAddon, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, backend: WasmBackend, depthwise: boolean): tf.TensorInfo | null {
  const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const a = attrs as unknown as {
    strides: [number, number] | number; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
    dataFormat?: string; dilations: [number, number] | number; dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  if (!allFloat32(x, filter) || (a.dataFormat ?? 'NHWC') !== 'NHWC' || x.shape.length !== 4) return null;
  if (depthwise && filter.shape[3] !== 1) return null;
  const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number], a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, depthwise);
  const out = backend.makeOutput(info.outShape, 'float32');
  if (tf.util.sizeFromShape(info.outShape) === 0) return out;
  const geometry = [info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left,
    info.dilationHeight, info.dilationWidth, info.outHeight, info.outWidth];
  const [xv, wv, yv] = [backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(filter), backend.typedArrayFromHeap(out)];
  if (depthwise) {
    lib.depthwise(xv, wv, yv, Int32Array.from([info.batchSize, info.inHeight, info.inWidth, info.inChannels,
      info.filterHeight, info.filterWidth, ...geometry]));
  } else {
    lib.conv2d(xv, wv, yv, Int32Array.from([info.batchSize, info.inHeight, info.inWidth, info.inChannels,
      info.filterHeight, info.filterWidth, info.outChannels, ...geometry]));
  }
  return out;
}

/** Concatenation along any axis as row copies (the wasm kernel's are JavaScript loops). */
function concat(lib: NativeAddon, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, backend: WasmBackend): tf.TensorInfo | null {
  const all = Object.values(inputs) as tf.TensorInfo[];
  if (all.length < 2 || !allFloat32(...all)) return null;
  const axis = tf.util.parseAxisParam((attrs as { axis: number }).axis, all[0].shape)[0];
  tf.backend_util.assertParamsConsistent(all.map((t) => t.shape), axis);
  const parts = all.filter((t) => tf.util.sizeFromShape(t.shape) > 0);
  if (parts.length < 2) return null; // the original shares the one non-empty input
  const out = backend.makeOutput(tf.backend_util.computeOutShape(all.map((t) => t.shape), axis), 'float32');
  const rows = tf.util.sizeFromShape(parts[0].shape.slice(0, axis));
  const widths = parts.map((t) => tf.util.sizeFromShape(t.shape.slice(axis)));
  const total = widths.reduce((a, b) => a + b, 0);
  const dst = backend.typedArrayFromHeap(out);
  let offset = 0;
  parts.forEach((t, i) => {
    lib.copyRows(backend.typedArrayFromHeap(t), dst, rows, widths[i], widths[i], 0, total, offset);
    offset += widths[i];
  });
  return out;
}

/** Split along any axis as row copies (the wasm kernel runs one strided slice per piece). */
function splitV(lib: NativeAddon, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap, backend: WasmBackend): tf.TensorInfo[] | null {
  const { x } = inputs as { x: tf.TensorInfo };
  if (!allFloat32(x)) return null;
  const a = attrs as { numOrSizeSplits: number | number[]; axis: number };
  const axis = tf.util.parseAxisParam(a.axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, a.numOrSizeSplits, axis);
  const rows = tf.util.sizeFromShape(x.shape.slice(0, axis));
  const inner = tf.util.sizeFromShape(x.shape.slice(axis + 1));
  const total = x.shape[axis] * inner;
  const outs = sizes.map((s) => backend.makeOutput([...x.shape.slice(0, axis), s, ...x.shape.slice(axis + 1)], 'float32'));
  // Views after the last allocation: allocating may move the wasm heap.
  const src = backend.typedArrayFromHeap(x);
  let offset = 0;
  outs.forEach((o, i) => {
    const width = sizes[i] * inner;
    if (width > 0 && rows > 0) lib.copyRows(src, backend.typedArrayFromHeap(o), rows, width, total, offset, width, 0);
    offset += width;
  });
  return outs;
}

function unary(lib: NativeAddon, op: number, inputs: tf.NamedTensorInfoMap, backend: WasmBackend): tf.TensorInfo | null {
  const { x } = inputs as { x: tf.TensorInfo };
  if (!allFloat32(x)) return null;
  const out = backend.makeOutput(x.shape, 'float32');
  if (tf.util.sizeFromShape(x.shape) > 0) lib.unary(op, backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(out));
  return out;
}
