/** Data transforms (MMDet/MMSeg semantics) on typed arrays. */
export * from './types.ts';
export * from './resize.ts';
export * from './random_flip.ts';
export * from './random_crop.ts';
export * from './pad.ts';
export * from './normalize.ts';
export * from './photometric_distortion.ts';
export * from './load.ts';
export * from './pipeline.ts';
