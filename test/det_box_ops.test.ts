/**
 * Box ops against torchvision / MMDetection 2.x: IoU, delta coder and NMS parity with the shared
 * torchvision fixture; anchor generator values from MMDet's formula.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fixturePath } from './helpers/fixtures.ts';
import { boxArea, boxIoU, clipBoxes, rescaleBoxes } from '../src/ops/boxes.ts';
import { DeltaXYWHBBoxCoder } from '../src/ops/delta_coder.ts';
import { AnchorGenerator } from '../src/ops/anchors.ts';
import { batchedNms, nms } from '../src/ops/nms.ts';

interface TorchvisionOps {
  nms: { boxes: number[][]; scores: number[]; keep: Record<string, number[]> };
  batched_nms: { classes: number[]; iou_threshold: number; keep: number[] };
  box_iou: { a: number[][]; b: number[][]; iou: number[][] };
  delta_coder: {
    proposals: number[][]; gt: number[][]; encoded: number[][]; deltas: number[][]; decoded: number[][];
    stds: number[]; max_shape_hw: [number, number]; wh_ratio_clip: number;
  };
}

const FIX = JSON.parse(readFileSync(fixturePath('ops', 'torchvision_ops.json'), 'utf8')) as TorchvisionOps;
const flat = (rows: number[][]): Float32Array => Float32Array.from(rows.flat());

/** Largest |a - b| / max(1, |b|). */
function maxErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])));
  return m;
}

test('boxIoU matches torchvision box_iou', () => {
  const iou = boxIoU(flat(FIX.box_iou.a), flat(FIX.box_iou.b));
  assert.equal(iou.length, FIX.box_iou.a.length * FIX.box_iou.b.length);
  assert.ok(maxErr(iou, FIX.box_iou.iou.flat()) < 1e-6);
});

test('boxIoU iof, degenerate boxes; boxArea, clipBoxes, rescaleBoxes', () => {
  const a = Float32Array.from([0, 0, 10, 10, 5, 5, 5, 5]);
  const b = Float32Array.from([5, 0, 15, 10, 20, 20, 30, 30]);
  assert.deepEqual([...boxIoU(a, b)], [Math.fround(50 / 150), 0, 0, 0]);
  assert.deepEqual([...boxIoU(a, b, 'iof')], [0.5, 0, 0, 0]);
  assert.deepEqual([...boxArea(a)], [100, 0]);
  assert.deepEqual([...clipBoxes(Float32Array.from([-3, -1, 50, 20]), [15, 40])], [0, 0, 40, 15]);
  assert.deepEqual([...rescaleBoxes(Float32Array.from([2, 4, 6, 8]), [2, 4])], [1, 1, 3, 2]);
  assert.throws(() => boxIoU(Float32Array.from([1, 2, 3]), b), /\[N\*4\]/);
});

test('DeltaXYWHBBoxCoder encode/decode match MMDet (fixture)', () => {
  const d = FIX.delta_coder;
  const coder = new DeltaXYWHBBoxCoder({ means: [0, 0, 0, 0], stds: d.stds });
  // Float32 results of float64 references: relative 1e-5 (values reach a few hundred).
  assert.ok(maxErr(coder.encode(flat(d.proposals), flat(d.gt)), d.encoded.flat()) < 1e-5);
  const dec = coder.decode(flat(d.proposals), flat(d.deltas), d.max_shape_hw, d.wh_ratio_clip);
  assert.ok(maxErr(dec, d.decoded.flat()) < 1e-5);
});

test('DeltaXYWHBBoxCoder: decode(encode(b)) = b; class-specific deltas; MMDet docstring example', () => {
  const coder = new DeltaXYWHBBoxCoder({ stds: [0.1, 0.1, 0.2, 0.2] });
  const props = Float32Array.from([0, 0, 10, 20, 5, 5, 30, 12]);
  const gt = Float32Array.from([2, 1, 12, 25, 4, 6, 28, 15]);
  assert.ok(maxErr(coder.decode(props, coder.encode(props, gt)), gt) < 1e-5);
  // Two classes per roi: each group decodes on its own.
  const deltas2 = new Float32Array(16);
  deltas2.set(coder.encode(props.subarray(0, 4), gt.subarray(0, 4)), 4);
  deltas2.set(coder.encode(props.subarray(4, 8), gt.subarray(4, 8)), 8);
  const dec2 = coder.decode(props, deltas2);
  assert.ok(maxErr(dec2.subarray(0, 4), props.subarray(0, 4)) < 1e-5);
  assert.ok(maxErr(dec2.subarray(4, 12), gt) < 1e-5);
  assert.ok(maxErr(dec2.subarray(12, 16), props.subarray(4, 8)) < 1e-5);
  // delta2bbox docstring: rois, deltas, max_shape (32, 32), unit stds.
  const plain = new DeltaXYWHBBoxCoder();
  const rois = Float32Array.from([0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 5, 5, 5, 5]);
  const deltas = Float32Array.from([0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 2, -1, 0.7, -1.9, -0.5, 0.3]);
  const want = [0, 0, 1, 1, 0.1409, 0.1409, 2.8591, 2.8591, 0, 0.3161, 4.1945, 0.6839, 5, 5, 5, 5];
  const got = plain.decode(rois, deltas, [32, 32]);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-4, `element ${i}: ${got[i]} vs ${want[i]}`);
  assert.throws(() => plain.decode(rois, new Float32Array(6)), /N\*4\*C/);
});

test('nms keep lists equal torchvision at every threshold', () => {
  const boxes = flat(FIX.nms.boxes), scores = Float32Array.from(FIX.nms.scores);
  const thrs = Object.keys(FIX.nms.keep);
  assert.ok(thrs.length > 0);
  for (const thr of thrs) assert.deepEqual([...nms(boxes, scores, Number(thr))], FIX.nms.keep[thr], `iou threshold ${thr}`);
});

test('batchedNms keep list equals torchvision batched_nms', () => {
  const boxes = flat(FIX.nms.boxes), scores = Float32Array.from(FIX.nms.scores);
  const keep = batchedNms(boxes, scores, Int32Array.from(FIX.batched_nms.classes), FIX.batched_nms.iou_threshold);
  assert.deepEqual([...keep], FIX.batched_nms.keep);
});

test('nms: ties keep index order, boxes of other classes never suppress', () => {
  const boxes = Float32Array.from([0, 0, 10, 10, 0, 0, 10, 10, 1, 1, 10, 10, 50, 50, 60, 60]);
  const scores = Float32Array.from([0.5, 0.5, 0.9, 0.1]);
  assert.deepEqual([...nms(boxes, scores, 0.5)], [2, 3]);
  assert.deepEqual([...batchedNms(boxes, scores, Int32Array.from([0, 1, 2, 0]), 0.5)], [2, 0, 1, 3]);
  assert.deepEqual([...nms(new Float32Array(0), new Float32Array(0), 0.5)], []);
  assert.throws(() => nms(boxes, new Float32Array(3), 0.5), /one score per box/);
});

test('nms is fast on 5000 boxes', () => {
  const n = 5000, boxes = new Float32Array(n * 4), scores = new Float32Array(n);
  let s = 1;
  const rand = (): number => ((s = (s * 16807) % 2147483647) / 2147483647);
  for (let i = 0; i < n; i++) {
    const x = rand() * 800, y = rand() * 800, w = 5 + rand() * 100, h = 5 + rand() * 100;
    boxes.set([x, y, x + w, y + h], 4 * i);
    scores[i] = rand();
  }
  const t0 = performance.now();
  const keep = nms(boxes, scores, 0.7);
  assert.ok(keep.length > 0 && keep.length <= n);
  assert.ok(performance.now() - t0 < 2000, 'nms of 5000 boxes took over 2 s');
});

test('AnchorGenerator base anchors equal MMDet formula (stride 4, scale 8, ratios 0.5/1/2)', () => {
  const gen = new AnchorGenerator({ strides: [4, 8, 16, 32, 64], ratios: [0.5, 1, 2], scales: [8] });
  assert.equal(gen.numBaseAnchors, 3);
  // w = h = 4; h_ratio = sqrt(r), w_ratio = 1 / h_ratio; ws = 4 * w_ratio * 8; centre 0.
  const want: number[] = [];
  for (const r of [0.5, 1, 2]) {
    const ws = 4 * (1 / Math.sqrt(r)) * 8, hs = 4 * Math.sqrt(r) * 8;
    want.push(-ws / 2, -hs / 2, ws / 2, hs / 2);
  }
  assert.ok(maxErr(gen.baseAnchors(0), want) < 1e-6);
  // MMDet's test_anchor.py values for level 0.
  const mmdet = [-22.6274, -11.3137, 22.6274, 11.3137, -16, -16, 16, 16, -11.3137, -22.6274, 11.3137, 22.6274];
  assert.ok(maxErr(gen.baseAnchors(0), mmdet) < 1e-4);
  assert.ok(maxErr(gen.baseAnchors(4), want.map((v) => v * 16)) < 1e-5);
  // Centre offset 0.5 shifts by half the base size.
  const off = new AnchorGenerator({ strides: [16], ratios: [1], scales: [1], centerOffset: 0.5 });
  assert.deepEqual([...off.baseAnchors(0)], [0, 0, 16, 16]);
  // RetinaNet octave scales: 4 * 2^(i/3).
  const retina = new AnchorGenerator({ strides: [8], ratios: [1], octaveBaseScale: 4, scalesPerOctave: 3 });
  assert.equal(retina.numBaseAnchors, 3);
  assert.ok(Math.abs(retina.baseAnchors(0)[6] - 16 * 2 ** (1 / 3)) < 1e-4);
  assert.throws(() => new AnchorGenerator({ strides: [4], ratios: [1] }), /scales or octaveBaseScale/);
});

test('AnchorGenerator grid order (h, w, a) and MMDet docstring example', () => {
  const gen = new AnchorGenerator({ strides: [16], ratios: [1], scales: [1], baseSizes: [9] });
  assert.deepEqual([...gen.gridAnchors([[2, 2]])[0]],
    [-4.5, -4.5, 4.5, 4.5, 11.5, -4.5, 20.5, 4.5, -4.5, 11.5, 4.5, 20.5, 11.5, 11.5, 20.5, 20.5]);
  const g3 = new AnchorGenerator({ strides: [4, 8], ratios: [0.5, 1, 2], scales: [8] });
  const [l0, l1] = g3.gridAnchors([[3, 5], [2, 3]]);
  assert.equal(l0.length, 3 * 5 * 3 * 4);
  assert.equal(l1.length, 2 * 3 * 3 * 4);
  const base = g3.baseAnchors(0);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 5; x++) for (let a = 0; a < 3; a++) {
    const o = ((y * 5 + x) * 3 + a) * 4;
    assert.deepEqual([...l0.subarray(o, o + 4)], [...Float32Array.from([base[4 * a] + 4 * x, base[4 * a + 1] + 4 * y, base[4 * a + 2] + 4 * x, base[4 * a + 3] + 4 * y])]);
  }
});

test('AnchorGenerator validFlags: ceil(valid / stride) rows and columns', () => {
  const gen = new AnchorGenerator({ strides: [4, 8], ratios: [0.5, 1, 2], scales: [8] });
  // Padded input 16 x 24, image 10 x 13: level 0 valid 3 x 4 of 4 x 6, level 1 valid 2 x 2 of 2 x 3.
  const [f0, f1] = gen.validFlags([[4, 6], [2, 3]], [10, 13]);
  assert.equal(f0.length, 4 * 6 * 3);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 6; x++) for (let a = 0; a < 3; a++) {
    assert.equal(f0[(y * 6 + x) * 3 + a], y < 3 && x < 4 ? 1 : 0, `level 0 (${y}, ${x}, ${a})`);
  }
  for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) for (let a = 0; a < 3; a++) {
    assert.equal(f1[(y * 3 + x) * 3 + a], x < 2 ? 1 : 0, `level 1 (${y}, ${x}, ${a})`);
  }
  assert.throws(() => gen.validFlags([[4, 6]], [10, 13]), /2 feature sizes/);
});
