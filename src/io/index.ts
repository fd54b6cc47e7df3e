/**
 * Checkpoint file I/O without any tfjs dependency: PyTorch zip checkpoints and safetensors in,
 * safetensors out. Everything yields framework-neutral `RawTensor`s (see `tensor_data.ts`).
 */
export { numel, type DType, type RawTensor, type TensorDict } from './tensor_data.ts';
export { DTYPE_SIZE, bfloat16ToFloat, decodeElements, halfToFloat } from './dtype_codec.ts';
export { openZip, type ZipArchive, type ZipEntry } from './zip.ts';
export {
  PickleGlobal,
  PickleObject,
  builtinGlobals,
  pickleStateOf,
  unpickle,
  type GlobalResolver,
  type PickleCallable,
  type PickleValue,
  type UnpickleOptions,
} from './pickle.ts';
export {
  UnsupportedTensor,
  isRawTensor,
  parseTorchCheckpoint,
  readTorchCheckpoint,
  type ReadTorchCheckpointOptions,
} from './torch_checkpoint.ts';
export {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  writeSafetensors,
  type SafetensorsContent,
} from './safetensors.ts';
