/**
 * The Evaluator contract (reset / process / evaluate), run over both implementations on fixed
 * inputs: IoUMetric against SegMetricAccumulator on hand-made label maps, CocoMetric on the
 * pycocotools parity fixture (detections turned into Instances, back into COCO results, scored)
 * against pycocotools' expected.json. Streaming in two batches equals one; reset forgets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { COCO } from '../src/coco/coco.ts';
import { decode } from '../src/coco/mask.ts';
import type { CocoResult, CompressedRLE } from '../src/coco/types.ts';
import type { ImgMeta } from '../src/datasets/collate.ts';
import { makeSample } from '../src/datasets/transforms/types.ts';
import { CocoMetric } from '../src/evaluation/coco_evaluator.ts';
import type { EvalItem, Evaluator } from '../src/evaluation/evaluator.ts';
import { IoUMetric } from '../src/evaluation/seg_evaluator.ts';
import { SegMetricAccumulator } from '../src/evaluation/seg_metrics.ts';
import { makeInstances } from '../src/structures/instances.ts';
import type { Prediction } from '../src/structures/prediction.ts';
import { FIXTURES } from './helpers/fixtures.ts';

const PARITY = path.join(FIXTURES, 'coco-parity');
const TOL = 1e-9; // the tolerance of the pycocotools parity tests (summation order)

function meta(imageId: number, h: number, w: number): ImgMeta {
  return { imageId, oriShape: [h, w], imgShape: [h, w], padShape: [h, w], batchInputShape: [h, w], scaleFactor: [1, 1], flip: false };
}

/** Runs `ev` over `items`/`preds` in batches of `batch`, after a reset. */
async function runContract(ev: Evaluator, items: EvalItem[], preds: Prediction[], batch: number) {
  ev.reset();
  for (let i = 0; i < items.length; i += batch) await ev.process(items.slice(i, i + batch), preds.slice(i, i + batch));
  return ev.evaluate();
}

/** Both evaluators: one batch = several batches; reset forgets what came before. */
async function checkStreaming(ev: Evaluator, items: EvalItem[], preds: Prediction[]) {
  const all = await runContract(ev, items, preds, items.length);
  const split = await runContract(ev, items, preds, Math.ceil(items.length / 3));
  assert.deepEqual(split.metrics, all.metrics);
  // Without reset the second pass would count every image twice; with it, the same numbers.
  await ev.process(items, preds);
  const again = await runContract(ev, items, preds, items.length);
  assert.deepEqual(again.metrics, all.metrics);
  return all;
}

test('IoUMetric: the Evaluator contract on fixed label maps equals SegMetricAccumulator', async () => {
  const K = 3;
  const maps = [
    { h: 2, w: 3, gt: [0, 1, 2, 255, 1, 1], pred: [0, 1, 1, 0, 1, 2] },
    { h: 1, w: 4, gt: [2, 2, 0, 1], pred: [2, 0, 0, 1] },
    { h: 2, w: 2, gt: [1, 1, 1, 0], pred: [1, 1, 0, 0] },
  ];
  const items: EvalItem[] = maps.map((m, i) => {
    const sample = makeSample({ data: new Uint8Array(m.h * m.w * 3), height: m.h, width: m.w, channels: 3 }, { gtSegMap: Uint8Array.from(m.gt) });
    return { index: i, meta: meta(i, m.h, m.w), sample };
  });
  const preds: Prediction[] = maps.map((m) => ({ semSeg: { data: Int32Array.from(m.pred), height: m.h, width: m.w } }));
  const ev = new IoUMetric({ numClasses: K, classes: ['a', 'b', 'c'] });
  assert.equal(ev.defaultBestMetric, 'mIoU');
  const r = await checkStreaming(ev, items, preds);
  const acc = new SegMetricAccumulator(K, { ignoreIndex: 255 });
  maps.forEach((m) => acc.add(m.pred, m.gt));
  const ref = acc.compute();
  assert.deepEqual(r.metrics, { aAcc: ref.aAcc, mIoU: ref.mIoU, mAcc: ref.mAcc });
  assert.match(r.report, /\| a +\|/);
  // By hand: 13 valid pixels (one 255), 9 right.
  assert.equal(r.metrics.aAcc, 9 / 13);
  // A prediction of the wrong size is an error naming the sample.
  await assert.rejects(ev.process([items[0]], [{ semSeg: { data: new Int32Array(4), height: 2, width: 2 } }]), /sample 0: label is 2x3 but the prediction is 2x2/);
});

interface Expected { stats: number[]; per_category_ap: Record<string, number> }

test("CocoMetric: the Evaluator contract on the parity fixture equals pycocotools' expected.json", async () => {
  const gt = await COCO.fromFile(path.join(PARITY, 'gt.json'));
  const expected = JSON.parse(readFileSync(path.join(PARITY, 'expected.json'), 'utf8')) as Record<'bbox' | 'segm', Expected>;
  const label2cat = gt.getCatIds().sort((a, b) => a - b);
  const labelOf = new Map(label2cat.map((c, i) => [c, i]));
  const imgIds = gt.getImgIds().sort((a, b) => a - b);
  for (const iouType of ['bbox', 'segm'] as const) {
    const dts = JSON.parse(readFileSync(path.join(PARITY, `dt_${iouType}.json`), 'utf8')) as CocoResult[];
    // Detections as a model would return them: per image, boxes x1y1x2y2, labels 0..K-1, bitmaps.
    const items: EvalItem[] = [];
    const preds: Prediction[] = [];
    imgIds.forEach((id, index) => {
      const img = gt.imgs.get(id)!;
      const mine = dts.filter((d) => d.image_id === id);
      const boxes = new Float32Array(mine.length * 4);
      mine.forEach((d, i) => {
        const [x, y, w, h] = d.bbox ?? [0, 0, 0, 0];
        boxes.set([x, y, x + w, y + h], i * 4);
      });
      const masks = iouType === 'segm'
        ? { kind: 'bitmaps' as const, height: img.height, width: img.width, masks: mine.map((d) => decode(d.segmentation as CompressedRLE)) }
        : undefined;
      items.push({ index, meta: meta(id, img.height, img.width) });
      preds.push({
        instances: makeInstances({
          boxes,
          labels: Int32Array.from(mine, (d) => labelOf.get(d.category_id)!),
          scores: Float32Array.from(mine, (d) => d.score),
          ...(masks ? { masks } : {}),
        }),
      });
    });
    const ev = new CocoMetric({ coco: gt, label2cat, metrics: [iouType] });
    assert.equal(ev.defaultBestMetric, `${iouType}_mAP`);
    const r = await checkStreaming(ev, items, preds);
    const got = r.json as Record<string, Expected>;
    const exp = expected[iouType];
    const dStats = Math.max(...got[iouType].stats.map((v, i) => Math.abs(v - exp.stats[i])));
    assert.ok(dStats <= TOL, `${iouType} stats differ by ${dStats}: ${got[iouType].stats} vs ${exp.stats}`);
    assert.deepEqual(Object.keys(got[iouType].per_category_ap).sort(), Object.keys(exp.per_category_ap).sort());
    for (const [cat, ap] of Object.entries(exp.per_category_ap)) assert.ok(Math.abs(got[iouType].per_category_ap[cat] - ap) <= TOL, `category ${cat}`);
    assert.equal(r.metrics[`${iouType}_mAP`], got[iouType].stats[0]);
    assert.equal(r.metrics[`${iouType}_mAP_75`], got[iouType].stats[2]);
    assert.match(r.report, /Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all \| maxDets=100 \]/);
    // The per-category table: one row per label, the AP of expected.json to 3 decimals.
    assert.match(r.report, new RegExp(`\\| +category +\\| ${iouType} AP \\|`));
    const [cat0, ap0] = [label2cat[0], exp.per_category_ap[String(label2cat[0])]];
    assert.match(r.report, new RegExp(`\\| ${gt.cats.get(cat0)!.name} +\\| +${ap0 < 0 ? 'nan' : ap0.toFixed(3)} \\|`));
    // The results it scored are COCO JSON: x,y,w,h boxes or compressed RLE with string counts.
    const first = ev.cocoResults(iouType)[0];
    if (iouType === 'bbox') assert.equal(first.bbox!.length, 4);
    else assert.equal(typeof (first.segmentation as CompressedRLE).counts, 'string');
  }
});

test('CocoMetric: no detections gives zeros, not a crash; a label without category is an error', async () => {
  const gt = await COCO.fromFile(path.join(PARITY, 'gt.json'));
  const label2cat = gt.getCatIds().sort((a, b) => a - b);
  const ev = new CocoMetric({ coco: gt, label2cat, metrics: ['bbox'] });
  const empty = makeInstances({ boxes: new Float32Array(0), labels: new Int32Array(0), scores: new Float32Array(0) });
  await ev.process([{ index: 0, meta: meta(gt.getImgIds()[0], 10, 10) }], [{ instances: empty }]);
  assert.equal(ev.evaluate().metrics.bbox_mAP, 0);
  const bad = makeInstances({ boxes: new Float32Array(4), labels: Int32Array.from([label2cat.length]), scores: Float32Array.from([1]) });
  await assert.rejects(ev.process([{ index: 0, meta: meta(1, 10, 10) }], [{ instances: bad }]), /label \d+ has no category/);
  assert.throws(() => makeInstances({ boxes: new Float32Array(8), labels: Int32Array.from([0]) }), /1 labels but 8 box values/);
});
