/**
 * Public API of the Conv2Former dense-prediction framework.
 */
export { initBackend, wasmThreads, BACKEND_CHOICES, type BackendChoice } from './backend.ts';
export { nativeKernelsStatus, registerNativeKernels } from './kernels/native.ts';
export { setHostKernels, runOnHost } from './kernels/host.ts';
export {
  Conv2Former,
  createConv2Former,
  CONV2FORMER_VARIANTS,
  type Conv2FormerConfig,
  type Conv2FormerOptions,
  type Conv2FormerVariant,
} from './backbone/conv2former.ts';
export type { Backbone, FeatureInfo } from './backbone/backbone.ts';
export { assertVariant, inferConv2FormerConfig, kernelSizeFromStateDict } from './backbone/conv2former_checkpoint.ts';
export { loadCheckpoint, saveSafetensors, readCheckpointFile } from './nn/checkpoint.ts';
export { Module, type LoadResult } from './nn/module.ts';
export { conv2d, type ConvGeometry } from './nn/conv_ops.ts';
export { manualSeed } from './nn/random.ts';
export { buildDataset, buildLoadingDataset } from './datasets/build.ts';
export { DataLoader, type DataLoaderOptions } from './datasets/loader.ts';
export { skipSummary, type Dataset } from './datasets/dataset.ts';
export { checkDataset } from './datasets/check.ts';
export { acquireWorkDirLock, type WorkDirLock } from './engine/work_dir_lock.ts';
export { exportOnnx, writeOnnx, type OnnxExport, type OnnxExportKind } from './onnx/export.ts';
export { OnnxDetector, OnnxSegmentor, createSession, loadOnnxRuntime } from './onnx/runtime.ts';
export { Mpi, loadMpi, isMpiLaunch, mpiStatus } from './dist/mpi.ts';
export { AllReducedGradients, broadcastState, convertSyncBatchNorm, shareLossCounts, type Collectives } from './dist/distributed.ts';
export type { RawTensor, TensorDict } from './io/tensor_data.ts';
export { COCO, COCOeval, mask } from './coco/index.ts';
export { SegMetricAccumulator, intersectAndUnion, type SegMetrics } from './evaluation/index.ts';
