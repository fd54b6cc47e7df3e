/**
 * COCOeval's `_prepare` + the dt sorting/truncation of `computeIoU`, as flat typed arrays.
 *
 * Objects are grouped into cells `c = k * I + i` (category index k, image index i; k = 0 for all
 * categories when `useCats` is off). Within a cell the ground truths keep pycocotools' order (file
 * order; with `useCats` off, by position of the category in `catIds`, then file order) and the
 * detections are sorted by score, highest first, with a stable sort (numpy's mergesort), then cut
 * to `maxDets[-1]`. Each cell's objects are the contiguous range `start[c] .. start[c + 1]`.
 */
import type { COCO } from './coco.ts';
import type { Rle } from './rle.ts';
import type { Params } from './eval_params.ts';
import type { CocoAnnotation } from './types.ts';

export interface ObjectSet {
  /** Cell c's objects are `start[c] .. start[c + 1] - 1`. */
  start: Int32Array;
  id: Float64Array;
  area: Float64Array;
  /** `[x, y, w, h]` per object (bbox evaluation only; empty otherwise). */
  box: Float64Array;
  /** Masks (segm evaluation only; empty otherwise). */
  rle: Rle[];
  /** The source annotations (for keypoints / custom IoUs). */
  anns: CocoAnnotation[];
}

export interface GtSet extends ObjectSet {
  /** `iscrowd` as 0/1 (crowd regions match many detections, with IoU = inter / dt area). */
  crowd: Uint8Array;
  /** pycocotools' `ignore` flag: `'iscrowd' in gt and gt['iscrowd']` (an `ignore` field is overwritten). */
  ignore: Uint8Array;
}

export interface DtSet extends ObjectSet {
  score: Float64Array;
}

export interface EvalData {
  imgIds: number[];
  /** The evaluated category ids, or `[-1]` when `useCats` is off. */
  catIds: number[];
  I: number;
  K: number;
  gt: GtSet;
  dt: DtSet;
  /** 1 where a cell has neither ground truth nor detection (pycocotools' `None` evalImg). */
  empty: Uint8Array;
}

/** Groups the annotations of `coco` for the evaluated images into cells (CSR, stable). */
function groupCells(coco: COCO, p: Params, imgIds: number[], K: number): { start: Int32Array; anns: CocoAnnotation[] } {
  const I = imgIds.length;
  const catPos = new Map<number, number>();
  p.catIds.forEach((c, k) => {
    if (!catPos.has(c)) catPos.set(c, k);
  });
  const cellOf: number[] = [];
  const picked: CocoAnnotation[] = [];
  const posOf: number[] = [];
  for (let i = 0; i < I; i++) {
    const list = coco.imgToAnns.get(imgIds[i]);
    if (!list) continue;
    if (p.useCats) {
      for (const ann of list) {
        const pos = catPos.get(ann.category_id);
        if (pos === undefined) continue;
        picked.push(ann);
        cellOf.push(pos * I + i);
      }
    } else {
      // all categories in one cell, by position of the category in catIds, then file order
      const first = picked.length;
      posOf.length = 0;
      for (const ann of list) {
        const pos = catPos.get(ann.category_id);
        if (pos === undefined) continue;
        picked.push(ann);
        posOf.push(pos);
        cellOf.push(i);
      }
      const idx = posOf.map((_, j) => j).sort((x, y) => posOf[x] - posOf[y] || x - y);
      const here = idx.map((j) => picked[first + j]);
      for (let j = 0; j < here.length; j++) picked[first + j] = here[j];
    }
  }
  const C = K * I;
  const start = new Int32Array(C + 1);
  for (const c of cellOf) start[c + 1]++;
  for (let c = 0; c < C; c++) start[c + 1] += start[c];
  const cursor = start.slice(0, C);
  const anns = new Array<CocoAnnotation>(picked.length);
  for (let n = 0; n < picked.length; n++) anns[cursor[cellOf[n]]++] = picked[n];
  return { start, anns };
}

/** Sorts idx[lo..hi) by score, highest first, stably (insertion sort for small ranges). */
function sortByScoreDesc(idx: Int32Array, lo: number, hi: number, score: Float64Array): void {
  if (hi - lo <= 32) {
    for (let i = lo + 1; i < hi; i++) {
      const v = idx[i];
      const sv = score[v];
      let j = i - 1;
      while (j >= lo && score[idx[j]] < sv) {
        idx[j + 1] = idx[j];
        j--;
      }
      idx[j + 1] = v;
    }
    return;
  }
  const part = Array.from(idx.subarray(lo, hi));
  part.sort((x, y) => score[y] - score[x] || x - y);
  idx.set(part, lo);
}

function fillBoxes(anns: CocoAnnotation[], what: string): Float64Array {
  const box = new Float64Array(anns.length * 4);
  anns.forEach((a, n) => {
    const b = a.bbox;
    if (!Array.isArray(b) || b.length !== 4) throw new Error(`COCOeval: ${what} annotation id ${a.id} has no 'bbox'`);
    box[4 * n] = b[0];
    box[4 * n + 1] = b[1];
    box[4 * n + 2] = b[2];
    box[4 * n + 3] = b[3];
  });
  return box;
}

function objectSet(coco: COCO, start: Int32Array, anns: CocoAnnotation[], p: Params, what: string): ObjectSet {
  const n = anns.length;
  const id = new Float64Array(n);
  const area = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    id[j] = anns[j].id;
    area[j] = anns[j].area;
  }
  const box = p.iouType === 'bbox' ? fillBoxes(anns, what) : new Float64Array(0);
  const rle = p.iouType === 'segm' ? anns.map((a) => coco.annToRleRuns(a)) : [];
  return { start, id, area, box, rle, anns };
}

export function prepare(cocoGt: COCO, cocoDt: COCO, p: Params): EvalData {
  const imgIds = p.imgIds;
  const catIds = p.useCats ? p.catIds : [-1];
  const I = imgIds.length;
  const K = catIds.length;
  const C = K * I;
  const maxDet = p.maxDets[p.maxDets.length - 1];

  const g = groupCells(cocoGt, p, imgIds, K);
  const gtBase = objectSet(cocoGt, g.start, g.anns, p, 'ground-truth');
  const crowd = new Uint8Array(g.anns.length);
  const ignore = new Uint8Array(g.anns.length);
  g.anns.forEach((a, j) => {
    crowd[j] = Number(a.iscrowd) ? 1 : 0;
    ignore[j] = a.iscrowd ? 1 : 0;
  });

  // Detections: stable sort by score (descending) within each cell, then keep the first maxDet.
  const d = groupCells(cocoDt, p, imgIds, K);
  const nAll = d.anns.length;
  const allScore = new Float64Array(nAll);
  for (let j = 0; j < nAll; j++) {
    const a = d.anns[j];
    if (typeof a.score !== 'number' || Number.isNaN(a.score)) {
      throw new Error(`COCOeval: detection id ${a.id} (image ${a.image_id}) has no numeric 'score'`);
    }
    allScore[j] = a.score;
  }
  const idx = new Int32Array(nAll);
  for (let j = 0; j < nAll; j++) idx[j] = j;
  const empty = new Uint8Array(C);
  const start = new Int32Array(C + 1);
  const kept: CocoAnnotation[] = [];
  for (let c = 0; c < C; c++) {
    const s = d.start[c];
    const e = d.start[c + 1];
    if (e === s && g.start[c + 1] === g.start[c]) empty[c] = 1;
    if (e - s > 1) sortByScoreDesc(idx, s, e, allScore);
    const stop = Math.min(e, s + maxDet);
    for (let j = s; j < stop; j++) kept.push(d.anns[idx[j]]);
    start[c + 1] = kept.length;
  }
  const dtBase = objectSet(cocoDt, start, kept, p, 'detection');
  const score = new Float64Array(kept.length);
  for (let j = 0; j < kept.length; j++) score[j] = kept[j].score as number;

  return {
    imgIds,
    catIds,
    I,
    K,
    gt: { ...gtBase, crowd, ignore },
    dt: { ...dtBase, score },
    empty,
  };
}
