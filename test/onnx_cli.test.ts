/**
 * tools/export.ts --format onnx → tools/test.ts --engine onnxruntime gives the tfjs engine's metrics
 * (same checkpoint): the shapes UperNet's mIoU and the shapes Mask R-CNN's box/mask AP, on tiny
 * data after a few training iterations; and a clear error for a CHECKPOINT that is no .onnx file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateShapes } from '../src/datasets/shapes.ts';
import { loadOnnxRuntime } from '../src/onnx/runtime.ts';
import { ROOT, runTool } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-onnx-cli-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const ENV = { C2F_BACKEND: 'wasm' };
const noOrt = await loadOnnxRuntime().then(() => false, (e: Error) => e.message);
const opts = { skip: noOrt || undefined };
const data = generateShapes({ out: path.join(tmp, 'data'), train: 4, val: 4, minSize: 80, maxSize: 112, what: ['semantic', 'instances'], log: () => {} });
const norm = { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };

function config(name: string, cfg: Record<string, unknown>): string {
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

/** Trains `iters` iterations, exports, tests on both engines; returns both metrics files' contents. */
function bothEngines(cfg: string, name: string, iters: number): [Record<string, number>, Record<string, number>] {
  const work = path.join(tmp, name);
  const tr = runTool('train.ts', [cfg, '--work-dir', work, '--cfg-options', `schedule.max_iters=${iters}`], ENV);
  assert.equal(tr.code, 0, tr.stderr);
  const onnx = path.join(tmp, `${name}.onnx`);
  const ex = runTool('export.ts', ['--format', 'onnx', '--config', cfg, '--checkpoint', path.join(work, 'latest'), '--out', onnx], ENV);
  assert.equal(ex.code, 0, ex.stderr);
  const metrics = (engine: string, ckpt: string): Record<string, number> => {
    const file = path.join(tmp, `${name}_${engine}.json`);
    const r = runTool('test.ts', [cfg, ckpt, '--engine', engine, '--metrics-out', file], ENV);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`evaluated 4 of 4 images .*${engine === 'onnxruntime' ? 'onnxruntime' : ''}`));
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
  };
  return [metrics('tfjs', path.join(work, 'latest')), metrics('onnxruntime', onnx)];
}

test('shapes UperNet: mIoU of --engine onnxruntime within 0.001 of tfjs', opts, async () => {
  await data;
  const d = path.join(tmp, 'data', 'ade');
  const pipe = [{ type: 'LoadImageFromFile' }, { type: 'LoadAnnotations' }, { type: 'Resize', scale: [128, 96], keep_ratio: true }, norm];
  const cfg = config('seg', {
    _base_: path.join(ROOT, 'configs/upernet_c2f_shapes.yaml'),
    data: {
      batch_size: 2, num_workers: 0,
      train: { img_dir: path.join(d, 'images/training'), ann_dir: path.join(d, 'annotations/training'), pipeline: [...pipe, { type: 'Pad', size_divisor: 32 }] },
      val: { img_dir: path.join(d, 'images/validation'), ann_dir: path.join(d, 'annotations/validation'), pipeline: pipe },
    },
    schedule: { warmup_iters: 1 },
    train: { eval_interval: 1000, checkpoint_interval: 1000, log_interval: 10 },
  });
  const [tfjs, ort] = bothEngines(cfg, 'seg', 20);
  assert.ok(Math.abs(tfjs.mIoU - ort.mIoU) <= 0.001, `mIoU tfjs ${tfjs.mIoU}, onnxruntime ${ort.mIoU}`);
  assert.ok(Math.abs(tfjs.aAcc - ort.aAcc) <= 0.001, `aAcc tfjs ${tfjs.aAcc}, onnxruntime ${ort.aAcc}`);
});

test('shapes Mask R-CNN: dense part in onnxruntime, RoI heads in TS: the same box and mask AP', opts, async () => {
  await data;
  const coco = path.join(tmp, 'data', 'coco');
  const pipe = [{ type: 'LoadImageFromFile' }, { type: 'LoadAnnotations', with_bbox: true, with_mask: true }, { type: 'Resize', scale: [160, 128], keep_ratio: true },
    norm, { type: 'Pad', size_divisor: 32 }];
  const cfg = config('det', {
    _base_: path.join(ROOT, 'configs/maskrcnn_c2f_shapes.yaml'),
    data: {
      num_workers: 0,
      train: { ann_file: path.join(coco, 'annotations/instances_train.json'), img_dir: path.join(coco, 'images/train'), pipeline: pipe },
      val: { ann_file: path.join(coco, 'annotations/instances_val.json'), img_dir: path.join(coco, 'images/val'), pipeline: pipe },
    },
    model: { test_cfg: { rcnn: { score_thr: 0.0 } } },
    train: { eval_interval: 1000, checkpoint_interval: 1000, log_interval: 10 },
  });
  const [tfjs, ort] = bothEngines(cfg, 'det', 4);
  for (const k of ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP']) {
    assert.ok(Math.abs(tfjs[k] - ort[k]) <= 0.001, `${k}: tfjs ${tfjs[k]}, onnxruntime ${ort[k]}`);
  }
});

test('--engine onnxruntime refuses a CHECKPOINT that is not an .onnx file', opts, () => {
  const r = runTool('test.ts', [path.join(ROOT, 'configs/upernet_c2f_shapes.yaml'), 'work_dirs/x/latest', '--engine', 'onnxruntime'], ENV);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--engine onnxruntime: CHECKPOINT must be an exported \.onnx model/);
});
