/**
 * COCOeval parameters, built exactly as pycocotools' `Params` (thresholds via a bit-exact
 * `np.linspace`, so that `0.75 === iouThrs[5]` holds as it does in numpy).
 */

export type IouType = 'bbox' | 'segm' | 'keypoints';

/** `np.linspace(start, stop, num, endpoint=True)` in float64, value for value: `i * step + start`, last = `stop`. */
export function linspace(start: number, stop: number, num: number): number[] {
  const out = new Array<number>(num);
  const div = num - 1;
  const delta = stop - start;
  const step = delta / div;
  for (let i = 0; i < num; i++) out[i] = step === 0 ? ((i / div) * delta) + start : i * step + start;
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** Python's `round()` (half to even) of a float, as `np.round` for the counts used here. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1)` — the ten IoU thresholds. */
export const defaultIouThrs = (): number[] => linspace(0.5, 0.95, roundHalfEven((0.95 - 0.5) / 0.05) + 1);
/** `np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1)` — the 101 recall thresholds. */
export const defaultRecThrs = (): number[] => linspace(0.0, 1.0, roundHalfEven((1.0 - 0.0) / 0.01) + 1);

/** OKS sigmas of the 17 COCO person keypoints (for the future keypoints evaluation). */
export const KPT_OKS_SIGMAS = [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89].map((s) => s / 10.0);

export class Params {
  iouType: IouType;
  /** Images to evaluate (default: all of the ground truth, sorted). `evaluate()` sorts and dedupes. */
  imgIds: number[] = [];
  /** Categories to evaluate (default: all of the ground truth, sorted). */
  catIds: number[] = [];
  iouThrs: number[];
  recThrs: number[];
  maxDets: number[];
  /** `[lo, hi]` area ranges; an object is inside when `lo <= area <= hi`. */
  areaRng: [number, number][];
  areaRngLbl: string[];
  /** When false, categories are ignored (all objects of an image compete), as in proposal scoring. */
  useCats = true;
  kptOksSigmas?: number[];

  constructor(iouType: IouType = 'segm') {
    if (iouType !== 'bbox' && iouType !== 'segm' && iouType !== 'keypoints') {
      throw new Error(`COCOeval: iouType must be 'bbox', 'segm' or 'keypoints', got ${JSON.stringify(iouType)}`);
    }
    this.iouType = iouType;
    this.iouThrs = defaultIouThrs();
    this.recThrs = defaultRecThrs();
    if (iouType === 'keypoints') {
      this.maxDets = [20];
      this.areaRng = [[0 ** 2, 1e5 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]];
      this.areaRngLbl = ['all', 'medium', 'large'];
      this.kptOksSigmas = [...KPT_OKS_SIGMAS];
    } else {
      this.maxDets = [1, 10, 100];
      this.areaRng = [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]];
      this.areaRngLbl = ['all', 'small', 'medium', 'large'];
    }
  }

  /** A deep copy (what `evaluate()` keeps as the parameters its results were computed with). */
  clone(): Params {
    const p = new Params(this.iouType);
    p.imgIds = [...this.imgIds];
    p.catIds = [...this.catIds];
    p.iouThrs = [...this.iouThrs];
    p.recThrs = [...this.recThrs];
    p.maxDets = [...this.maxDets];
    p.areaRng = this.areaRng.map((r) => [r[0], r[1]] as [number, number]);
    p.areaRngLbl = [...this.areaRngLbl];
    p.useCats = this.useCats;
    p.kptOksSigmas = this.kptOksSigmas ? [...this.kptOksSigmas] : undefined;
    return p;
  }
}
