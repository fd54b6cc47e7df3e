/**
 * Kernels written in JavaScript over the backend's own memory: the `cpu` backend's value arrays and
 * the `wasm` backend's heap. tfjs runs a LayerNorm, a GELU or a softmax cross-entropy as chains of
 * 5-15 element-wise kernels, each one pass over memory plus its dispatch cost, most of them
 * single-threaded on wasm; one fused loop here does the same work in one or two passes. Other
 * backends (tfjs-node, webgl) keep the kernel chains: callers check {@link hostKernelsAvailable}.
 */
import * as tf from '@tensorflow/tfjs';

/** Typed views of a kernel's inputs (by dtype) and of its freshly allocated float32 outputs. */
export type HostArray = Float32Array | Int32Array | Uint8Array;

interface HostBackend {
  refCount(dataId: object): number;
  makeOutput?(shape: number[], dtype: tf.DataType): tf.TensorInfo; // wasm (cpu's has another signature)
  typedArrayFromHeap?(info: tf.TensorInfo): HostArray; // wasm
  makeTensorInfo?(shape: number[], dtype: tf.DataType, values?: Float32Array): tf.TensorInfo; // cpu
  data?: { get(dataId: object): { values?: unknown } | undefined }; // cpu
}

/**
 * What the active backend stores for `t`, without a copy: on wasm a view of its heap, on cpu the
 * tensor's values (a typed array, or a plain array some cpu kernels leave). The one place that
 * reads the backends' internals; only for `cpu` and `wasm`.
 */
function storedValues(t: tf.TensorInfo): unknown {
  const backend = tf.backend() as unknown as HostBackend;
  return tf.getBackend() === 'wasm' ? backend.typedArrayFromHeap!(t) : backend.data?.get(t.dataId)?.values;
}

/**
 * A float32 view of `t`'s buffer on the cpu and wasm backends, without a copy: for one pass over
 * the memory where a kernel chain would make several (the optimiser's update). With `writable`,
 * only where the buffer is `t`'s alone (no other tensor shares it). Null elsewhere (native
 * backends, shared or non-float buffers): the caller then uses tensor ops. Invalid once any tensor
 * is allocated (the wasm heap may move).
 */
export function float32Buffer(t: tf.Tensor, writable: boolean): Float32Array | null {
  const name = tf.getBackend();
  if (t.dtype !== 'float32' || t.isDisposed || (name !== 'wasm' && name !== 'cpu')) return null;
  if (writable && (tf.backend() as unknown as HostBackend).refCount(t.dataId) !== 1) return null;
  const values = storedValues(t);
  return values instanceof Float32Array && values.length === t.size ? values : null;
}

let enabled = process.env.C2F_HOST_KERNELS !== '0';

/**
 * Turns the fused kernels on or off (default on; `C2F_HOST_KERNELS=0` starts with them off): off,
 * every op runs its tfjs kernel chain, for comparisons and benchmarks. Returns the previous setting.
 */
export function setHostKernels(on: boolean): boolean {
  const prev = enabled;
  enabled = on;
  return prev;
}

/** True where the fused kernels run: they are on and the active backend is `cpu` or `wasm`. */
export function hostKernelsAvailable(): boolean {
  const name = tf.getBackend();
  return enabled && (name === 'cpu' || name === 'wasm');
}

function view(t: tf.TensorInfo): HostArray {
  const values = storedValues(t);
  if (values instanceof Float32Array || values instanceof Int32Array || values instanceof Uint8Array) return values;
  // Some cpu kernels leave plain arrays: read a typed copy (inputs only; outputs are ours).
  if (Array.isArray(values)) return t.dtype === 'float32' ? Float32Array.from(values as number[]) : Int32Array.from(values as number[]);
  throw new Error(`runOnHost: no typed values for a ${t.dtype} tensor on ${tf.getBackend()} (${Object.prototype.toString.call(values)})`);
}

/**
 * Allocates float32 outputs of `outShapes` and runs `fn` on views of `inputs` and of the outputs,
 * which `fn` must fill completely (wasm memory comes uninitialised). Inputs are read-only.
 * @returns the outputs as tensors, tracked by the engine like any kernel's (tidy, tensor counts).
 */
export function runOnHost(inputs: tf.Tensor[], outShapes: number[][], fn: (ins: HostArray[], outs: Float32Array[]) => void): tf.Tensor[] {
  const backend = tf.backend() as unknown as HostBackend;
  const wasm = tf.getBackend() === 'wasm';
  const infos = outShapes.map((shape) => wasm
    ? backend.makeOutput!(shape, 'float32')
    : backend.makeTensorInfo!(shape, 'float32', new Float32Array(tf.util.sizeFromShape(shape))));
  // Views only after the last allocation: allocating may grow (move) the wasm heap.
  const ins = inputs.map((t) => view(t));
  const outs = infos.map((info) => view(info) as Float32Array);
  const engine = tf.engine();
  const tensors = infos.map((info) => engine.makeTensorFromTensorInfo(info));
  fn(ins, outs);
  return tensors;
}

/** An uninitialised float32 tensor of `shape` (cpu: zeros) for a kernel that fills all of it. */
export function emptyFloat32(shape: number[]): tf.Tensor {
  return runOnHost([], [shape], () => {})[0];
}

/**
 * `w` `[kh, kw, a, b]` reversed along both spatial axes, and with `swap` its last two axes
 * exchanged (`[kh, kw, b, a]`): a convolution's kernel for its input gradient, in one pass. The
 * wasm backend's `Reverse` took ~0.7 ms for an 11x11x288 depthwise kernel. Elsewhere: tfjs's kernels.
 */
export function flipKernel(w: tf.Tensor4D, swap: boolean): tf.Tensor4D {
  if (!hostKernelsAvailable()) {
    const flipped = tf.reverse(w, [0, 1]);
    return swap ? tf.transpose(flipped, [0, 1, 3, 2]) : flipped;
  }
  const [kh, kw, a, b] = w.shape;
  return runOnHost([w], [swap ? [kh, kw, b, a] : [kh, kw, a, b]], ([src], [dst]) => {
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        const from = ((kh - 1 - i) * kw + (kw - 1 - j)) * a * b, to = (i * kw + j) * a * b;
        if (!swap) {
          for (let k = 0; k < a * b; k++) dst[to + k] = src[from + k];
          continue;
        }
        for (let p = 0; p < a; p++) for (let q = 0; q < b; q++) dst[to + q * a + p] = src[from + p * b + q];
      }
    }
  })[0] as tf.Tensor4D;
}
