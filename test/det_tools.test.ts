/**
 * Detection CLIs end to end on a tiny generated COCO set: tools/train.ts trains a tiny Mask R-CNN
 * config for a few iterations, tools/test.ts writes COCO results, the metrics JSON (MMDetection's
 * `coco/*` keys), the pycocotools summary and overlays, and tools/coco_eval.ts scores the written
 * results file unchanged to the same numbers.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { generateShapes } from '../src/datasets/shapes.ts';
import { ROOT, runTool } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-det-tools-'));
let config = '';

before(async () => {
  await generateShapes({ out: tmp, seed: 2, train: 4, val: 3, minSize: 96, maxSize: 128, what: ['instances'], log: () => {} });
  const pipeline = (scale: [number, number]) => [
    { type: 'LoadImageFromFile' },
    { type: 'LoadAnnotations', with_bbox: true, with_mask: true },
    { type: 'Resize', scale, keep_ratio: true },
    { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
    { type: 'Pad', size_divisor: 32 },
  ];
  const coco = path.join(tmp, 'coco');
  config = path.join(tmp, 'det_tiny.yaml');
  writeFileSync(config, stringify({
    _base_: path.join(ROOT, 'configs/maskrcnn_c2f_shapes.yaml'),
    data: {
      train: { ann_file: path.join(coco, 'annotations/instances_train.json'), img_dir: path.join(coco, 'images/train'), pipeline: pipeline([160, 128]) },
      val: { ann_file: path.join(coco, 'annotations/instances_val.json'), img_dir: path.join(coco, 'images/val'), pipeline: pipeline([160, 128]) },
    },
    train: { eval_interval: 100, checkpoint_interval: 100, log_interval: 1 },
  }));
});

test('train.ts → test.ts (--out, --metrics-out, --show-dir) → coco_eval.ts on the results file', () => {
  const work = path.join(tmp, 'work');
  const tr = runTool('train.ts', [config, '--work-dir', work, '--cfg-options', 'schedule.max_iters=2', '--backend', 'wasm']);
  assert.equal(tr.code, 0, tr.stderr);
  assert.match(tr.stdout, /training MaskRCNN \(1\.60M parameters\)/);
  assert.match(tr.stdout, /loss_rpn_cls .* loss_rpn_bbox .* loss_cls .* loss_bbox .* acc .* loss_mask/);

  const out = path.join(tmp, 'results.json');
  const metricsFile = path.join(tmp, 'metrics.json');
  const shows = path.join(tmp, 'shows');
  const te = runTool('test.ts', [config, path.join(work, 'latest'), '--out', out, '--metrics-out', metricsFile, '--show-dir', shows,
    '--show-score-thr', '0', '--cfg-options', 'model.test_cfg.rcnn.score_thr=0.0', '--backend', 'wasm']);
  assert.equal(te.code, 0, te.stderr);
  assert.match(te.stdout, /evaluated 3 of 3 images/);
  assert.match(te.stdout, /Average Precision {2}\(AP\) @\[ IoU=0\.50:0\.95 \| area= {3}all \| maxDets=100 \] = /);
  assert.match(te.stdout, /\| category +\| bbox AP \| segm AP \|/);
  const metrics = JSON.parse(readFileSync(metricsFile, 'utf8')) as Record<string, number>;
  for (const t of ['bbox', 'segm']) for (const s of ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l']) assert.equal(typeof metrics[`coco/${t}_${s}`], 'number', `coco/${t}_${s}`);
  assert.equal(readdirSync(shows).filter((f) => f.endsWith('.png')).length, 3);

  for (const t of ['bbox', 'segm']) {
    const file = path.join(tmp, `results.${t}.json`);
    assert.ok(existsSync(file), file);
    const results = JSON.parse(readFileSync(file, 'utf8')) as { category_id: number; segmentation?: { counts: unknown } }[];
    assert.ok(results.length > 0 && results.length <= 300, `${results.length} ${t} results`);
    assert.ok(results.every((r) => r.category_id >= 1 && r.category_id <= 5), 'COCO category ids');
    if (t === 'segm') assert.equal(typeof results[0].segmentation!.counts, 'string', 'compressed RLE');
    const jsonOut = path.join(tmp, `coco_eval_${t}.json`);
    const ev = runTool('coco_eval.ts', ['--gt', path.join(tmp, 'coco/annotations/instances_val.json'), '--dt', file, '--iou-type', t, '--json', jsonOut]);
    assert.equal(ev.code, 0, ev.stderr);
    const stats = (JSON.parse(readFileSync(jsonOut, 'utf8')) as { stats: number[] }).stats;
    assert.ok(Math.abs(stats[0] - metrics[`coco/${t}_mAP`]) < 1e-12, `${t}: coco_eval ${stats[0]} vs test.ts ${metrics[`coco/${t}_mAP`]}`);
  }
});
