/**
 * MMDetection 2.x `RandomSampler` (with `BaseSampler.sample`): draws at most `num * posFraction`
 * positives and fills up to `num` with negatives, uniformly without replacement, from the
 * generator of the call (an image's own, {@link imageSamplingRng}) or else the one it was given (so a
 * saved/restored generator replays the same samples).
 */
import { globalRng, Rng } from '../nn/random.ts';
import type { AssignResult } from './assigner.ts';
import { assertBoxes } from './boxes.ts';

/** The generator interface the sampler draws from (`Rng` from src/nn/random.ts satisfies it). */
export interface UniformSource {
  uniform(): number;
}

export interface SamplingResult {
  /** Sampled positive candidates, ascending indices into `bboxes`. */
  posInds: Int32Array;
  /** Sampled negative candidates, ascending indices into `bboxes`. */
  negInds: Int32Array;
  /** `[P]` 0-based gt index of each positive. */
  posAssignedGtInds: Int32Array;
  /** `[P]` 1 where the positive is a gt box added as a proposal. */
  posIsGt: Uint8Array;
  /** `[P]` class of each positive's gt (-1 when the assignment had no labels). */
  posGtLabels: Int32Array;
  /** `[(G + N)*4]` all candidates, the gts first when they were added as proposals, else `[N*4]`. */
  bboxes: Float32Array;
}

export interface RandomSamplerOptions {
  /** Candidates sampled per image (positives + negatives). */
  num: number;
  /** Largest fraction of `num` that positives may take. */
  posFraction: number;
  /** At most `negPosUb * max(1, positives)` negatives; < 0: no bound. */
  negPosUb?: number;
  /** Prepend the gt boxes to the candidates, each assigned to itself (default true). */
  addGtAsProposals?: boolean;
}

/** Indices `j` with `pred(gtInds[j])`, ascending, or in ascending order of `keys[j]` when given. */
function indicesWhere(gtInds: Int32Array, pred: (v: number) => boolean, keys?: Int32Array): Int32Array {
  const out: number[] = [];
  for (let j = 0; j < gtInds.length; j++) if (pred(gtInds[j])) out.push(j);
  if (keys) out.sort((p, q) => keys[p] - keys[q] || p - q);
  return Int32Array.from(out);
}

/** `k` distinct elements of `gallery` chosen uniformly with `rng` (partial Fisher-Yates), sorted. */
export function randomChoice(gallery: Int32Array, k: number, rng: UniformSource): Int32Array {
  if (k >= gallery.length) return gallery.slice();
  const a = gallery.slice();
  for (let i = 0; i < k; i++) {
    const j = i + Math.min(Math.floor(rng.uniform() * (a.length - i)), a.length - i - 1);
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
  return a.subarray(0, k).sort();
}

/**
 * The generator of one image's target sampling in one stage (`stream` 0: RPN, 1 + i: RoI stage i)
 * from the image's `samplingSeed` (ImgMeta): independent of the other images of the batch and of
 * their order, so 2 processes x 2 images sample as 1 process x 4 images. Undefined without a seed
 * (hand-built batches): the sampler then draws from its own generator.
 */
export function imageSamplingRng(samplingSeed: number | undefined, stream: number): UniformSource | undefined {
  if (samplingSeed === undefined) return undefined;
  return new Rng((Math.imul(stream + 1, 0x9e3779b1) ^ samplingSeed) >>> 0);
}

export class RandomSampler {
  readonly num: number;
  readonly posFraction: number;
  readonly negPosUb: number;
  readonly addGtAsProposals: boolean;

  constructor(opts: RandomSamplerOptions, private readonly rng: UniformSource = globalRng) {
    if (!(Number.isInteger(opts.num) && opts.num > 0)) throw new Error(`RandomSampler: expected num a positive integer, got ${opts.num}`);
    if (!(opts.posFraction >= 0 && opts.posFraction <= 1)) {
      throw new Error(`RandomSampler: expected posFraction in [0, 1], got ${opts.posFraction}`);
    }
    this.num = opts.num;
    this.posFraction = opts.posFraction;
    this.negPosUb = opts.negPosUb ?? -1;
    this.addGtAsProposals = opts.addGtAsProposals ?? true;
  }

  /**
   * Samples from `assign` over `bboxes` `[N*4]`. With addGtAsProposals (and at least one gt),
   * `gtBboxes` `[G*4]` are prepended to the candidates and gt i is a positive for itself with
   * label `gtLabels[i]` (`gtLabels` `[G]` is then required); `assign` itself is not modified.
   * Draws from `rng` when given (an image's own generator), else from the sampler's. With `keys`
   * `[N]` (what each candidate came from, e.g. Proposals.ids) the draw picks candidates by key,
   * not by position: the same candidates whatever order they come in (proposals are in score
   * order, which float rounding reshuffles among near-equal scores).
   */
  sample(assign: AssignResult, bboxes: Float32Array, gtBboxes: Float32Array, gtLabels?: Int32Array, rng: UniformSource = this.rng, keys?: Int32Array): SamplingResult {
    assertBoxes(bboxes, 'RandomSampler.sample(bboxes)');
    assertBoxes(gtBboxes, 'RandomSampler.sample(gtBboxes)');
    const n = bboxes.length / 4, g = gtBboxes.length / 4;
    if (assign.gtInds.length !== n) {
      throw new Error(`RandomSampler.sample: expected an assignment of the ${n} candidates, got ${assign.gtInds.length}`);
    }
    let all = bboxes, gtInds = assign.gtInds, labels = assign.labels;
    if (keys && keys.length !== n) throw new Error(`RandomSampler.sample: expected a key per candidate (${n}), got ${keys.length}`);
    let isGt = new Uint8Array(n);
    let allKeys = keys;
    if (this.addGtAsProposals && g > 0) {
      if (!gtLabels || gtLabels.length !== g) {
        throw new Error(`RandomSampler.sample: addGtAsProposals needs gtLabels for the ${g} gts, got ${gtLabels ? gtLabels.length : 'none'}`);
      }
      all = new Float32Array((g + n) * 4);
      all.set(gtBboxes);
      all.set(bboxes, g * 4);
      gtInds = new Int32Array(g + n);
      for (let i = 0; i < g; i++) gtInds[i] = i + 1;
      gtInds.set(assign.gtInds, g);
      labels = new Int32Array(g + n);
      labels.set(gtLabels);
      labels.set(assign.labels, g);
      isGt = new Uint8Array(g + n);
      isGt.fill(1, 0, g);
      if (keys) {
        // The added gts before every candidate: keys below any other.
        const lowest = keys.reduce((m, k) => Math.min(m, k), 0);
        allKeys = new Int32Array(g + n);
        for (let i = 0; i < g; i++) allKeys[i] = lowest - g + i;
        allKeys.set(keys, g);
      }
    }

    const numExpectedPos = Math.floor(this.num * this.posFraction);
    const posInds = randomChoice(indicesWhere(gtInds, (v) => v > 0, allKeys), numExpectedPos, rng);
    let numExpectedNeg = this.num - posInds.length;
    if (this.negPosUb >= 0) numExpectedNeg = Math.min(numExpectedNeg, Math.floor(this.negPosUb * Math.max(1, posInds.length)));
    const negInds = randomChoice(indicesWhere(gtInds, (v) => v === 0, allKeys), numExpectedNeg, rng);

    const p = posInds.length;
    const posAssignedGtInds = new Int32Array(p), posIsGt = new Uint8Array(p), posGtLabels = new Int32Array(p);
    for (let k = 0; k < p; k++) {
      const j = posInds[k];
      posAssignedGtInds[k] = gtInds[j] - 1;
      posIsGt[k] = isGt[j];
      posGtLabels[k] = labels[j];
    }
    return { posInds, negInds, posAssignedGtInds, posIsGt, posGtLabels, bboxes: all };
  }
}
