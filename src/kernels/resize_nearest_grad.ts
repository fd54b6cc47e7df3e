/**
 * The `cpu` backend's `ResizeNearestNeighborGrad` with the batch fixed. tfjs-backend-cpu 4.22 reads
 * `dy` of image b at `b * (stride of the INPUT's batch)`: from the second image on it sums another
 * image's (or out-of-range) gradients, so an FPN's top-down path trained on the cpu backend with a
 * batch of 2+ got wrong backbone and lateral gradients (found comparing a batch of 4 with two
 * batches of 2). This one is the exact adjoint of the cpu forward: each `dy` element is added to the
 * input pixel the forward read it from (same index arithmetic, alignCorners and halfPixelCenters).
 */
import * as tf from '@tensorflow/tfjs';

interface CpuBackend {
  data: { get(dataId: object): { values: ArrayLike<number> } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

/** The input index the cpu forward reads for output index `o` of an axis `inSize` → `outSize`. */
function nearestSource(o: number, inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): number {
  const ratio = (alignCorners && outSize > 1 ? inSize - 1 : inSize) / (alignCorners && outSize > 1 ? outSize - 1 : outSize);
  const frac = halfPixelCenters ? ratio * (o + 0.5) : ratio * o;
  const i = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
  return halfPixelCenters ? Math.max(0, i) : i;
}

function resizeNearestGrad({ inputs, backend, attrs }: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const cpu = backend as CpuBackend;
  const images = inputs.images as tf.TensorInfo, dy = inputs.dy as tf.TensorInfo;
  const alignCorners = Boolean(attrs?.alignCorners), halfPixelCenters = Boolean(attrs?.halfPixelCenters);
  const [n, h, w, c] = images.shape;
  const [, ho, wo] = dy.shape;
  const g = cpu.data.get(dy.dataId).values;
  const out = new Float32Array(n * h * w * c);
  const rows = Int32Array.from({ length: ho }, (_, y) => nearestSource(y, h, ho, alignCorners, halfPixelCenters));
  const cols = Int32Array.from({ length: wo }, (_, x) => nearestSource(x, w, wo, alignCorners, halfPixelCenters));
  let k = 0;
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < ho; y++) {
      const rowBase = (b * h + rows[y]) * w;
      for (let x = 0; x < wo; x++) {
        const at = (rowBase + cols[x]) * c;
        for (let ch = 0; ch < c; ch++) out[at + ch] += g[k++];
      }
    }
  }
  return cpu.makeTensorInfo(images.shape, 'float32', out);
}

let registered = false;

/** Replaces the cpu backend's kernel (idempotent; the backend need not be active). */
export function fixCpuResizeNearestGrad(): void {
  if (registered) return;
  registered = true;
  if (tf.getKernel('ResizeNearestNeighborGrad', 'cpu')) tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
  tf.registerKernel({ kernelName: 'ResizeNearestNeighborGrad', backendName: 'cpu', kernelFunc: resizeNearestGrad as unknown as tf.KernelFunc });
}
