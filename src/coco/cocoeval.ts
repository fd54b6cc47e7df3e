/**
 * COCOeval: pycocotools' detection evaluation (bbox and segm), number for number, on typed arrays.
 *
 *   const E = new COCOeval(cocoGt, cocoDt, 'bbox');
 *   E.evaluate(); E.accumulate(); const lines = E.summarize(); // prints too; E.stats: 12 numbers
 *
 * Masks are converted to runs once per annotation (cached by the COCO objects), each (image,
 * category) IoU matrix is computed once and matched under every area range right away, and the
 * per-image results live in one {@link EvalStore} of typed arrays; `evalImgs.get(i)` builds
 * pycocotools' per-image record on demand.
 */
import type { COCO } from './coco.ts';
import { bboxIou, rleIou } from './rle_iou.ts';
import { Params, type IouType } from './eval_params.ts';
import { prepare, type EvalData } from './eval_prepare.ts';
import { EvalStore, IGNORED, MatchScratch, evaluateCell } from './eval_match.ts';
import { accumulate, type EvalResult } from './eval_accumulate.ts';
import { perCategoryAPOf, summarizeResult } from './eval_summary.ts';

export { Params, type IouType } from './eval_params.ts';
export type { EvalResult } from './eval_accumulate.ts';

/** One of pycocotools' `evalImgs` records (fresh arrays; the T x N ones are row-major). */
export interface EvalImg {
  image_id: number;
  category_id: number;
  aRng: [number, number];
  maxDet: number;
  /** Detections, sorted by score and cut to maxDet. */
  dtIds: Float64Array;
  /** Ground truths, not ignored first. */
  gtIds: Float64Array;
  /** T x D: matched gt id, 0 when unmatched. */
  dtMatches: Float64Array;
  /** T x G: matched dt id, 0 when unmatched. */
  gtMatches: Float64Array;
  dtScores: Float64Array;
  gtIgnore: Uint8Array;
  /** T x D, 0/1. */
  dtIgnore: Uint8Array;
}

/** Re-runs the matching of cell c and hands over the scratch of area range a. */
type Rematch = (c: number, a: number, use: (s: MatchScratch) => void) => void;

/**
 * pycocotools' `evalImgs` list (index `k * A * I + a * I + i`; `null` for an image and category
 * with neither ground truth nor detection). Records are built on demand: the store keeps only what
 * `accumulate` needs, so `get` re-runs that one record's matching (same result, same order).
 */
export class EvalImgs implements Iterable<EvalImg | null> {
  constructor(
    private readonly data: EvalData | null = null,
    private readonly store: EvalStore | null = null,
    private readonly p: Params | null = null,
    private readonly rematch: Rematch | null = null,
  ) {}

  get length(): number {
    return this.data && this.store ? this.data.K * this.store.A * this.data.I : 0;
  }

  get(index: number): EvalImg | null {
    if (!(index >= 0 && index < this.length)) throw new RangeError(`evalImgs index ${index} out of range [0, ${this.length})`);
    if (!this.data || !this.store || !this.p || !this.rematch) return null;
    const { I, gt, dt } = this.data;
    const { A, T } = this.store;
    const k = Math.floor(index / (A * I));
    const a = Math.floor(index / I) % A;
    const i = index % I;
    const c = k * I + i;
    if (this.data.empty[c]) return null;
    const d0 = dt.start[c];
    const D = dt.start[c + 1] - d0;
    const g0 = gt.start[c];
    const G = gt.start[c + 1] - g0;
    const st = this.store;
    const ob = a * st.nGt + g0;
    let dtMatches = new Float64Array(0);
    let gtMatches = new Float64Array(0);
    this.rematch(c, a, (s) => {
      dtMatches = s.dtm.slice(0, T * D);
      gtMatches = s.gtm.slice(0, T * G);
    });
    const gtIds = new Float64Array(G);
    for (let j = 0; j < G; j++) gtIds[j] = gt.id[g0 + st.gtOrder[ob + j]];
    const dtIgnore = new Uint8Array(T * D);
    for (let d = 0; d < D; d++) {
      for (let t = 0; t < T; t++) dtIgnore[t * D + d] = st.dtStatus[((d0 + d) * A + a) * T + t] & IGNORED ? 1 : 0;
    }
    return {
      image_id: this.data.imgIds[i],
      category_id: this.data.catIds[k],
      aRng: [...this.p.areaRng[a]] as [number, number],
      maxDet: this.p.maxDets[this.p.maxDets.length - 1],
      dtIds: dt.id.slice(d0, d0 + D),
      gtIds,
      dtMatches,
      gtMatches,
      dtScores: dt.score.slice(d0, d0 + D),
      gtIgnore: st.gtIgnore.slice(ob, ob + G),
      dtIgnore,
    };
  }

  *[Symbol.iterator](): Iterator<EvalImg | null> {
    for (let j = 0; j < this.length; j++) yield this.get(j);
  }
}

const EMPTY = new Float64Array(0);

export class COCOeval {
  readonly cocoGt: COCO;
  readonly cocoDt: COCO;
  /** Parameters; change them before `evaluate()`. */
  params: Params;
  /** Per-image results of the last `evaluate()` (empty before). */
  evalImgs: EvalImgs = new EvalImgs();
  /** Accumulated results of the last `accumulate()`. */
  eval: EvalResult | null = null;
  /** The summary numbers of the last `summarize()`. */
  stats: number[] = [];
  private data: EvalData | null = null;
  private store: EvalStore | null = null;
  private paramsEval: Params | null = null;

  constructor(cocoGt: COCO, cocoDt: COCO, iouType: IouType = 'segm') {
    this.cocoGt = cocoGt;
    this.cocoDt = cocoDt;
    this.params = new Params(iouType);
    this.params.imgIds = cocoGt.getImgIds().sort((a, b) => a - b);
    this.params.catIds = cocoGt.getCatIds().sort((a, b) => a - b);
  }

  /** Runs the per-image evaluation (pycocotools' `evaluate`). */
  evaluate(): void {
    const p = this.params;
    if (p.iouType === 'keypoints') {
      // OKS plugs in as another cell IoU (see cellIous) plus the num_keypoints ignore rule in prepare.
      throw new Error("COCOeval: iouType 'keypoints' (OKS) is not implemented yet; 'bbox' and 'segm' are");
    }
    p.imgIds = [...new Set(p.imgIds)].sort((a, b) => a - b);
    if (p.useCats) p.catIds = [...new Set(p.catIds)].sort((a, b) => a - b);
    p.maxDets = [...p.maxDets].sort((a, b) => a - b);
    const pe = p.clone(); // the parameters of these results, safe from later edits of `params`
    const data = prepare(this.cocoGt, this.cocoDt, pe);
    const C = data.K * data.I;
    const store = new EvalStore(pe.iouThrs.length, pe.areaRng.length, data.dt.id.length, data.gt.id.length);
    const scratch = new MatchScratch();
    for (let c = 0; c < C; c++) {
      if (data.empty[c]) continue;
      evaluateCell(data, store, c, this.cellIous(data, c, pe.iouType), pe.iouThrs, pe.areaRng, scratch);
    }
    this.data = data;
    this.store = store;
    this.paramsEval = pe;
    const rematch: Rematch = (c, a, use) => {
      const onRecord = (aa: number, s: MatchScratch): void => {
        if (aa === a) use(s);
      };
      evaluateCell(data, store, c, this.cellIous(data, c, pe.iouType), pe.iouThrs, pe.areaRng, new MatchScratch(), onRecord);
    };
    this.evalImgs = new EvalImgs(data, store, pe, rematch);
    this.eval = null;
  }

  /** Accumulates the per-image results into precision/recall arrays (pycocotools' `accumulate`). */
  accumulate(): void {
    if (!this.data || !this.store || !this.paramsEval) throw new Error('COCOeval.accumulate: run evaluate() first');
    this.eval = accumulate(this.data, this.store, this.paramsEval);
  }

  /**
   * Computes `stats` and the summary lines, exactly pycocotools' text. Each line goes to `write`
   * (default `console.log`; pass `null` to stay quiet); the lines are returned as well.
   */
  summarize(write: ((line: string) => void) | null = (l) => console.log(l)): string[] {
    if (!this.eval) throw new Error('COCOeval.summarize: run accumulate() first');
    const { stats, lines } = summarizeResult(this.eval, this.params);
    this.stats = stats;
    if (write) for (const l of lines) write(l);
    return lines;
  }

  /**
   * AP per category id (MMDetection's per-class AP): mean of `precision[:, :, k, area 'all',
   * maxDets[-1]]` over entries > -1, or -1 for a category without ground truth. Key -1 when
   * `useCats` is off.
   */
  perCategoryAP(): Map<number, number> {
    if (!this.eval || !this.data) throw new Error('COCOeval.perCategoryAP: run accumulate() first');
    return perCategoryAPOf(this.eval, this.data.catIds);
  }

  /**
   * The IoU matrix of an evaluated (image, category) — pycocotools' `ious[imgId, catId]`: D x G
   * row-major, detections sorted by score (cut to maxDets[-1]), ground truths in file order. Empty
   * when either side is. `catId` is -1 when `useCats` is off.
   */
  computeIoU(imgId: number, catId: number): Float64Array {
    if (!this.data) throw new Error('COCOeval.computeIoU: run evaluate() first');
    const i = this.data.imgIds.indexOf(imgId);
    const k = this.data.catIds.indexOf(catId);
    if (i < 0 || k < 0) return EMPTY;
    return this.cellIous(this.data, k * this.data.I + i, this.paramsEval!.iouType);
  }

  private cellIous(data: EvalData, c: number, iouType: IouType): Float64Array {
    const { gt, dt } = data;
    const g0 = gt.start[c];
    const g1 = gt.start[c + 1];
    const d0 = dt.start[c];
    const d1 = dt.start[c + 1];
    if (g1 === g0 || d1 === d0) return EMPTY;
    const crowd = gt.crowd.subarray(g0, g1);
    switch (iouType) {
      case 'bbox':
        return bboxIou(dt.box.subarray(4 * d0, 4 * d1), gt.box.subarray(4 * g0, 4 * g1), crowd);
      case 'segm':
        return rleIou(dt.rle.slice(d0, d1), gt.rle.slice(g0, g1), crowd);
      default:
        throw new Error(`COCOeval: iouType '${iouType}' is not implemented yet`);
    }
  }
}
