/** Segmentation metrics with MMSeg semantics, checked against numbers worked out by hand. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SegMetricAccumulator,
  histcBin,
  intersectAndUnion,
  type SegMetricOptions,
  type SegMetrics,
} from '../src/evaluation/index.ts';

function evaluate(pred: number[], label: number[], k: number, opts?: SegMetricOptions): SegMetrics {
  const acc = new SegMetricAccumulator(k, opts);
  acc.add(pred, label);
  return acc.compute();
}

/** Equal up to float rounding; NaN only equals NaN. */
function close(actual: number, expected: number, what: string): void {
  if (Number.isNaN(expected)) return assert.ok(Number.isNaN(actual), `${what}: expected NaN, got ${actual}`);
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: expected ${expected}, got ${actual}`);
}

function assertMetrics(m: SegMetrics, e: { aAcc: number; mIoU: number; mAcc: number; IoU: number[]; Acc: number[] }): void {
  close(m.aAcc, e.aAcc, 'aAcc');
  close(m.mIoU, e.mIoU, 'mIoU');
  close(m.mAcc, e.mAcc, 'mAcc');
  assert.equal(m.perClass.IoU.length, e.IoU.length);
  assert.equal(m.perClass.Acc.length, e.Acc.length);
  e.IoU.forEach((x, c) => close(m.perClass.IoU[c]!, x, `IoU[${c}]`));
  e.Acc.forEach((x, c) => close(m.perClass.Acc[c]!, x, `Acc[${c}]`));
}

// idx:          0  1  2  3  4  5  6  7
const PRED =   [0, 0, 1, 1, 2, 2, 1, 0];
const LABEL =  [0, 1, 1, 1, 2, 0, 2, 0];
// pred area:   c0 = {0,1,7} = 3   c1 = {2,3,6} = 3   c2 = {4,5} = 2
// label area:  c0 = {0,5,7} = 3   c1 = {1,2,3} = 3   c2 = {4,6} = 2
// intersect:   c0 = {0,7}   = 2   c1 = {2,3}   = 2   c2 = {4}   = 1   (total 5)
// union:       c0 = 3+3-2 = 4     c1 = 3+3-2 = 4     c2 = 2+2-1 = 3
// IoU = 2/4, 2/4, 1/3  → mIoU = (1/2 + 1/2 + 1/3) / 3 = 4/9
// Acc = 2/3, 2/3, 1/2  → mAcc = (2/3 + 2/3 + 1/2) / 3 = 11/18
// aAcc = 5/8
const PLAIN = { aAcc: 5 / 8, mIoU: 4 / 9, mAcc: 11 / 18, IoU: [1 / 2, 1 / 2, 1 / 3], Acc: [2 / 3, 2 / 3, 1 / 2] };

test('plain case: per-class IoU/Acc, means and aAcc', () => {
  assertMetrics(evaluate(PRED, LABEL, 3), PLAIN);
  const a = intersectAndUnion(PRED, LABEL, 3);
  assert.deepEqual([...a.areaIntersect], [2, 2, 1]);
  assert.deepEqual([...a.areaUnion], [4, 4, 3]);
  assert.deepEqual([...a.areaPredLabel], [3, 3, 2]);
  assert.deepEqual([...a.areaLabel], [3, 3, 2]);
  // Typed arrays work the same.
  assertMetrics(evaluate(Uint8Array.from(PRED) as unknown as number[], Uint16Array.from(LABEL) as unknown as number[], 3), PLAIN);
});

test('ignore_index pixels are excluded from everything, whatever is predicted there', () => {
  // Two extra pixels labelled 255 with predictions 0 and 2: nothing changes.
  assertMetrics(evaluate([...PRED, 0, 2], [...LABEL, 255, 255], 3), PLAIN);
  assert.deepEqual([...intersectAndUnion([...PRED, 0, 2], [...LABEL, 255, 255], 3).areaPredLabel], [3, 3, 2]);

  // ignoreIndex 0 on the plain arrays: idx 0, 5, 7 drop out; left pred [0,1,1,2,1], label [1,1,1,2,2] (idx 1,2,3,4,6)
  // pred area c0=1 c1=3 c2=1; label area c0=0 c1=3 c2=2; intersect c0=0 c1=2 (idx 2,3) c2=1 (idx 4)
  // union c0 = 1+0-0 = 1, c1 = 3+3-2 = 4, c2 = 1+2-1 = 2
  // IoU = 0/1, 2/4, 1/2 → mIoU = (0 + 1/2 + 1/2)/3 = 1/3;  Acc = 0/0 (NaN), 2/3, 1/2 → mAcc = (2/3 + 1/2)/2 = 7/12
  // aAcc = 3/5
  const m = evaluate(PRED, LABEL, 3, { ignoreIndex: 0 });
  assertMetrics(m, { aAcc: 3 / 5, mIoU: 1 / 3, mAcc: 7 / 12, IoU: [0, 1 / 2, 1 / 2], Acc: [NaN, 2 / 3, 1 / 2] });
});

test('reduce_zero_label: 0 is ignored, k becomes k-1, 255 stays ignored', () => {
  // raw label [0, 1, 2, 255, 1, 2] → [255, 0, 1, 255, 0, 1]; pred [1, 0, 1, 0, 1, 1]
  // kept idx 1 (l0,p0), 2 (l1,p1), 4 (l0,p1), 5 (l1,p1)
  // pred area c0=1 c1=3; label area c0=2 c1=2; intersect c0=1 (idx 1) c1=2 (idx 2,5)
  // union c0 = 1+2-1 = 2, c1 = 3+2-2 = 3
  // IoU = 1/2, 2/3 → mIoU = 7/12; Acc = 1/2, 2/2 → mAcc = 3/4; aAcc = 3/4
  const pred = [1, 0, 1, 0, 1, 1];
  const raw = [0, 1, 2, 255, 1, 2];
  const expected = { aAcc: 3 / 4, mIoU: 7 / 12, mAcc: 3 / 4, IoU: [1 / 2, 2 / 3], Acc: [1 / 2, 1] };
  assertMetrics(evaluate(pred, raw, 2, { reduceZeroLabel: true }), expected);
  assertMetrics(evaluate(pred, [255, 0, 1, 255, 0, 1], 2), expected); // the same as mapping by hand
  // Applied literally (no uint8 wrap): 256 → 255 is ignored too, 254 → 253.
  assert.deepEqual([...intersectAndUnion([0, 0], [256, 1], 2, { reduceZeroLabel: true }).areaLabel], [1, 0]);
});

test('label_map is applied to the original values (no chaining), before reduce_zero_label', () => {
  // {1: 2, 2: 0}: label [1, 2, 0] → [2, 0, 0] (not [0, 0, 0], which chaining 1→2→0 would give)
  assert.deepEqual([...intersectAndUnion([0, 0, 0], [1, 2, 0], 3, { labelMap: { 1: 2, 2: 0 } }).areaLabel], [2, 0, 1]);
  // map first, then reduce: 5 → 1 → 0; 1 → 0 → ignored; 0 → ignored
  assert.deepEqual([...intersectAndUnion([0, 0, 0], [5, 1, 0], 2, { labelMap: { 5: 1, 1: 0 }, reduceZeroLabel: true }).areaLabel], [1, 0]);
});

test('a class absent from both pred and GT has NaN IoU/Acc and is left out of the means', () => {
  // The plain arrays with K = 4: class 3 has union 0 and label area 0 → NaN, NaN; the means stay 4/9 and 11/18.
  assertMetrics(evaluate(PRED, LABEL, 4), { ...PLAIN, IoU: [...PLAIN.IoU, NaN], Acc: [...PLAIN.Acc, NaN] });
});

test('a class present in the prediction only has IoU 0 and Acc NaN', () => {
  // pred [0, 2, 1, 1], label [0, 0, 1, 1], K = 3
  // pred area c0=1 c1=2 c2=1; label area c0=2 c1=2 c2=0; intersect c0=1 c1=2 c2=0
  // union c0 = 1+2-1 = 2, c1 = 2+2-2 = 2, c2 = 1+0-0 = 1
  // IoU = 1/2, 1, 0 → mIoU = 1/2; Acc = 1/2, 1, 0/0 = NaN → mAcc = 3/4; aAcc = 3/4
  assertMetrics(evaluate([0, 2, 1, 1], [0, 0, 1, 1], 3), { aAcc: 3 / 4, mIoU: 1 / 2, mAcc: 3 / 4, IoU: [1 / 2, 1, 0], Acc: [1 / 2, 1, NaN] });
});

test('out-of-range values fall in no bin (torch.histc(min=0, max=K-1) semantics)', () => {
  // K = 3, pred [255, 3, -1, 0, 1], label [0, 0, 0, 0, 5] (5 is not ignore_index, but no class either)
  // pred area: only idx 3 (c0) and idx 4 (c1) bin → c0=1 c1=1; label area: idx 0..3 → c0=4 (5 has no bin)
  // intersect c0=1 (idx 3); union c0 = 1+4-1 = 4, c1 = 1+0-0 = 1, c2 = 0
  // IoU = 1/4, 0, NaN → mIoU = 1/8; Acc = 1/4, NaN, NaN → mAcc = 1/4; aAcc = 1/4
  const acc = new SegMetricAccumulator(3);
  acc.add([255, 3, -1, 0, 1], [0, 0, 0, 0, 5]);
  assertMetrics(acc.compute(), { aAcc: 1 / 4, mIoU: 1 / 8, mAcc: 1 / 4, IoU: [1 / 4, 0, NaN], Acc: [1 / 4, NaN, NaN] });
  assert.deepEqual(acc.pixelCounts(), { total: 5, ignored: 0, predOutOfRange: 3, labelOutOfRange: 1 });

  // The bin rule itself: bin = trunc(v*K/(K-1)) in float32, v = K-1 → last bin, outside [0, K-1] → none.
  assert.equal(histcBin(2, 3), 2);
  assert.equal(histcBin(0.6, 3), 0); // 0.6*3/2 = 0.9
  assert.equal(histcBin(1.5, 3), 2); // 1.5*3/2 = 2.25
  assert.equal(histcBin(2.5, 3), -1); // above max = K-1
  assert.equal(histcBin(Number.NaN, 3), -1);
  // Integer classes map to themselves up to K = 4097; at K = 4098, float32 rounding in torch's kernel
  // ((4096*4098 → 16785408) / 4097 = 4096.9998 → rounds to 4097.0 in float32) moves class 4096 into bin 4097.
  for (let v = 0; v < 4097; v++) assert.equal(histcBin(v, 4097), v);
  assert.equal(histcBin(4096, 4098), 4097);
  // K = 1: torch's min == max == 0 case takes the range from the data, so every non-NaN value counts.
  assert.deepEqual([...intersectAndUnion([0, 7, 3], [0, 2, 3], 1).areaIntersect], [2]);
  assert.deepEqual([...intersectAndUnion([0, 7, 3], [0, 2, 3], 1).areaLabel], [3]);
});

/** Deterministic pseudo-random class maps (with some ignore and out-of-range values). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

test('accumulating several images equals one concatenated image', () => {
  const rand = lcg(42);
  const k = 5;
  const images: Array<{ pred: Uint8Array; label: Uint8Array }> = [];
  for (const n of [7, 1, 40, 13, 64]) {
    const pred = Uint8Array.from({ length: n }, () => (rand() < 0.05 ? 255 : Math.floor(rand() * (k + 1))));
    const label = Uint8Array.from({ length: n }, (_, i) => (rand() < 0.1 ? 255 : rand() < 0.6 ? pred[i]! : Math.floor(rand() * k)));
    images.push({ pred, label });
  }
  for (const opts of [{}, { reduceZeroLabel: true }, { ignoreIndex: 2 }] as SegMetricOptions[]) {
    const streamed = new SegMetricAccumulator(k, opts);
    const fromAreas = new SegMetricAccumulator(k, opts);
    for (const { pred, label } of images) {
      streamed.add(pred, label);
      fromAreas.addAreas(intersectAndUnion(pred, label, k, opts));
    }
    const whole = new SegMetricAccumulator(k, opts);
    whole.add(images.flatMap((im) => [...im.pred]), images.flatMap((im) => [...im.label]));
    assert.deepEqual(streamed.totals(), whole.totals());
    assert.deepEqual(fromAreas.totals(), whole.totals());
    assert.deepEqual(streamed.compute(), whole.compute());
    assert.equal(streamed.numImages, 5);
    assert.equal(streamed.pixelCounts().total, 125);
  }
});

test('a length mismatch is an error naming both sizes, and adds nothing', () => {
  const acc = new SegMetricAccumulator(3);
  acc.add([0, 1], [0, 1]);
  assert.throws(() => acc.add([0, 1, 2], [0, 1, 2, 1]), /prediction has 3 pixels but the label has 4/);
  assert.throws(() => intersectAndUnion([0], [0, 0], 3), /prediction has 1 pixels but the label has 2/);
  assert.equal(acc.numImages, 1);
  assert.deepEqual([...acc.totals().areaLabel], [1, 1, 0]);
  assert.throws(() => new SegMetricAccumulator(0), /numClasses must be an integer/);
  assert.throws(() => new SegMetricAccumulator(2.5), /numClasses must be an integer/);
});

test('perClassTable renders percent with 2 decimals, nan, and the summary line', () => {
  const acc = new SegMetricAccumulator(4);
  acc.add(PRED, LABEL);
  assert.equal(
    acc.perClassTable(['road', 'sky', 'car', 'boat']),
    [
      '+-------+-------+-------+',
      '| Class |  IoU  |  Acc  |',
      '+-------+-------+-------+',
      '| road  | 50.00 | 66.67 |',
      '| sky   | 50.00 | 66.67 |',
      '| car   | 33.33 | 50.00 |',
      '| boat  |   nan |   nan |',
      '+-------+-------+-------+',
      'aAcc: 62.50  mIoU: 44.44  mAcc: 61.11',
    ].join('\n'),
  );
  assert.match(acc.perClassTable(), /^\| 3 {5}\| {3}nan \| {3}nan \|$/m); // default names: indices
  assert.throws(() => acc.perClassTable(['a', 'b']), /got 2 class names for 4 classes/);
  acc.reset();
  assert.equal(acc.numImages, 0);
  assert.ok(Number.isNaN(acc.compute().aAcc)); // nothing added: 0/0, like MMSeg
});
