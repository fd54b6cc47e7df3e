/**
 * pycocotools' `summarize()`: the 12 (boxes, masks) or 10 (keypoints) summary numbers and their
 * text lines, with the same format string
 * `' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'`,
 * and the per-category AP used by MMDetection.
 */
import type { EvalResult } from './eval_accumulate.ts';
import { npMean, pyFixed } from './eval_numeric.ts';
import type { Params } from './eval_params.ts';

interface Query {
  ap: boolean;
  iouThr?: number;
  areaRng: string;
  maxDets: number;
}

/** Mean of the entries > -1 of the selection (C order, as `np.mean(s[s > -1])`), or -1. */
function selectMean(ev: EvalResult, p: Params, q: Query): number {
  const [T, R, K, A, M] = ev.counts;
  const ts: number[] = [];
  for (let t = 0; t < T; t++) if (q.iouThr === undefined || p.iouThrs[t] === q.iouThr) ts.push(t);
  const aind = p.areaRngLbl.flatMap((l, i) => (l === q.areaRng ? [i] : []));
  const mind = p.maxDets.flatMap((m, i) => (m === q.maxDets ? [i] : []));
  // s[:, :, :, aind, mind]: the two index lists broadcast together (both have one entry in practice).
  const pairs: [number, number][] = [];
  if (aind.length > 0 && mind.length > 0) {
    const np = Math.max(aind.length, mind.length);
    for (let j = 0; j < np; j++) pairs.push([aind[aind.length === 1 ? 0 : j], mind[mind.length === 1 ? 0 : j]]);
  }
  const vals: number[] = [];
  const push = (v: number): void => {
    if (v > -1) vals.push(v);
  };
  for (const t of ts) {
    if (q.ap) {
      for (let r = 0; r < R; r++) for (let k = 0; k < K; k++) for (const [a, m] of pairs) push(ev.precision[(((t * R + r) * K + k) * A + a) * M + m]);
    } else {
      for (let k = 0; k < K; k++) for (const [a, m] of pairs) push(ev.recall[((t * K + k) * A + a) * M + m]);
    }
  }
  return vals.length === 0 ? -1 : npMean(vals);
}

function line(p: Params, q: Query, value: number): string {
  const title = q.ap ? 'Average Precision' : 'Average Recall';
  const type = q.ap ? '(AP)' : '(AR)';
  const iouStr = q.iouThr === undefined ? `${pyFixed(p.iouThrs[0], 2)}:${pyFixed(p.iouThrs[p.iouThrs.length - 1], 2)}` : pyFixed(q.iouThr, 2);
  return ` ${title.padEnd(18)} ${type} @[ IoU=${iouStr.padEnd(9)} | area=${q.areaRng.padStart(6)} | maxDets=${String(q.maxDets).padStart(3)} ] = ${pyFixed(value, 3)}`;
}

function queries(p: Params): Query[] {
  const all = 'all';
  if (p.iouType === 'keypoints') {
    return [
      { ap: true, maxDets: 20, areaRng: all },
      { ap: true, maxDets: 20, iouThr: 0.5, areaRng: all },
      { ap: true, maxDets: 20, iouThr: 0.75, areaRng: all },
      { ap: true, maxDets: 20, areaRng: 'medium' },
      { ap: true, maxDets: 20, areaRng: 'large' },
      { ap: false, maxDets: 20, areaRng: all },
      { ap: false, maxDets: 20, iouThr: 0.5, areaRng: all },
      { ap: false, maxDets: 20, iouThr: 0.75, areaRng: all },
      { ap: false, maxDets: 20, areaRng: 'medium' },
      { ap: false, maxDets: 20, areaRng: 'large' },
    ];
  }
  const [m0, m1, m2] = [p.maxDets[0], p.maxDets[1], p.maxDets[2]];
  return [
    { ap: true, areaRng: all, maxDets: 100 },
    { ap: true, iouThr: 0.5, areaRng: all, maxDets: m2 },
    { ap: true, iouThr: 0.75, areaRng: all, maxDets: m2 },
    { ap: true, areaRng: 'small', maxDets: m2 },
    { ap: true, areaRng: 'medium', maxDets: m2 },
    { ap: true, areaRng: 'large', maxDets: m2 },
    { ap: false, areaRng: all, maxDets: m0 },
    { ap: false, areaRng: all, maxDets: m1 },
    { ap: false, areaRng: all, maxDets: m2 },
    { ap: false, areaRng: 'small', maxDets: m2 },
    { ap: false, areaRng: 'medium', maxDets: m2 },
    { ap: false, areaRng: 'large', maxDets: m2 },
  ];
}

/** The summary numbers and lines (`p`: the current parameters, as pycocotools uses `self.params`). */
export function summarizeResult(ev: EvalResult, p: Params): { stats: number[]; lines: string[] } {
  const stats: number[] = [];
  const lines: string[] = [];
  for (const q of queries(p)) {
    if (q.maxDets === undefined) throw new Error('COCOeval.summarize: params.maxDets needs 3 entries (the default [1, 10, 100])');
    const v = selectMean(ev, p, q);
    stats.push(v);
    lines.push(line(p, q, v));
  }
  return { stats, lines };
}

/**
 * AP of each category: mean of `precision[:, :, k, areaIndex, maxDetsIndex]` over entries > -1, or
 * -1 when there are none (MMDetection's per-class AP, with -1 for its NaN).
 */
export function perCategoryAPOf(ev: EvalResult, catIds: number[], areaIndex = 0, maxDetsIndex = -1): Map<number, number> {
  const [T, R, K, A, M] = ev.counts;
  const m = maxDetsIndex < 0 ? M + maxDetsIndex : maxDetsIndex;
  const out = new Map<number, number>();
  const vals = new Float64Array(T * R);
  for (let k = 0; k < K; k++) {
    let n = 0;
    for (let t = 0; t < T; t++) {
      for (let r = 0; r < R; r++) {
        const v = ev.precision[(((t * R + r) * K + k) * A + areaIndex) * M + m];
        if (v > -1) vals[n++] = v;
      }
    }
    out.set(catIds[k], n === 0 ? -1 : npMean(vals, n));
  }
  return out;
}
