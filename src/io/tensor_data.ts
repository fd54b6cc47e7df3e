/**
 * Framework-neutral tensor data as read from / written to checkpoint files.
 * No tfjs import: `src/io` readers return these and the nn layer turns them into tensors.
 */

/** Element types that checkpoints may hold. */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/**
 * One tensor as stored in a file, contiguous, row-major (C order), in the file's own layout
 * (PyTorch conv weights stay `[out, in, kh, kw]`).
 *
 * `data` is widened for convenience: every floating type becomes `Float32Array`, every integer type
 * `Int32Array` (int64 values outside the int32 range are clamped, which never happens for
 * `num_batches_tracked`-like counters we care about), bool becomes `Uint8Array`.
 */
export interface RawTensor {
  /** Element type in the file. */
  dtype: DType;
  /** Shape; `[]` for a scalar. */
  shape: number[];
  /** Values, C-order, widened (see above). */
  data: Float32Array | Int32Array | Uint8Array;
}

/** An ordered name → tensor mapping (insertion order = file order). */
export type TensorDict = Map<string, RawTensor>;

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
