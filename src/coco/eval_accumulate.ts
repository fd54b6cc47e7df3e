/**
 * pycocotools' `accumulate`, over the compact store: per category and maxDets, the detections of
 * all images are merged by score (stable, image order on ties), and per area range and IoU
 * threshold the precision/recall curve is built exactly as numpy does it (cumsum, `tp / npig`,
 * `tp / (fp + tp + np.spacing(1))`, the right-to-left precision envelope, `searchsorted(side='left')`).
 * The sort does not depend on the area range, so it is done once per (category, maxDets).
 * (The work is split into small functions so that V8 optimises each hot loop on its own.)
 */
import type { EvalData } from './eval_prepare.ts';
import { IGNORED, MATCHED, type EvalStore } from './eval_match.ts';
import { mergeRunsDesc } from './eval_numeric.ts';
import type { Params } from './eval_params.ts';

export interface EvalResult {
  params: Params;
  /** `[T, R, K, A, M]`. */
  counts: [number, number, number, number, number];
  date: string;
  /** T x R x K x A x M, C order; -1 where a category has no (non-ignored) ground truth. */
  precision: Float64Array;
  /** T x K x A x M, C order. */
  recall: Float64Array;
  /** T x R x K x A x M: the detection score at each recall threshold. */
  scores: Float64Array;
}

/** numpy's spacing(1) = 2^-52. */
const EPS = Number.EPSILON;

/** Work space sized for the largest category. */
class Work {
  readonly keys: Float64Array;
  readonly dtIndex: Int32Array;
  readonly sortBuf1: Int32Array;
  readonly sortBuf2: Int32Array;
  readonly sortedScore: Float64Array;
  /** Status of the j-th sorted detection under (a, t), at `(a * T + t) * n + j`. */
  readonly status: Uint8Array;
  readonly tps: Int32Array;
  readonly fps: Int32Array;
  readonly inds: Int32Array;
  n = 0;

  constructor(cap: number, AT: number, R: number) {
    this.keys = new Float64Array(cap);
    this.dtIndex = new Int32Array(cap);
    this.sortBuf1 = new Int32Array(cap);
    this.sortBuf2 = new Int32Array(cap);
    this.sortedScore = new Float64Array(cap);
    this.status = new Uint8Array(AT * cap);
    this.tps = new Int32Array(cap);
    this.fps = new Int32Array(cap);
    this.inds = new Int32Array(R);
  }
}

/** `npig` per area range: the non-ignored gts of category k over all images. */
function countGts(data: EvalData, store: EvalStore, k: number, npigs: Int32Array): boolean {
  const { I, gt, empty } = data;
  const A = npigs.length;
  let present = false;
  npigs.fill(0);
  for (let i = 0; i < I; i++) {
    const c = k * I + i;
    if (empty[c]) continue;
    present = true;
    const g0 = gt.start[c];
    const G = gt.start[c + 1] - g0;
    for (let a = 0; a < A; a++) {
      const ob = a * store.nGt + g0;
      for (let j = 0; j < G; j++) if (store.gtIgnore[ob + j] === 0) npigs[a]++;
    }
  }
  return present;
}

/** Concatenates the first maxDet detections of each image (category k), sorts them, gathers their status. */
function collectSorted(data: EvalData, store: EvalStore, k: number, maxDet: number, w: Work): void {
  const { I, dt, empty } = data;
  const { keys, dtIndex } = w;
  const runStarts: number[] = [];
  let n = 0;
  for (let i = 0; i < I; i++) {
    const c = k * I + i;
    if (empty[c]) continue;
    const d0 = dt.start[c];
    const nd = Math.min(dt.start[c + 1] - d0, maxDet);
    if (nd > 0) runStarts.push(n);
    for (let d = 0; d < nd; d++, n++) {
      keys[n] = dt.score[d0 + d];
      dtIndex[n] = d0 + d;
    }
  }
  const order = mergeRunsDesc(keys, n, runStarts, w.sortBuf1, w.sortBuf2);
  const AT = store.A * store.T;
  const { status, sortedScore } = w;
  const dtStatus = store.dtStatus;
  for (let j = 0; j < n; j++) {
    const e = order[j];
    sortedScore[j] = keys[e];
    const src = dtIndex[e] * AT;
    for (let q = 0; q < AT; q++) status[q * n + j] = dtStatus[src + q];
  }
  w.n = n;
}

/** numpy `searchsorted(rc, v, side='left')` with `rc[i] = tps[i] / npig` (non-decreasing). */
function searchLeft(tps: Int32Array, n: number, npig: number, v: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (tps[mid] / npig < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * One precision/recall curve (status row `row`): writes precision and scores at
 * `out + r * stride` for every recall threshold r, and returns the recall.
 */
function curve(
  w: Work,
  row: number,
  npig: number,
  recThrs: readonly number[],
  precision: Float64Array,
  scores: Float64Array,
  out: number,
  stride: number,
): number {
  const { status, tps, fps, inds, sortedScore, n } = w;
  // cumsum of tps / fps (ignored detections keep their place, as in numpy)
  let tp = 0;
  let fp = 0;
  for (let j = 0; j < n; j++) {
    const st = status[row + j];
    if (!(st & IGNORED)) {
      if (st & MATCHED) tp++;
      else fp++;
    }
    tps[j] = tp;
    fps[j] = fp;
  }
  const R = recThrs.length;
  let found = 0;
  for (; found < R; found++) {
    const pi = searchLeft(tps, n, npig, recThrs[found]);
    if (pi >= n) break; // pycocotools' IndexError: this and all later thresholds stay 0
    inds[found] = pi;
  }
  // pr = tp / (fp + tp + spacing(1)); the envelope makes pr[i] the max of pr[i:], so walk back
  // from the end with a running max and read it at the searched indices.
  let best = -Infinity;
  let j = n - 1;
  for (let r = found - 1; r >= 0; r--) {
    const pi = inds[r];
    for (; j >= pi; j--) {
      const pr = tps[j] / (fps[j] + tps[j] + EPS);
      if (pr > best) best = pr;
    }
    precision[out + r * stride] = best;
    scores[out + r * stride] = sortedScore[pi];
  }
  for (let r = found; r < R; r++) {
    precision[out + r * stride] = 0;
    scores[out + r * stride] = 0;
  }
  return n > 0 ? tps[n - 1] / npig : 0;
}

export function accumulate(data: EvalData, store: EvalStore, p: Params): EvalResult {
  const T = p.iouThrs.length;
  const R = p.recThrs.length;
  const K = data.K;
  const A = p.areaRng.length;
  const M = p.maxDets.length;
  const I = data.I;
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const scores = new Float64Array(T * R * K * A * M).fill(-1);

  let cap = 0;
  for (let k = 0; k < K; k++) cap = Math.max(cap, data.dt.start[(k + 1) * I] - data.dt.start[k * I]);
  const w = new Work(cap, A * T, R);
  const npigs = new Int32Array(A);
  const stride = K * A * M; // between recall thresholds in precision[t, r, k, a, m]

  for (let k = 0; k < K; k++) {
    if (!countGts(data, store, k, npigs)) continue; // no image has gts or dets of k: stays -1
    for (let m = 0; m < M; m++) {
      collectSorted(data, store, k, p.maxDets[m], w);
      for (let a = 0; a < A; a++) {
        if (npigs[a] === 0) continue;
        for (let t = 0; t < T; t++) {
          const out = ((t * R * K + k) * A + a) * M + m;
          recall[((t * K + k) * A + a) * M + m] = curve(w, (a * T + t) * w.n, npigs[a], p.recThrs, precision, scores, out, stride);
        }
      }
    }
  }
  return {
    params: p,
    counts: [T, R, K, A, M],
    date: new Date().toISOString().replace('T', ' ').slice(0, 19),
    precision,
    recall,
    scores,
  };
}
