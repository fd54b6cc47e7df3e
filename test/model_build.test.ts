/**
 * The one model builder (src/models/build.ts): every error class a user can make in a `model:`
 * block is a ConfigError naming the file, the full key path, the bad value and what is allowed.
 * And the entry points name no task: they see `Model` and `Evaluator` only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../src/config/errors.ts';
import { buildModel, MODELS, validateModelConfig } from '../src/models/build.ts';
import { EncoderDecoder } from '../src/models/encoder_decoder.ts';

const FILE = 'configs/my.yaml';
const tiny = () => ({
  type: 'EncoderDecoder',
  backbone: { type: 'Conv2Former', variant: { dims: [8, 8, 8, 8], depths: [1, 1, 1, 1], kernel_size: 3 } },
  decode_head: { type: 'UPerHead', channels: 8, num_classes: 3, norm_cfg: { type: 'BN' }, pool_scales: [1, 2] },
  test_cfg: { mode: 'whole' },
});

/** The ConfigError `fn` throws; its message must contain each of `parts`. */
function configError(fn: () => unknown, ...parts: string[]): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${(e as Error).name}: ${(e as Error).message}`);
    for (const p of parts) assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(p)}`);
    return e;
  }
  assert.fail('no error thrown');
}

test('unknown model type: lists the known ones, with a suggestion', () => {
  const e = configError(() => validateModelConfig({ ...tiny(), type: 'EncoderDecodr' }, FILE),
    "configs/my.yaml: model.type: unknown model type 'EncoderDecodr'; known: EncoderDecoder", "(did you mean 'EncoderDecoder'?)");
  assert.deepEqual(e.details, { file: FILE, path: 'model.type', value: 'EncoderDecodr', allowed: Object.keys(MODELS) });
  configError(() => validateModelConfig({ ...tiny(), type: undefined }, FILE), 'model.type: expected a model type (one of EncoderDecoder, MaskRCNN, CascadeMaskRCNN), got nothing');
});

test('unknown key deep in model.decode_head: the full key path and the file', () => {
  const cfg = tiny();
  const deep = { ...cfg, decode_head: { ...cfg.decode_head, norm_cfg: { type: 'GN', num_group: 4 } } };
  const e = configError(() => validateModelConfig(deep, FILE),
    "configs/my.yaml: model.decode_head.norm_cfg.num_group: unknown key 'num_group'; allowed: type, requires_grad, num_groups (did you mean 'num_groups'?)");
  assert.equal(e.details.path, 'model.decode_head.norm_cfg.num_group');
  assert.deepEqual(e.details.allowed, ['type', 'requires_grad', 'num_groups']);
  configError(() => validateModelConfig({ ...cfg, decode_head: { ...cfg.decode_head, type: 'UPerNet' } }, FILE),
    "model.decode_head.type: unknown decode head type 'UPerNet'; known: UPerHead, FCNHead");
});

test('wrong value type: names the key, the value and the expected type', () => {
  const cfg = tiny();
  const e = configError(() => validateModelConfig({ ...cfg, decode_head: { ...cfg.decode_head, num_classes: 'three' } }, FILE),
    'configs/my.yaml: model.decode_head.num_classes: expected an integer >= 1, got "three"');
  assert.deepEqual([e.details.value, e.details.allowed], ['three', 'an integer >= 1']);
  configError(() => validateModelConfig({ ...cfg, backbone: { ...cfg.backbone, drop_path_rate: [0.1] } }, FILE),
    'model.backbone.drop_path_rate: expected a number in [0, 1], got [0.1]');
});

test("test_cfg key of the wrong task: a detector's score_thr in a segmentor's test_cfg", () => {
  const e = configError(() => validateModelConfig({ ...tiny(), test_cfg: { mode: 'whole', score_thr: 0.05 } }, FILE),
    "configs/my.yaml: model.test_cfg.score_thr: unknown key 'score_thr'; allowed: mode, crop_size, stride, aug");
  assert.equal(e.details.path, 'model.test_cfg.score_thr');
  configError(() => validateModelConfig({ ...tiny(), test_cfg: { mode: 'slide' } }, FILE), "model.test_cfg: mode 'slide' needs 'crop_size' and 'stride'");
  configError(() => validateModelConfig({ ...tiny(), train_cfg: { assigner: {} } }, FILE), "model.train_cfg.assigner: unknown key 'assigner'");
});

test('buildModel: a Model of the right task with test_cfg applied; cross-checks against the backbone', async () => {
  const m = await buildModel({ ...tiny(), test_cfg: { mode: 'slide', crop_size: [16, 16], stride: [8, 8], aug: { scales: [1, 2], flip: false } } }, { file: FILE, log: () => {} });
  assert.equal(m.task, 'segmentation');
  assert.equal(m.numClasses, 3);
  assert.ok(m instanceof EncoderDecoder);
  assert.deepEqual(m.testCfg, { mode: 'slide', cropSize: [16, 16], stride: [8, 8], aug: { scales: [1, 2], flip: false } });
  const cfg = tiny();
  await assert.rejects(buildModel({ ...cfg, decode_head: { ...cfg.decode_head, in_channels: [8, 8, 8, 9] } }, { file: FILE }),
    (e: Error) => e instanceof ConfigError && e.message.includes('configs/my.yaml: model.decode_head.in_channels: [8, 8, 8, 9] does not match the backbone outputs [8, 8, 8, 8]'));
  await assert.rejects(buildModel({ ...cfg, auxiliary_head: { type: 'FCNHead', num_classes: 3, in_index: 5 } }, { file: FILE }),
    /model\.auxiliary_head\.in_index: 5 but the backbone returns 4 feature maps/);
});

test('tools/train.ts and tools/test.ts name no task: no segmentation- or detection-specific code', () => {
  const specific = /\b(buildSegmentor|evaluateSegmentor|EncoderDecoder|IoUMetric|CocoMetric|SegMetric\w*|formatSegMetrics|mIoU|aAcc|mAcc|semSeg|MaskRCNN|bbox_mAP)\b/;
  for (const tool of ['train.ts', 'test.ts']) {
    const text = readFileSync(path.join(import.meta.dirname, '..', 'tools', tool), 'utf8');
    // Comments may describe what the tasks print; code may not branch on them.
    const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    const hit = specific.exec(code);
    assert.equal(hit, null, `tools/${tool} names '${hit?.[0]}'`);
  }
});
