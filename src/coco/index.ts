/**
 * `src/coco`: a pure-TypeScript pycocotools (no tfjs): the COCO index, COCOeval (bbox, segm) with
 * pycocotools' numbers, and the mask API (also as the namespace `mask`, like `pycocotools.mask`).
 */
export { COCO, CocoFormatError, type AnnIdFilter, type CatIdFilter, type ImgIdFilter, type CocoOptions, type LoadResOptions } from './coco.ts';
export { COCOeval, EvalImgs, Params, type EvalImg, type EvalResult, type IouType } from './cocoeval.ts';
export { linspace } from './eval_params.ts';
export * as mask from './mask.ts';
export * from './mask.ts';
export type { Rle } from './rle.ts';
export * from './types.ts';
