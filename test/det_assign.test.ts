/** MaxIoUAssigner and RandomSampler against MMDetection 2.x semantics. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MaxIoUAssigner, type AssignResult } from '../src/ops/assigner.ts';
import { RandomSampler, imageSamplingRng, randomChoice } from '../src/ops/sampler.ts';
import { Rng } from '../src/nn/random.ts';

const boxes = (...rows: number[][]): Float32Array => Float32Array.from(rows.flat());

test('MaxIoUAssigner: MMDet docstring example and thresholds', () => {
  const a = new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.5 });
  const r = a.assign(boxes([0, 0, 10, 10], [10, 10, 20, 20]), boxes([0, 0, 10, 9]), Int32Array.from([3]));
  assert.deepEqual([...r.gtInds], [1, 0]);
  assert.deepEqual([...r.labels], [3, -1]);
  assert.equal(r.numGts, 1);
  assert.ok(Math.abs(r.maxOverlaps[0] - 0.9) < 1e-6);
  // Between negIouThr and posIouThr: ignored (-1); negative range as a [lo, hi) pair.
  const b = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: [0.1, 0.3], matchLowQuality: false });
  const cands = boxes([0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 2], [50, 50, 60, 60]);
  const rb = b.assign(cands, boxes([0, 0, 10, 10]));
  // IoUs 1, 0.5, 0.2, 0: positive, between thresholds, negative, below lo (stays -1).
  assert.deepEqual([...rb.gtInds], [1, -1, 0, -1]);
  assert.deepEqual([...rb.labels], [-1, -1, -1, -1]); // no gt labels given
});

test('MaxIoUAssigner: low-quality matches give each gt its best candidate(s)', () => {
  const cands = boxes([0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 4, 10], [100, 100, 110, 110]);
  const gt = boxes([0, 0, 30, 10], [100, 100, 140, 110]);
  // gt 0: IoU 1/3 with candidates 0 and 1 (tie), 0.133 with 2; gt 1: 0.25 with candidate 3.
  const all = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, minPosIou: 0.2 }).assign(cands, gt, Int32Array.from([5, 7]));
  assert.deepEqual([...all.gtInds], [1, 1, 0, 2]);
  assert.deepEqual([...all.labels], [5, 5, -1, 7]);
  const first = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, minPosIou: 0.2, gtMaxAssignAll: false }).assign(cands, gt);
  assert.deepEqual([...first.gtInds], [1, -1, 0, 2]);
  // minPosIou above a gt's best IoU: no low-quality match for it.
  const strict = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, minPosIou: 0.3 }).assign(cands, gt);
  assert.deepEqual([...strict.gtInds], [1, 1, 0, 0]);
  const off = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, matchLowQuality: false }).assign(cands, gt);
  assert.deepEqual([...off.gtInds], [-1, -1, 0, 0]);
  // Low-quality matching overrides step 3: candidate 0 is best for gt 1 though gt 0 is its best.
  const over = new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.5 }).assign(
    boxes([0, 0, 10, 10], [20, 20, 30, 30]), boxes([0, 0, 10, 10], [0, 0, 10, 6]));
  assert.deepEqual([...over.gtInds], [2, 0]);
});

test('MaxIoUAssigner: candidates inside crowd/ignore boxes (iof > thr) are -1', () => {
  const cands = boxes([0, 0, 10, 10], [50, 50, 60, 60], [55, 55, 75, 75], [200, 200, 210, 210]);
  const gt = boxes([0, 0, 10, 10]);
  const ignore = boxes([45, 45, 70, 70]);
  const a = new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.4, ignoreIofThr: 0.5 });
  const r = a.assign(cands, gt, Int32Array.from([0]), ignore);
  // Candidate 1 lies inside (iof 1), candidate 2 is 15x15 of 20x20 inside (iof 0.5625).
  assert.deepEqual([...r.gtInds], [1, -1, -1, 0]);
  assert.deepEqual([...r.maxOverlaps], [1, -1, -1, 0]);
  // IoF w.r.t. the ignore box instead: 100/625 and 225/625 are both below 0.5.
  const wrt = new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.4, ignoreIofThr: 0.3, ignoreWrtCandidates: false });
  assert.deepEqual([...wrt.assign(cands, gt, undefined, ignore).gtInds], [1, 0, -1, 0]);
  // Disabled by default.
  assert.deepEqual([...new MaxIoUAssigner({ posIouThr: 0.5, negIouThr: 0.4 }).assign(cands, gt, undefined, ignore).gtInds], [1, 0, 0, 0]);
});

test('MaxIoUAssigner: no gts -> every candidate negative; no candidates -> empty', () => {
  const a = new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3 });
  const r = a.assign(boxes([0, 0, 10, 10], [5, 5, 8, 8]), new Float32Array(0), new Int32Array(0));
  assert.deepEqual([...r.gtInds], [0, 0]);
  assert.deepEqual([...r.labels], [-1, -1]);
  assert.deepEqual([...r.maxOverlaps], [0, 0]);
  assert.equal(r.numGts, 0);
  const e = a.assign(new Float32Array(0), boxes([0, 0, 1, 1]));
  assert.equal(e.gtInds.length, 0);
  assert.throws(() => a.assign(boxes([0, 0, 1, 1]), boxes([0, 0, 1, 1]), Int32Array.from([1, 2])), /1 gtLabels/);
});

function syntheticAssign(numPos: number, numNeg: number, numIgnore: number, numGts: number): AssignResult {
  const n = numPos + numNeg + numIgnore;
  const gtInds = new Int32Array(n), labels = new Int32Array(n).fill(-1);
  // Interleave: positives, negatives and ignores spread over the index range.
  let p = 0, q = 0, r = 0;
  for (let j = 0; j < n; j++) {
    const kind = j % 3;
    if ((kind === 0 && p < numPos) || (q >= numNeg && r >= numIgnore)) { gtInds[j] = (p++ % numGts) + 1; labels[j] = 10 + gtInds[j]; }
    else if ((kind === 1 && q < numNeg) || r >= numIgnore) { gtInds[j] = 0; q++; }
    else { gtInds[j] = -1; r++; }
  }
  return { numGts, gtInds, maxOverlaps: new Float32Array(n), labels };
}

test('RandomSampler: counts, GT prepended, ascending indices', () => {
  const g = 3;
  const assign = syntheticAssign(100, 400, 50, g);
  const n = assign.gtInds.length;
  const cands = new Float32Array(n * 4).map((_, i) => i);
  const gtB = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const gtL = Int32Array.from([4, 5, 6]);
  const s = new RandomSampler({ num: 64, posFraction: 0.25 }, new Rng(1)).sample(assign, cands, gtB, gtL);
  assert.equal(s.posInds.length, 16);
  assert.equal(s.negInds.length, 48);
  assert.equal(s.bboxes.length, (g + n) * 4);
  assert.deepEqual([...s.bboxes.subarray(0, 12)], [...gtB]);
  assert.deepEqual([...s.bboxes.subarray(12, 16)], [0, 1, 2, 3]);
  for (const inds of [s.posInds, s.negInds]) for (let k = 1; k < inds.length; k++) assert.ok(inds[k] > inds[k - 1]);
  for (let k = 0; k < s.posInds.length; k++) {
    const j = s.posInds[k];
    const isGt = j < g;
    assert.equal(s.posIsGt[k], isGt ? 1 : 0);
    const want = isGt ? j : assign.gtInds[j - g] - 1;
    assert.equal(s.posAssignedGtInds[k], want);
    assert.equal(s.posGtLabels[k], isGt ? gtL[j] : assign.labels[j - g]);
  }
  for (const j of s.negInds) assert.equal(assign.gtInds[j - g], 0);
  assert.equal(assign.gtInds.length, n, 'the assign result is not modified');

  // Few positives: all taken (gts first), negatives fill up to num.
  const few = syntheticAssign(2, 400, 0, 1);
  const f = new RandomSampler({ num: 64, posFraction: 0.25 }, new Rng(1)).sample(few, new Float32Array(few.gtInds.length * 4), gtB.subarray(0, 4), gtL.subarray(0, 1));
  assert.deepEqual([...f.posIsGt], [1, 0, 0]);
  assert.equal(f.posInds[0], 0);
  assert.equal(f.negInds.length, 61);
  // negPosUb bounds the negatives; without gts as proposals, indices refer to the candidates.
  const ub = new RandomSampler({ num: 64, posFraction: 0.25, negPosUb: 5, addGtAsProposals: false }, new Rng(1)).sample(few, new Float32Array(few.gtInds.length * 4), gtB);
  assert.equal(ub.posInds.length, 2);
  assert.equal(ub.negInds.length, 10);
  assert.deepEqual([...ub.posIsGt], [0, 0]);
  assert.equal(ub.bboxes.length, few.gtInds.length * 4);
  assert.throws(() => new RandomSampler({ num: 8, posFraction: 0.5 }).sample(few, new Float32Array(few.gtInds.length * 4), gtB), /needs gtLabels/);
});

test('RandomSampler: deterministic for a seeded Rng and draws from the one it was given', () => {
  const assign = syntheticAssign(100, 400, 0, 2);
  const cands = new Float32Array(assign.gtInds.length * 4);
  const gtB = Float32Array.from([0, 0, 5, 5, 1, 1, 6, 6]), gtL = Int32Array.from([0, 1]);
  const run = (rng: Rng) => new RandomSampler({ num: 32, posFraction: 0.25 }, rng).sample(assign, cands, gtB, gtL);
  const a = run(new Rng(7)), b = run(new Rng(7)), c = run(new Rng(8));
  assert.deepEqual([...a.posInds], [...b.posInds]);
  assert.deepEqual([...a.negInds], [...b.negInds]);
  assert.notDeepEqual([...a.negInds], [...c.negInds]);
  // The passed generator advances; a restored state replays the same draw.
  const rng = new Rng(3);
  const before = rng.getState();
  const s1 = run(rng);
  assert.notDeepEqual(rng.getState(), before);
  rng.setState(before);
  assert.deepEqual([...run(rng).negInds], [...s1.negInds]);
});

test('RandomSampler with keys: the same candidates whatever their order; imageSamplingRng streams', () => {
  const assign = syntheticAssign(60, 300, 0, 2);
  const n = assign.gtInds.length;
  const cands = Float32Array.from({ length: n * 4 }, (_, i) => i);
  const keys = Int32Array.from({ length: n }, (_, j) => 1000 + 7 * j);
  const gtB = Float32Array.from([0, 0, 5, 5, 1, 1, 6, 6]), gtL = Int32Array.from([0, 1]);
  const sampler = new RandomSampler({ num: 64, posFraction: 0.25 });
  // The candidates in another order (as float rounding reorders near-equal scores).
  const perm = Int32Array.from({ length: n }, (_, j) => j).sort((a, b) => ((a * 7919) % n) - ((b * 7919) % n));
  const permuted: AssignResult = { ...assign, gtInds: Int32Array.from(perm, (j) => assign.gtInds[j]), labels: Int32Array.from(perm, (j) => assign.labels[j]) };
  const pc = new Float32Array(n * 4);
  perm.forEach((j, k) => pc.set(cands.subarray(j * 4, j * 4 + 4), k * 4));
  const picked = (r: ReturnType<RandomSampler['sample']>) => new Set([...r.posInds, ...r.negInds].map((j) => [...r.bboxes.subarray(j * 4, j * 4 + 4)].join()));
  const a = sampler.sample(assign, cands, gtB, gtL, new Rng(11), keys);
  const b = sampler.sample(permuted, pc, gtB, gtL, new Rng(11), Int32Array.from(perm, (j) => keys[j]));
  assert.deepEqual(picked(b), picked(a));
  assert.ok([...a.posInds].every((v, i, x) => i === 0 || x[i - 1] < v), 'indices stay ascending');
  // Without keys the draw is by position, so the order changes it.
  assert.notDeepEqual(picked(sampler.sample(permuted, pc, gtB, gtL, new Rng(11))), picked(a));
  assert.throws(() => sampler.sample(assign, cands, gtB, gtL, new Rng(1), keys.subarray(1)), /a key per candidate/);
  // One generator per image and stage, independent of the others; none without a seed.
  const u = (seed: number, stream: number) => imageSamplingRng(seed, stream)!.uniform();
  assert.equal(u(5, 0), u(5, 0));
  assert.notEqual(u(5, 0), u(5, 1));
  assert.notEqual(u(5, 0), u(6, 0));
  assert.equal(imageSamplingRng(undefined, 0), undefined);
});

test('randomChoice: distinct, uniform-ish, all when asked for more than there are', () => {
  const gallery = Int32Array.from({ length: 10 }, (_, i) => i * 2);
  assert.deepEqual([...randomChoice(gallery, 20, new Rng(0))], [...gallery]);
  const rng = new Rng(5);
  const counts = new Array<number>(10).fill(0);
  for (let t = 0; t < 2000; t++) {
    const pick = randomChoice(gallery, 3, rng);
    assert.equal(new Set(pick).size, 3);
    for (const v of pick) counts[v / 2]++;
  }
  for (const c of counts) assert.ok(c > 450 && c < 750, `counts ${counts}`);
});
