/**
 * pycocotools' `evaluateImg` for every (cell, area range), writing into one compact store of typed
 * arrays instead of a list of dicts. The greedy matching is pycocotools' loop, step for step, on
 * per-record scratch arrays holding the same values as its `gtm`/`dtm`/`dtIg` (ids, 0 = none).
 *
 * The store keeps only what `accumulate` needs (the matched ids are recomputed, for one record,
 * when a pycocotools-style record is asked for). Detection-major, so that `accumulate` reads all
 * (area, threshold) results of one detection from one cache line. With gd a detection's index in
 * `data.dt` (cell order):
 *  - dtStatus[(gd * A + a) * T + t]: bit 0 = matched (gt id != 0, numpy's truth), bit 1 = ignored;
 *  - gtOrder[a * nGt + g0 + j], gtIgnore[...same]: the record's gt order (not ignored first, stable)
 *    and the ignore flag of its j-th gt.
 */
import type { EvalData } from './eval_prepare.ts';

export const MATCHED = 1;
export const IGNORED = 2;

export class EvalStore {
  readonly T: number;
  readonly A: number;
  readonly nDt: number;
  readonly nGt: number;
  readonly dtStatus: Uint8Array;
  readonly gtOrder: Int32Array;
  readonly gtIgnore: Uint8Array;

  constructor(T: number, A: number, nDt: number, nGt: number) {
    this.T = T;
    this.A = A;
    this.nDt = nDt;
    this.nGt = nGt;
    this.dtStatus = new Uint8Array(nDt * A * T);
    this.gtOrder = new Int32Array(A * nGt);
    this.gtIgnore = new Uint8Array(A * nGt);
  }
}

/**
 * Per-record scratch arrays, grown as needed: after a record is matched, `gtm` (T x G, gts in the
 * record's order) and `dtm` (T x D) hold pycocotools' gtMatches/dtMatches (ids, 0 = none) and `dtIg`
 * its dtIgnore before the area rule for unmatched detections.
 */
export class MatchScratch {
  ig = new Uint8Array(0);
  crowd = new Uint8Array(0);
  gtm = new Float64Array(0);
  dtm = new Float64Array(0);
  dtIg = new Uint8Array(0);

  reset(T: number, D: number, G: number): void {
    if (this.ig.length < G) {
      this.ig = new Uint8Array(2 * G);
      this.crowd = new Uint8Array(2 * G);
    }
    if (this.gtm.length < T * G) this.gtm = new Float64Array(2 * T * G);
    if (this.dtm.length < T * D) {
      this.dtm = new Float64Array(2 * T * D);
      this.dtIg = new Uint8Array(2 * T * D);
    }
    this.gtm.fill(0, 0, T * G);
    this.dtm.fill(0, 0, T * D);
    this.dtIg.fill(0, 0, T * D);
  }
}

/**
 * Evaluates cell c under every area range. `ious` is D x G row-major over the cell's detections
 * (sorted) and ground truths (cell order); it may be empty when D or G is 0. `onRecord(a, s)`, when
 * given, sees the scratch of each area range once matched (re-running a cell rewrites the same
 * values into the store).
 */
export function evaluateCell(
  data: EvalData,
  store: EvalStore,
  c: number,
  ious: Float64Array,
  iouThrs: readonly number[],
  areaRng: readonly (readonly [number, number])[],
  s: MatchScratch,
  onRecord?: (a: number, s: MatchScratch) => void,
): void {
  const { gt, dt } = data;
  const g0 = gt.start[c];
  const G = gt.start[c + 1] - g0;
  const d0 = dt.start[c];
  const D = dt.start[c + 1] - d0;
  const T = iouThrs.length;
  const A = areaRng.length;
  for (let a = 0; a < A; a++) {
    const lo = areaRng[a][0];
    const hi = areaRng[a][1];
    s.reset(T, D, G);
    const { ig, crowd, gtm, dtm, dtIg } = s;
    // gt `_ignore`, then the stable order "not ignored first".
    for (let g = 0; g < G; g++) {
      const ar = gt.area[g0 + g];
      ig[g] = gt.ignore[g0 + g] || ar < lo || ar > hi ? 1 : 0;
    }
    const ob = a * store.nGt + g0;
    const order = store.gtOrder;
    const gtIg = store.gtIgnore;
    let n = 0;
    for (let g = 0; g < G; g++) if (!ig[g]) order[ob + n++] = g;
    for (let g = 0; g < G; g++) if (ig[g]) order[ob + n++] = g;
    for (let j = 0; j < G; j++) {
      const g = order[ob + j];
      gtIg[ob + j] = ig[g];
      crowd[j] = gt.crowd[g0 + g];
    }
    if (D > 0 && G > 0) {
      for (let t = 0; t < T; t++) {
        const thr = Math.min(iouThrs[t], 1 - 1e-10);
        const gRow = t * G;
        const dRow = t * D;
        for (let d = 0; d < D; d++) {
          let iou = thr;
          let m = -1;
          const iouRow = d * G;
          for (let j = 0; j < G; j++) {
            // already matched, and not a crowd: skip
            if (gtm[gRow + j] > 0 && !crowd[j]) continue;
            // matched to a regular gt, and the rest are ignored gts: stop
            if (m > -1 && gtIg[ob + m] === 0 && gtIg[ob + j] === 1) break;
            const v = ious[iouRow + order[ob + j]];
            if (v < iou) continue;
            iou = v;
            m = j;
          }
          if (m === -1) continue;
          dtIg[dRow + d] = gtIg[ob + m];
          dtm[dRow + d] = gt.id[g0 + order[ob + m]];
          gtm[gRow + m] = dt.id[d0 + d];
        }
      }
    }
    onRecord?.(a, s);
    // Unmatched detections outside the area range are ignored; scatter into the store.
    for (let d = 0; d < D; d++) {
      const ar = dt.area[d0 + d];
      const outside = ar < lo || ar > hi;
      const base = ((d0 + d) * A + a) * T;
      for (let t = 0; t < T; t++) {
        const k = t * D + d;
        const matched = dtm[k] !== 0;
        const ignored = dtIg[k] !== 0 || (!matched && outside);
        store.dtStatus[base + t] = (matched ? MATCHED : 0) | (ignored ? IGNORED : 0);
      }
    }
  }
}
