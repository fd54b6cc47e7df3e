/**
 * MMDetection 2.x `MaxIoUAssigner`: gives each candidate box (anchor or proposal) a gt, background,
 * or "ignore", from its IoU with the gts.
 */
import { assertBoxes, boxIoU } from './boxes.ts';

/** Per-candidate assignment, `N` candidates and `numGts` gts. */
export interface AssignResult {
  numGts: number;
  /** `[N]` -1: ignore, 0: negative (background), i + 1: positive for gt i. */
  gtInds: Int32Array;
  /** `[N]` the best IoU of each candidate with any gt (-1 where ignored by an ignore box, 0 without gts). */
  maxOverlaps: Float32Array;
  /** `[N]` the class of the assigned gt for positives, -1 elsewhere (and everywhere without gt labels). */
  labels: Int32Array;
}

export interface MaxIoUAssignerOptions {
  /** IoU at or above which a candidate is positive. */
  posIouThr: number;
  /** IoU below which a candidate is negative, or a `[lo, hi)` range. */
  negIouThr: number | readonly [number, number];
  /** Least IoU for a low-quality match (step 4). */
  minPosIou?: number;
  /** Step 4: each gt also takes its best candidate(s), even below posIouThr (default true). */
  matchLowQuality?: boolean;
  /** In step 4, all candidates tying at a gt's best IoU take it, not just the first (default true). */
  gtMaxAssignAll?: boolean;
  /** IoF above which a candidate overlapping an ignore (crowd) box is ignored; <= 0 disables. */
  ignoreIofThr?: number;
  /** IoF as inter / area(candidate) (true) or inter / area(ignore box) (false). */
  ignoreWrtCandidates?: boolean;
}

export class MaxIoUAssigner {
  readonly posIouThr: number;
  readonly negIouThr: number | readonly [number, number];
  readonly minPosIou: number;
  readonly matchLowQuality: boolean;
  readonly gtMaxAssignAll: boolean;
  readonly ignoreIofThr: number;
  readonly ignoreWrtCandidates: boolean;

  constructor(opts: MaxIoUAssignerOptions) {
    this.posIouThr = opts.posIouThr;
    this.negIouThr = opts.negIouThr;
    if (typeof this.negIouThr !== 'number' && this.negIouThr.length !== 2) {
      throw new Error(`MaxIoUAssigner: expected negIouThr a number or a [lo, hi] pair, got ${this.negIouThr.length} values`);
    }
    this.minPosIou = opts.minPosIou ?? 0;
    this.matchLowQuality = opts.matchLowQuality ?? true;
    this.gtMaxAssignAll = opts.gtMaxAssignAll ?? true;
    this.ignoreIofThr = opts.ignoreIofThr ?? -1;
    this.ignoreWrtCandidates = opts.ignoreWrtCandidates ?? true;
  }

  /**
   * Assigns `bboxes` `[N*4]` to `gtBboxes` `[G*4]` (xyxy), in order:
   * 1. every candidate starts as ignore (-1);
   * 2. candidates whose best IoU is in the negative range become background (0);
   * 3. candidates whose best IoU >= posIouThr take that gt;
   * 4. with matchLowQuality, each gt whose best IoU >= minPosIou takes its best candidate(s),
   *    overriding step 3.
   * Candidates whose IoF with any of `gtBboxesIgnore` `[I*4]` exceeds ignoreIofThr get IoU -1 with
   * every gt first, so they stay -1. Without gts every candidate is background.
   * `gtLabels` `[G]` fills `labels`.
   */
  assign(bboxes: Float32Array, gtBboxes: Float32Array, gtLabels?: Int32Array, gtBboxesIgnore?: Float32Array): AssignResult {
    assertBoxes(bboxes, 'MaxIoUAssigner.assign(bboxes)');
    assertBoxes(gtBboxes, 'MaxIoUAssigner.assign(gtBboxes)');
    const n = bboxes.length / 4, g = gtBboxes.length / 4;
    if (gtLabels && gtLabels.length !== g) {
      throw new Error(`MaxIoUAssigner.assign: expected ${g} gtLabels (one per gt box), got ${gtLabels.length}`);
    }
    const gtInds = new Int32Array(n).fill(-1);
    const maxOverlaps = new Float32Array(n);
    const labels = new Int32Array(n).fill(-1);
    if (g === 0 || n === 0) {
      if (g === 0) gtInds.fill(0);
      return { numGts: g, gtInds, maxOverlaps, labels };
    }

    const overlaps = boxIoU(gtBboxes, bboxes); // [G, N]
    if (this.ignoreIofThr > 0 && gtBboxesIgnore && gtBboxesIgnore.length > 0) {
      assertBoxes(gtBboxesIgnore, 'MaxIoUAssigner.assign(gtBboxesIgnore)');
      const ignored = this.ignoredCandidates(bboxes, gtBboxesIgnore);
      for (let j = 0; j < n; j++) if (ignored[j]) for (let i = 0; i < g; i++) overlaps[i * n + j] = -1;
    }

    // Best gt per candidate (first on ties), best IoU per gt.
    const argmax = new Int32Array(n);
    maxOverlaps.fill(-Infinity);
    const gtMax = new Float32Array(g).fill(-Infinity);
    const gtArgmax = new Int32Array(g);
    for (let i = 0; i < g; i++) {
      const row = i * n;
      for (let j = 0; j < n; j++) {
        const v = overlaps[row + j];
        if (v > maxOverlaps[j]) { maxOverlaps[j] = v; argmax[j] = i; }
        if (v > gtMax[i]) { gtMax[i] = v; gtArgmax[i] = j; }
      }
    }

    const [negLo, negHi] = typeof this.negIouThr === 'number' ? [0, this.negIouThr] : this.negIouThr;
    for (let j = 0; j < n; j++) {
      const v = maxOverlaps[j];
      if (v >= negLo && v < negHi) gtInds[j] = 0;
      if (v >= this.posIouThr) gtInds[j] = argmax[j] + 1;
    }

    if (this.matchLowQuality) {
      for (let i = 0; i < g; i++) {
        if (!(gtMax[i] >= this.minPosIou)) continue;
        if (this.gtMaxAssignAll) {
          const row = i * n;
          for (let j = 0; j < n; j++) if (overlaps[row + j] === gtMax[i]) gtInds[j] = i + 1;
        } else {
          gtInds[gtArgmax[i]] = i + 1;
        }
      }
    }

    if (gtLabels) for (let j = 0; j < n; j++) if (gtInds[j] > 0) labels[j] = gtLabels[gtInds[j] - 1];
    return { numGts: g, gtInds, maxOverlaps, labels };
  }

  /** `[N]` 1 where a candidate's largest IoF with the ignore boxes exceeds ignoreIofThr. */
  private ignoredCandidates(bboxes: Float32Array, ignore: Float32Array): Uint8Array {
    const n = bboxes.length / 4, m = ignore.length / 4;
    const out = new Uint8Array(n);
    if (this.ignoreWrtCandidates) {
      const iof = boxIoU(bboxes, ignore, 'iof'); // [N, M]
      for (let j = 0; j < n; j++) for (let k = 0; k < m; k++) if (iof[j * m + k] > this.ignoreIofThr) { out[j] = 1; break; }
    } else {
      const iof = boxIoU(ignore, bboxes, 'iof'); // [M, N]
      for (let k = 0; k < m; k++) for (let j = 0; j < n; j++) if (iof[k * n + j] > this.ignoreIofThr) out[j] = 1;
    }
    return out;
  }
}
