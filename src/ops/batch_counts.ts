/**
 * Loss normalisers over the whole distributed batch (MMDetection's `reduce_mean` of `avg_factor`).
 *
 * A detection loss is a sum over the batch's samples (anchors, RoIs, mask pixels) divided by a count
 * of them. When each process divides by its own count, the gradient averaged over processes is not
 * the gradient of the whole batch. Each process divides instead by the batch-wide total over the
 * number of processes R: the average over processes of `sum_r / (total / R)` is `sum / total`, the
 * single-process loss of the whole batch (and so is the logged average of the processes' losses).
 */
import type { StatReducer } from '../nn/norm.ts';

/**
 * Sums small count vectors in place over every process (blocking, as SyncBN's statistics: every
 * process calls it, in the same order), and says how many processes there are.
 */
export interface CountReducer extends StatReducer {
  readonly size: number;
}

/** One process: the counts are the batch's. */
export const LOCAL_COUNTS: CountReducer = { size: 1, sumSync: () => {} };

/** A model whose losses are normalised by batch counts (the distributed setup gives it a reducer). */
export interface UsesBatchCounts {
  countReducer: CountReducer;
}

export function usesBatchCounts(x: object): x is UsesBatchCounts {
  const r = (x as Partial<UsesBatchCounts>).countReducer;
  return typeof r === 'object' && r !== null && typeof r.sumSync === 'function';
}

/**
 * This process's avg factor of each count: the count's total over all processes, at least `min`,
 * divided by the number of processes. One reduction for all of `counts`.
 */
export function avgFactors(reducer: CountReducer, counts: number[], min = 1): number[] {
  const totals = Float64Array.from(counts);
  reducer.sumSync(totals);
  return Array.from(totals, (t) => Math.max(t, min) / reducer.size);
}
