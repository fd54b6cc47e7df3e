/**
 * Types of the COCO file format and of run-length-encoded masks, shared by the COCO index, the
 * mask API and COCOeval. `src/coco/` imports nothing from tfjs: it can be published alone.
 */

/** `[x, y, w, h]` in pixels, COCO's box convention. */
export type BoxXYWH = [number, number, number, number];

/** A polygon list `[[x1, y1, x2, y2, ...], ...]` as stored in COCO annotations. */
export type Polygons = number[][];

/** Compressed RLE as in COCO files / pycocotools: column-major runs in the LEB128-like string codec. */
export interface CompressedRLE {
  /** `[height, width]`. */
  size: [number, number];
  counts: string;
}

/** Uncompressed RLE: run lengths, starting with a run of zeros (column-major). */
export interface UncompressedRLE {
  size: [number, number];
  counts: number[];
}

/** Any segmentation an annotation or result may carry. */
export type Segmentation = Polygons | CompressedRLE | UncompressedRLE;

export interface CocoImage {
  id: number;
  width: number;
  height: number;
  file_name?: string;
  [key: string]: unknown;
}

export interface CocoCategory {
  id: number;
  name: string;
  supercategory?: string;
  [key: string]: unknown;
}

export interface CocoAnnotation {
  id: number;
  image_id: number;
  category_id: number;
  bbox: BoxXYWH;
  area: number;
  iscrowd: 0 | 1;
  segmentation?: Segmentation;
  /** Results only. */
  score?: number;
  ignore?: number;
  [key: string]: unknown;
}

export interface CocoDataset {
  info?: unknown;
  licenses?: unknown[];
  images: CocoImage[];
  annotations: CocoAnnotation[];
  categories: CocoCategory[];
}

/** One detection result as written by detectors: a box and/or a segmentation, with a score. */
export interface CocoResult {
  image_id: number;
  category_id: number;
  score: number;
  bbox?: BoxXYWH;
  segmentation?: CompressedRLE | UncompressedRLE | Polygons;
  [key: string]: unknown;
}
