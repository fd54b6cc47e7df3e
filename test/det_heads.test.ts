/**
 * Detection head pieces alone: the 2x2 deconv against a direct loop, RPN targets and proposals on
 * hand-made outputs, box-head targets at the class slot, RoI packing, and detections through the
 * COCO results format and back (src/coco).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { COCO } from '../src/coco/coco.ts';
import { instancesToCocoResults } from '../src/evaluation/coco_evaluator.ts';
import { ConvTranspose2d } from '../src/nn/conv_transpose.ts';
import { AnchorGenerator } from '../src/ops/anchors.ts';
import { MaxIoUAssigner } from '../src/ops/assigner.ts';
import { DeltaXYWHBBoxCoder } from '../src/ops/delta_coder.ts';
import { RandomSampler } from '../src/ops/sampler.ts';
import { RPNHead, type RPNOutputs } from '../src/heads/rpn/rpn_head.ts';
import { Shared2FCBBoxHead } from '../src/heads/roi/bbox_head.ts';
import { toRois } from '../src/heads/roi/standard_roi_head.ts';
import { makeInstances } from '../src/structures/instances.ts';
import { Rng } from '../src/nn/random.ts';
import type { ImgMeta } from '../src/datasets/collate.ts';

await tf.setBackend('cpu');

test('ConvTranspose2d(k=2, s=2) equals the direct definition', () => {
  const ct = new ConvTranspose2d(3, 2, 2);
  const rng = new Rng(3);
  const x = Float32Array.from({ length: 1 * 2 * 3 * 3 }, () => rng.normal());
  const w = ct.weight.variable.dataSync() as Float32Array; // [in, out, kh, kw]
  ct.bias!.variable.assign(tf.tensor1d([0.5, -0.25]));
  const y = ct.forward(tf.tensor4d(x, [1, 2, 3, 3])).dataSync();
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let a = 0; a < 2; a++) for (let b = 0; b < 2; b++) for (let o = 0; o < 2; o++) {
    let want = o === 0 ? 0.5 : -0.25;
    for (let c = 0; c < 3; c++) want += x[(i * 3 + j) * 3 + c] * w[((c * 2 + o) * 2 + a) * 2 + b];
    const got = y[((2 * i + a) * 6 + (2 * j + b)) * 2 + o];
    assert.ok(Math.abs(got - want) < 1e-5, `y[${2 * i + a},${2 * j + b},${o}] = ${got}, want ${want}`);
  }
  ct.dispose();
});

const meta = (h: number, w: number): ImgMeta => ({ oriShape: [h, w], imgShape: [h, w], padShape: [h, w], batchInputShape: [h, w], scaleFactor: [1, 1], flip: false });

function tinyRpn(): RPNHead {
  return new RPNHead({
    inChannels: 4, featChannels: 4,
    anchorGenerator: new AnchorGenerator({ strides: [8], ratios: [1], scales: [4] }),
    bboxCoder: new DeltaXYWHBBoxCoder(),
  });
}

test('RPN: an anchor equal to the GT box is the positive; its target deltas are 0', () => {
  const rpn = tinyRpn();
  // One level 4x4 of stride 8, one 32x32 anchor per cell centred at (8j, 8i).
  const out: RPNOutputs = { cls: [tf.zeros([1, 4, 4, 1])], reg: [tf.zeros([1, 4, 4, 4])] };
  const gt = { boxes: Float32Array.from([0, 0, 32, 32]), labels: Int32Array.from([0]), ignore: new Float32Array(0) };
  const cfg = { assigner: new MaxIoUAssigner({ posIouThr: 0.7, negIouThr: 0.3, minPosIou: 0.3 }), sampler: new RandomSampler({ num: 256, posFraction: 0.5, addGtAsProposals: false }, new Rng(0)), allowedBorder: -1 };
  const l = rpn.loss(out, [gt], [meta(32, 32)], cfg);
  // Zero logits: BCE log(2) per sampled anchor whatever the labels; zero deltas against the anchor (2,2)
  // (centre 16,16 = the GT's) give an L1 of 0 for that positive.
  assert.ok(Math.abs(l.loss_rpn_cls.dataSync()[0] - Math.log(2)) < 1e-5);
  assert.ok(l.loss_rpn_bbox.dataSync()[0] < 1e-6);
  tf.dispose([l.loss_rpn_cls, l.loss_rpn_bbox, ...out.cls, ...out.reg]);
  rpn.dispose();
});

test('RPN proposals: best-scored anchors first, decoded, NMS-suppressed, capped', () => {
  const rpn = tinyRpn();
  const scores = new Float32Array(16).fill(-5);
  scores[5] = 3; // anchor at (row 1, col 1): centre (8, 8), box [-8, -8, 24, 24] clipped to [0, 0, 24, 24]
  scores[6] = 2; // (1, 2): centre (16, 8) → [0, -8, 32, 24] → [0, 0, 32, 24]; IoU with the first 0.75 → suppressed at 0.7
  scores[15] = 1; // (3, 3): [8, 8, 40, 40] → [8, 8, 32, 32]
  const out: RPNOutputs = { cls: [tf.tensor4d(scores, [1, 4, 4, 1])], reg: [tf.zeros([1, 4, 4, 4])] };
  const [p] = rpn.proposals(out, [meta(32, 32)], { nmsPre: 3, maxPerImg: 2, nmsIou: 0.7, minBboxSize: 0 });
  assert.deepEqual([...p.boxes], [0, 0, 24, 24, 8, 8, 32, 32]);
  assert.ok(Math.abs(p.scores[0] - 1 / (1 + Math.exp(-3))) < 1e-6);
  tf.dispose([...out.cls, ...out.reg]);
  rpn.dispose();
});

test('box head targets: labels, background K, deltas at the class slot', () => {
  const head = new Shared2FCBBoxHead({ inChannels: 2, roiFeatSize: 2, fcOutChannels: 4, numClasses: 3, bboxCoder: new DeltaXYWHBBoxCoder({ stds: [0.1, 0.1, 0.2, 0.2] }) });
  const t = head.targets(Float32Array.from([0, 0, 10, 10]), Float32Array.from([1, 0, 11, 10]), Int32Array.from([2]), 2);
  assert.deepEqual([...t.labels], [2, 3, 3]);
  assert.deepEqual([...t.weights.subarray(0, 12)], [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
  assert.ok(Math.abs(t.deltas[8] - 1) < 1e-6, `dx / 0.1 = 1, got ${t.deltas[8]}`);
  assert.equal(t.weights.subarray(12).reduce((a, b) => a + b, 0), 0);
  head.dispose();
});

test('toRois packs per-image groups with their image index', () => {
  const r = toRois([[Float32Array.from([1, 2, 3, 4])], [Float32Array.from([5, 6, 7, 8]), Float32Array.from([9, 10, 11, 12])]]);
  assert.deepEqual([...r], [0, 1, 2, 3, 4, 1, 5, 6, 7, 8, 1, 9, 10, 11, 12]);
});

test('detections → COCO results (RLE, category ids mapped back) → src/coco reads them back', () => {
  const h = 6, w = 5;
  const m = new Uint8Array(h * w);
  for (let y = 1; y < 4; y++) for (let x = 2; x < 5; x++) m[y * w + x] = 1;
  const inst = makeInstances({ boxes: Float32Array.from([2, 1, 5, 4]), labels: Int32Array.from([1]), scores: Float32Array.from([0.9]),
    masks: { kind: 'bitmaps', height: h, width: w, masks: [m] } });
  const gt = new COCO({ images: [{ id: 7, width: w, height: h, file_name: 'a.png' }], categories: [{ id: 3, name: 'a' }, { id: 9, name: 'b' }], annotations: [] });
  const segm = instancesToCocoResults(7, inst, [3, 9], 'segm');
  const bbox = instancesToCocoResults(7, inst, [3, 9], 'bbox');
  assert.equal(segm[0].category_id, 9);
  assert.deepEqual(bbox[0].bbox, [2, 1, 3, 3]);
  const dt = gt.loadRes(JSON.parse(JSON.stringify(segm)));
  const ann = dt.loadAnns(dt.getAnnIds())[0];
  assert.equal(typeof (ann.segmentation as { counts: unknown }).counts, 'string', 'compressed RLE');
  assert.deepEqual([...dt.annToMask(ann)], [...m]);
  assert.deepEqual(ann.bbox, [2, 1, 3, 3]);
});
