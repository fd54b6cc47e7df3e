/** tools/coco_eval.ts as a user runs it: the pycocotools block, the JSON file, and clear errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COCO_PARITY_DIR } from './helpers/fixtures.ts';
import { runTool } from './helpers/run_tool.ts';

const PARITY = COCO_PARITY_DIR;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-cocoeval-'));

const run = (args: string[]) => runTool('coco_eval.ts', args);

test('coco_eval prints the summary and writes stats + per-category AP equal to pycocotools', () => {
  const expected = JSON.parse(readFileSync(path.join(PARITY, 'expected.json'), 'utf8'));
  for (const iouType of ['bbox', 'segm']) {
    const out = path.join(tmp, `${iouType}.json`);
    const r = run(['--gt', path.join(PARITY, 'gt.json'), '--dt', path.join(PARITY, `dt_${iouType}.json`), '--iou-type', iouType, '--json', out, '--per-class']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all \| maxDets=100 \] = \d\.\d{3}$/m);
    assert.equal(r.stdout.split('\n').filter((l) => l.startsWith(' Average')).length, 12);
    const got = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(got.iouType, iouType);
    got.stats.forEach((v: number, i: number) => assert.ok(Math.abs(v - expected[iouType].stats[i]) <= 1e-9, `${iouType} stat ${i}`));
    for (const [cat, ap] of Object.entries(expected[iouType].per_category_ap)) {
      assert.ok(Math.abs(got.per_category[cat] - (ap as number)) <= 1e-9, `${iouType} category ${cat}`);
    }
  }
});

test('coco_eval: unknown image ids and malformed files exit 1 with a one-line cause', () => {
  const bad = path.join(tmp, 'bad.json');
  writeFileSync(bad, JSON.stringify([{ image_id: 424242, category_id: 3, bbox: [1, 2, 3, 4], score: 0.5 }]));
  let r = run(['--gt', path.join(PARITY, 'gt.json'), '--dt', bad, '--iou-type', 'bbox']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*bad\.json.*424242/m);
  const truncated = path.join(tmp, 'truncated.json');
  writeFileSync(truncated, readFileSync(path.join(PARITY, 'gt.json'), 'utf8').slice(0, 1000));
  r = run(['--gt', truncated, '--dt', bad, '--iou-type', 'bbox']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*truncated\.json/m);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
});

test('coco_eval: results of unknown categories are warned about (exit 0); a GT without categories and a 5M-deep file are errors naming the file', () => {
  const gtFile = path.join(PARITY, 'gt.json');
  const dt = JSON.parse(readFileSync(path.join(PARITY, 'dt_bbox.json'), 'utf8')) as { category_id: number }[];
  const withUnknown = path.join(tmp, 'unknown_cats.json');
  writeFileSync(withUnknown, JSON.stringify([...dt, { ...dt[0], category_id: 9999 }, { ...dt[1], category_id: 9998 }]));
  let r = run(['--gt', gtFile, '--dt', withUnknown, '--iou-type', 'bbox']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^warning: .*unknown_cats\\.json: 2 of ${dt.length + 2} results have category ids not in the ground truth \\(first: 9999\\); they are not scored$`, 'm'));
  assert.equal(r.stdout.split('\n').filter((l) => l.startsWith(' Average')).length, 12);

  const noCats = path.join(tmp, 'no_categories.json');
  const gt = JSON.parse(readFileSync(gtFile, 'utf8')) as Record<string, unknown>;
  delete gt.categories;
  writeFileSync(noCats, JSON.stringify(gt));
  r = run(['--gt', noCats, '--dt', path.join(PARITY, 'dt_bbox.json'), '--iou-type', 'bbox']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*no_categories\.json: COCO dataset has no 'categories' list/m);

  const deep = path.join(tmp, 'deep.json');
  writeFileSync(deep, '['.repeat(5e6) + ']'.repeat(5e6));
  r = run(['--gt', gtFile, '--dt', deep, '--iou-type', 'bbox']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*deep\.json: JSON nested too deep/m);
  assert.doesNotMatch(r.stderr, /^\s+at |Maximum call stack/m);
});
