/** tools/train.ts end to end on a tiny shapes set: train, checkpoints, eval line, resume, config errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateShapes } from '../src/datasets/shapes.ts';
import { ROOT, runTool } from './helpers/run_tool.ts';

const ENV = { C2F_BACKEND: 'wasm' };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-train-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const dataReady = generateShapes({ out: path.join(tmp, 'data'), train: 4, val: 2, minSize: 64, maxSize: 80, what: ['semantic'], log: () => {} });

const PIPE_TRAIN = [
  { type: 'LoadImageFromFile' },
  { type: 'LoadAnnotations' },
  { type: 'Resize', scale: [96, 64], ratio_range: [0.75, 1.25], keep_ratio: true },
  { type: 'RandomCrop', crop_size: [64, 64], cat_max_ratio: 0.75 },
  { type: 'RandomFlip', prob: 0.5 },
  { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
  { type: 'Pad', size: [64, 64] },
];
const PIPE_VAL = [
  { type: 'LoadImageFromFile' },
  { type: 'LoadAnnotations' },
  { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] },
];

/** Writes a JSON (= YAML) config on top of configs/upernet_c2f_shapes.yaml; returns its path. */
function writeConfig(name: string, extra: Record<string, unknown> = {}): string {
  const d = path.join(tmp, 'data', 'ade');
  const cfg = {
    _base_: path.join(ROOT, 'configs', 'upernet_c2f_shapes.yaml'),
    data: {
      batch_size: 2,
      train: { img_dir: path.join(d, 'images/training'), ann_dir: path.join(d, 'annotations/training'), pipeline: PIPE_TRAIN },
      val: { img_dir: path.join(d, 'images/validation'), ann_dir: path.join(d, 'annotations/validation'), pipeline: PIPE_VAL },
    },
    schedule: { max_iters: 4, warmup_iters: 1 },
    train: { eval_interval: 4, checkpoint_interval: 2, log_interval: 1 },
    ...extra,
  };
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

function jsonl(file: string): Record<string, number | string>[] {
  return readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
}

test('train.ts trains, dumps the config, checkpoints, evaluates and resumes', async () => {
  await dataReady;
  const cfg = writeConfig('tiny');
  const work = path.join(tmp, 'work');
  const r = runTool('train.ts', [cfg, '--work-dir', work], ENV);
  assert.equal(r.code, 0, `stderr: ${r.stderr}\nstdout: ${r.stdout}`);
  assert.ok(existsSync(path.join(work, 'config.yaml')));
  const dumped = readFileSync(path.join(work, 'config.yaml'), 'utf8');
  assert.match(dumped, /max_iters: 4/);
  assert.match(dumped, /UPerHead/);
  for (const f of ['iter_2.safetensors', 'iter_4.safetensors', 'iter_4_state.safetensors', 'latest.json', 'best.json']) {
    assert.ok(existsSync(path.join(work, f)), `${f} missing`);
  }
  assert.equal(JSON.parse(readFileSync(path.join(work, 'latest.json'), 'utf8')).iter, 4);
  const lines = jsonl(path.join(work, 'log.jsonl'));
  const trainLines = lines.filter((l) => l.mode === undefined);
  assert.deepEqual(trainLines.map((l) => l.iter), [1, 2, 3, 4]);
  for (const l of trainLines) assert.ok(Number.isFinite(l.loss as number));
  const val = lines.filter((l) => l.mode === 'val');
  assert.equal(val.length, 1);
  assert.equal(val[0].iter, 4);
  assert.ok(typeof val[0].mIoU === 'number' && val[0].mIoU >= 0 && val[0].mIoU <= 1);
  assert.match(r.stdout, /final \(iter 4\): aAcc [\d.]+ {2}mIoU [\d.]+/);

  const r2 = runTool('train.ts', [cfg, '--work-dir', work, '--resume', '--cfg-options', 'schedule.max_iters=6'], ENV);
  assert.equal(r2.code, 0, `stderr: ${r2.stderr}\nstdout: ${r2.stdout}`);
  assert.match(r2.stdout, /resumed from .*latest\.json at iter 4/);
  assert.equal(JSON.parse(readFileSync(path.join(work, 'latest.json'), 'utf8')).iter, 6);
  const after = jsonl(path.join(work, 'log.jsonl')).filter((l) => l.mode === undefined).map((l) => l.iter);
  assert.deepEqual(after, [1, 2, 3, 4, 5, 6]);
  assert.match(r2.stdout, /final \(iter 6\)/);
});

test('train.ts: an epoch recipe (max_epochs, steps in epochs) stops at --cfg-options schedule.max_iters', async () => {
  await dataReady;
  // 4 images, batch 2: 2 iterations per epoch; 3 epochs = 6 iterations, lr x0.5 from epoch 1 (iteration 2).
  const cfg = writeConfig('epochs', {
    schedule: { _delete_: true, max_epochs: 3, by_epoch: true, policy: 'step', steps: [1], gamma: 0.5, warmup_iters: 0 },
    train: { eval_interval: 100, checkpoint_interval: 100, log_interval: 1 },
  });
  const work = path.join(tmp, 'work_epochs');
  const r = runTool('train.ts', [cfg, '--work-dir', work, '--cfg-options', 'schedule.max_iters=3'], ENV);
  assert.equal(r.code, 0, `stderr: ${r.stderr}\nstdout: ${r.stdout}`);
  assert.match(r.stdout, /iters 0 -> 3 \(3 epochs of 2 iters, capped by max_iters\)/);
  const lrs = jsonl(path.join(work, 'log.jsonl')).filter((l) => l.mode === undefined).map((l) => l.lr as number);
  assert.equal(lrs.length, 3);
  assert.equal(lrs[1], lrs[0]);
  assert.ok(Math.abs(lrs[2] / lrs[0] - 0.5) < 1e-9, `lr halves when epoch 1 starts: ${lrs.join(', ')}`);
  assert.equal(JSON.parse(readFileSync(path.join(work, 'latest.json'), 'utf8')).iter, 3);
});

function assertOneLineError(r: { code: number | null; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.trim() && !l.startsWith('[c2f]'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], re);
}

test('train.ts config errors exit 1 with a one-line cause', async () => {
  await dataReady;
  const work = path.join(tmp, 'bad');
  // Unknown key in the model block (the builder names its key path).
  assertOneLineError(runTool('train.ts', [writeConfig('unknown_key', { model: { decode_head: { chanels: 8 } } }), '--work-dir', work], ENV),
    /model\.decode_head\.chanels: unknown key/);
  // Unknown top-level key (the schema).
  assertOneLineError(runTool('train.ts', [writeConfig('unknown_top', { optimiser: {} }), '--work-dir', work], ENV), /optimiser/);
  // Bad and not-yet-built model types list what exists.
  assertOneLineError(runTool('train.ts', [writeConfig('bad_type', { model: { type: 'EncoderDecodr' } }), '--work-dir', work], ENV),
    /model\.type: unknown model type 'EncoderDecodr'; known: EncoderDecoder/);
  assertOneLineError(runTool('train.ts', [writeConfig('planned', { model: { type: 'HybridTaskCascade' } }), '--work-dir', work], ENV),
    /model\.type: unknown model type 'HybridTaskCascade'; known: EncoderDecoder, MaskRCNN, CascadeMaskRCNN/);
  // A segmentor's block under a detector's type: the detector's schema names the stray key.
  assertOneLineError(runTool('train.ts', [writeConfig('det_type', { model: { type: 'MaskRCNN' } }), '--work-dir', work], ENV),
    /model\.decode_head: unknown key 'decode_head'; allowed: type, backbone, neck, rpn_head, roi_head, train_cfg, test_cfg, pretrained/);
  assertOneLineError(runTool('train.ts', [writeConfig('bad_head', { model: { decode_head: { type: 'PSPHead' } } }), '--work-dir', work], ENV),
    /model\.decode_head\.type: unknown decode head type 'PSPHead'; known: UPerHead, FCNHead/);
  // Missing base.
  const missing = path.join(tmp, 'missing_base.yaml');
  writeFileSync(missing, '_base_: ./nope/base.yaml\n');
  assertOneLineError(runTool('train.ts', [missing, '--work-dir', work], ENV), /_base_ '\.\/nope\/base\.yaml' not found/);
  // A bad checkpoint path names the file.
  assertOneLineError(runTool('train.ts', [writeConfig('bad_ckpt', { model: { backbone: { checkpoint: path.join(tmp, 'none.pth') } } }), '--work-dir', work], ENV),
    /checkpoint not found/);
  assert.ok(!existsSync(path.join(work, 'config.yaml')), 'a failed config must not leave a work dir behind');
});

test('buildModel: in_channels from featureInfo, checkpoint kernel size wins, non-strict load is logged', async () => {
  const { buildModel } = await import('../src/models/build.ts');
  const { EncoderDecoder } = await import('../src/models/encoder_decoder.ts');
  const { createConv2Former, Conv2Former } = await import('../src/backbone/conv2former.ts');
  const { saveSafetensors } = await import('../src/nn/checkpoint.ts');
  const variant = { dims: [8, 16, 24, 32], depths: [1, 1, 1, 1], kernel_size: 7 };
  const src = createConv2Former({ dims: [8, 16, 24, 32], depths: [1, 1, 1, 1], kernelSize: 5 });
  const ckpt = path.join(tmp, 'bb.safetensors');
  await saveSafetensors(src, ckpt);
  const lines: string[] = [];
  const model = await buildModel({
    type: 'EncoderDecoder',
    backbone: { type: 'Conv2Former', variant, checkpoint: ckpt },
    decode_head: { type: 'UPerHead', channels: 8, num_classes: 3, norm_cfg: { type: 'BN' } },
    auxiliary_head: { type: 'FCNHead', in_index: 2, channels: 4, num_classes: 3, loss_weight: 0.4 },
  }, { file: 'cfg', log: (l) => lines.push(l) });
  assert.ok(model instanceof EncoderDecoder);
  assert.ok(model.backbone instanceof Conv2Former);
  assert.equal(model.backbone.config.kernelSize, 5);
  assert.match(lines.join('\n'), /kernel size 5, the config says 7; using 5/);
  // The checkpoint has no out norms norm0..norm3 (weight + bias each): 8 missing, 0 unexpected.
  assert.match(lines.join('\n'), /\(8 missing keys, 0 unexpected keys\)/);
  assert.deepEqual((model.decodeHead as unknown as { inChannels: number[] }).inChannels, [8, 16, 24, 32]);
  assert.equal(model.auxiliaryHead?.inChannels, 24);
  assert.equal(model.auxiliaryHead?.lossWeight, 0.4);
  const sd = src.stateDict();
  const got = model.backbone.stateDict();
  const key = 'stages.0.0.attn.att.2.weight';
  assert.deepEqual(Array.from(got.get(key)!.data as Float32Array), Array.from(sd.get(key)!.data as Float32Array));
  await assert.rejects(buildModel({ type: 'EncoderDecoder', backbone: { type: 'Conv2Former', variant: 'x' }, decode_head: { type: 'UPerHead', num_classes: 2 } }, { path: 'm' }),
    /m\.backbone\.variant: expected one of 'n', 't', 's', 'b', 'l' or a dict, got "x"/);
  await assert.rejects(buildModel({ type: 'EncoderDecoder', backbone: { type: 'Conv2Former', variant: 't', dpr: 1 }, decode_head: { type: 'UPerHead', num_classes: 2 } }, { path: 'm' }),
    /m\.backbone\.dpr: unknown key 'dpr'; allowed: type, variant, drop_path_rate/);
});
