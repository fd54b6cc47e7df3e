/**
 * src/config: `_base_` inheritance and merge rules, load errors, `--cfg-options`, the schema
 * DSL and the experiment schema, dumpConfig round trips and the `type:` table lookup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ConfigError, any, applyCfgOptions, bool, buildFromTable, dumpConfig, int, list, loadConfig, lookupType, mergeConfig, nul, num, obj, oneOf,
  optional, str, typeSpec, validate, validateExperimentConfig, type ExperimentConfig,
} from '../src/config/index.ts';
import { validateModelConfig } from '../src/models/build.ts';

/** Writes `files` (relative path → YAML text) into a fresh temp folder; returns the folder. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'cfg-test-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  }
  return root;
}

/** Asserts that `fn` throws a ConfigError whose message contains every fragment. */
function throwsWith(fn: () => unknown, ...fragments: (string | RegExp)[]): string {
  let msg = '';
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    msg = e.message;
    return true;
  });
  for (const f of fragments) {
    if (typeof f === 'string') assert.ok(msg.includes(f), `message ${JSON.stringify(msg)} lacks ${JSON.stringify(f)}`);
    else assert.match(msg, f);
  }
  return msg;
}

test('_base_: a list of bases, nested bases and paths relative to each file', () => {
  const root = tree({
    '_base_/models/upernet.yaml': `
model:
  type: EncoderDecoder
  backbone: {type: Conv2Former, variant: t, drop_path_rate: 0.1}
  decode_head: {type: UPerHead, num_classes: 150, channels: 512}
`,
    '_base_/schedules/common.yaml': 'train: {log_interval: 50}\n',
    // A base with its own base, referenced relative to *its* folder.
    '_base_/schedules/160k.yaml': `
_base_: ./common.yaml
schedule: {max_iters: 160000, policy: poly}
train: {eval_interval: 16000}
`,
    'exp/run.yaml': `
_base_: [../_base_/models/upernet.yaml, ../_base_/schedules/160k.yaml]
model:
  backbone: {variant: s}
schedule: {max_iters: 1000}
`,
  });
  const cfg = loadConfig(join(root, 'exp/run.yaml'));
  assert.deepEqual(cfg, {
    model: {
      type: 'EncoderDecoder',
      backbone: { type: 'Conv2Former', variant: 's', drop_path_rate: 0.1 },
      decode_head: { type: 'UPerHead', num_classes: 150, channels: 512 },
    },
    schedule: { max_iters: 1000, policy: 'poly' },
    train: { log_interval: 50, eval_interval: 16000 },
  });
});

test('merge rules: dicts merge, lists and scalars replace, later bases win, _delete_ replaces', () => {
  const root = tree({
    'a.yaml': 'x: {keep: 1, over: a, list: [1, 2, 3]}\nopt: {type: AdamW, lr: 0.001, betas: [0.9, 0.999]}\n',
    'b.yaml': 'x: {over: b, fromB: true}\n',
    'c.yaml': `
_base_: [a.yaml, b.yaml]
x: {list: [9]}
opt: {_delete_: true, type: SGD, lr: 0.01}
`,
  });
  const cfg = loadConfig(join(root, 'c.yaml'));
  assert.deepEqual(cfg, {
    x: { keep: 1, over: 'b', list: [9], fromB: true },
    opt: { type: 'SGD', lr: 0.01 },
  });
  // mergeConfig directly: inputs untouched, nested _delete_ markers never leak into the result.
  const base = { a: { b: [1, 2], c: { d: 1 } } };
  const merged = mergeConfig(base, { a: { b: [3], c: { _delete_: true, e: 2 }, n: { _delete_: true, z: 1 } } });
  assert.deepEqual(merged, { a: { b: [3], c: { e: 2 }, n: { z: 1 } } });
  assert.deepEqual(base, { a: { b: [1, 2], c: { d: 1 } } });
  // A dict replaced by a scalar and back.
  assert.deepEqual(mergeConfig({ a: { b: 1 } }, { a: null }), { a: null });
  assert.deepEqual(mergeConfig({ a: 1 }, { a: { b: 1 } }), { a: { b: 1 } });
});

test('_base_ cycles are errors naming the chain', () => {
  const root = tree({ 'a.yaml': '_base_: b.yaml\nx: 1\n', 'b.yaml': '_base_: [c.yaml]\n', 'c.yaml': '_base_: a.yaml\n' });
  throwsWith(() => loadConfig(join(root, 'a.yaml')), /_base_ cycle: \S*a\.yaml -> \S*b\.yaml -> \S*c\.yaml -> \S*a\.yaml/);
  const self = tree({ 's.yaml': '_base_: ./s.yaml\n' });
  throwsWith(() => loadConfig(join(self, 's.yaml')), /s\.yaml -> \S*s\.yaml/);
});

test('a missing base names the referencing file and the path tried', () => {
  const root = tree({ 'exp/run.yaml': '_base_: [../base/ok.yaml, ../base/missing.yaml]\n', 'base/ok.yaml': 'a: 1\n' });
  throwsWith(
    () => loadConfig(join(root, 'exp/run.yaml')),
    'run.yaml: _base_', "'../base/missing.yaml' not found", `tried ${join(root, 'base/missing.yaml')}`,
  );
  throwsWith(() => loadConfig(join(root, 'nope.yaml')), 'config file not found', 'nope.yaml');
});

test('YAML syntax errors name the file, line and column; non-mapping files are rejected', () => {
  const root = tree({
    'bad.yaml': 'model:\n  type: X\ndata: [1, 2\ntrain: {}\n',
    'dup.yaml': 'a: 1\nb: 2\na: 3\n',
    'child.yaml': '_base_: bad.yaml\n',
    'list.yaml': '- 1\n- 2\n',
    'empty.yaml': '# nothing\n',
  });
  throwsWith(() => loadConfig(join(root, 'bad.yaml')), /bad\.yaml:4:1: YAML syntax error: /);
  throwsWith(() => loadConfig(join(root, 'dup.yaml')), /dup\.yaml:3:1: YAML syntax error: Map keys must be unique/);
  // An error in a base names the base, not the file that includes it.
  throwsWith(() => loadConfig(join(root, 'child.yaml')), /bad\.yaml:4:1/);
  throwsWith(() => loadConfig(join(root, 'list.yaml')), 'must be a YAML mapping');
  assert.deepEqual(loadConfig(join(root, 'empty.yaml')), {});
});

test('YAML nested too deep, alias bombs and unreadable bases are errors naming the file, not stack overflows or stalls', () => {
  const bomb = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n';
  const root = tree({
    'flow.yaml': `model:\n  x: ${'['.repeat(200000)}${']'.repeat(200000)}\n`,
    'keys.yaml': `${'? '.repeat(400)}x\n`,
    'block.yaml': Array.from({ length: 300 }, (_, i) => `${' '.repeat(i)}a:\n`).join(''),
    'quoted.yaml': `note: "${'['.repeat(300)}"\nother: '${'{'.repeat(300)}' # ${'['.repeat(300)}\n`,
    'bomb.yaml': bomb,
    'dir_base.yaml': '_base_: .\n',
  });
  const t0 = performance.now();
  throwsWith(() => loadConfig(join(root, 'flow.yaml')), /flow\.yaml:2:\d+: YAML nested too deep: flow collections nested more than 100 deep/);
  throwsWith(() => loadConfig(join(root, 'keys.yaml')), /keys\.yaml:1:1: YAML nested too deep: more than 50 nested block indicators/);
  throwsWith(() => loadConfig(join(root, 'block.yaml')), /block\.yaml:202:1: YAML nested too deep: indented more than 200 columns/);
  assert.ok(performance.now() - t0 < 2000, 'refused before the YAML parser stalls on them');
  assert.deepEqual(Object.keys(loadConfig(join(root, 'quoted.yaml'))), ['note', 'other'], 'brackets in quotes and comments do not count');
  throwsWith(() => loadConfig(join(root, 'bomb.yaml')), /bomb\.yaml: cannot read the YAML: Excessive alias count/);
  throwsWith(() => loadConfig(join(root, 'dir_base.yaml')), /dir_base\.yaml: _base_ '\.' cannot be read .*EISDIR/);
  throwsWith(() => loadConfig(root), `cannot read config file ${root}`);
});

const sample = () => ({
  model: { backbone: { drop_path_rate: 0.1, type: 'Conv2Former' }, decode_head: { num_classes: 150 } },
  data: { batch_size: 2, train: { type: 'ADE', pipeline: [{ type: 'Load' }, { type: 'Flip' }, { type: 'Resize', scale: [1, 1] }] } },
  train: { flag: false },
  x: { list: [0], s: 'a', t: 'b', n: 1, nul: 5 },
});

test('cfg-options: typed values, list indices, copies', () => {
  const cfg = sample();
  const out = applyCfgOptions(cfg, [
    'model.backbone.drop_path_rate=0.2', 'data.batch_size=4', 'train.flag=true', 'x.list=[1,2,3]', "x.s='text'",
    'x.t=text', 'x.n=1e-4', 'x.nul=null', 'data.train.pipeline.2.scale=[512,512]', 'data.train.pipeline.1={type: Other, p: 0.5}',
  ]);
  assert.equal(out.model.backbone.drop_path_rate, 0.2);
  assert.equal(out.data.batch_size, 4);
  assert.equal(out.train.flag, true);
  assert.deepEqual(out.x, { list: [1, 2, 3], s: 'text', t: 'text', n: 1e-4, nul: null });
  assert.deepEqual(out.data.train.pipeline[2], { type: 'Resize', scale: [512, 512] });
  assert.deepEqual(out.data.train.pipeline[1], { type: 'Other', p: 0.5 });
  // Quoted numbers stay strings; values may contain '=' and ': '.
  const more = applyCfgOptions(sample(), ["x.s='42'", 'x.t=a=b', 'x.n=a: b']);
  assert.deepEqual([more.x.s, more.x.t, more.x.n], ['42', 'a=b', 'a: b']);
  assert.deepEqual(cfg, sample(), 'the input is not modified');
});

test('cfg-options through loadConfig, and unknown keys listing the existing ones closest first', () => {
  const root = tree({ 'a.yaml': 'model:\n  type: M\n  backbone: {type: B, drop_path_rate: 0.1}\n  neck: {}\n' });
  const cfg = loadConfig(join(root, 'a.yaml'), { cfgOptions: ['model.backbone.drop_path_rate=0.3'] });
  assert.deepEqual(cfg.model, { type: 'M', backbone: { type: 'B', drop_path_rate: 0.3 }, neck: {} });
  const msg = throwsWith(
    () => loadConfig(join(root, 'a.yaml'), { cfgOptions: ['model.backbon.drop_path_rate=0.2'] }),
    "--cfg-options model.backbon.drop_path_rate=0.2: unknown key 'backbon' at 'model'; existing keys: backbone, ",
    "(did you mean 'backbone'?)",
  );
  assert.ok(msg.indexOf('backbone') < msg.indexOf('neck'));
  throwsWith(() => applyCfgOptions(sample(), ['model.backbone.drop_path=0.2']), "unknown key 'drop_path' at 'model.backbone'", "did you mean 'drop_path_rate'");
  throwsWith(() => applyCfgOptions(sample(), ['nope=1']), "unknown key 'nope' at '(top level)'");
  throwsWith(() => applyCfgOptions(sample(), ['data.train.pipeline.3.scale=1']), "'3' is not an index of the list at 'data.train.pipeline' (length 3)");
  throwsWith(() => applyCfgOptions(sample(), ['data.batch_size.x=1']), "cannot set 'x' inside 'data.batch_size'");
  throwsWith(() => applyCfgOptions(sample(), ['novalue']), 'expected key.path=value');
  // Inherited properties are not keys.
  throwsWith(() => applyCfgOptions(sample(), ['x.constructor.polluted=1']), "unknown key 'constructor' at 'x'");
  throwsWith(() => applyCfgOptions(sample(), ['__proto__.polluted=1']), "'__proto__' cannot be a config key");
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // An explicitly open dict accepts new keys, nested ones included.
  const open = applyCfgOptions(sample(), ['model.neck.type=FPN', 'model.neck.out=[1,2]'], { openPaths: ['model'] });
  assert.deepEqual((open.model as Record<string, unknown>).neck, { type: 'FPN', out: [1, 2] });
});

test('schema DSL: typed values, defaults, and errors naming file, key path, value and what is allowed', () => {
  const optimizer = obj({
    type: str({ enum: ['AdamW', 'SGD'] }),
    lr: num({ min: 0 }),
    weight_decay: optional(num({ min: 0 }), 0.01),
    betas: optional(list(num({ min: 0, max: 1 }), { len: 2 })),
    eps: optional(num()),
    paramwise_cfg: optional(any()),
  });
  const v = validate(optimizer, { type: 'AdamW', lr: 1e-4 }, 'optimizer', 'configs/x.yaml');
  const t: 'AdamW' | 'SGD' = v.type; // type inference from the schema
  assert.equal(t, 'AdamW');
  assert.deepEqual(v, { type: 'AdamW', lr: 1e-4, weight_decay: 0.01 });

  const f = 'configs/x.yaml';
  throwsWith(() => validate(optimizer, { type: 'AdamW', lrr: 1 }, 'optimizer', f),
    "configs/x.yaml: optimizer.lrr: unknown key 'lrr'; allowed: type, lr, weight_decay, betas, eps, paramwise_cfg (did you mean 'lr'?)");
  throwsWith(() => validate(optimizer, { type: 'Adam', lr: 1 }, 'optimizer', f),
    `configs/x.yaml: optimizer.type: expected one of 'AdamW', 'SGD', got "Adam" (did you mean 'AdamW'?)`);
  throwsWith(() => validate(optimizer, { type: 'SGD', lr: -1 }, 'optimizer', f), 'configs/x.yaml: optimizer.lr: expected a number >= 0, got -1');
  throwsWith(() => validate(optimizer, { type: 'SGD' }, 'optimizer', f), "configs/x.yaml: optimizer: missing required key 'lr' (a number >= 0)");
  throwsWith(() => validate(optimizer, { type: 'SGD', lr: 1, betas: [0.9] }, 'optimizer', f), 'optimizer.betas: expected a list of 2 elements, got 1');
  throwsWith(() => validate(optimizer, { type: 'SGD', lr: 1, betas: [0.9, 2] }, 'optimizer', f), 'optimizer.betas.1: expected a number in [0, 1], got 2');
  throwsWith(() => validate(int({ min: 1 }), 'abc', 'schedule.max_iters', f), 'configs/x.yaml: schedule.max_iters: expected an integer >= 1, got "abc"');
  throwsWith(() => validate(int(), 1.5, 'a'), 'a: expected an integer, got 1.5');
  throwsWith(() => validate(bool(), 'yes', 'a'), 'a: expected true or false, got "yes"');
  throwsWith(() => validate(obj({}), [1], 'a'), 'a: expected a dict, got [1]');

  // oneOf: a union type; a bad nested key in the only dict alternative is reported as such.
  const variant = oneOf(str({ enum: ['n', 't'] }), nul(), obj({ dims: list(int()) }));
  const vv: 'n' | 't' | null | { dims: number[] } = validate(variant, null, 'v');
  assert.equal(vv, null);
  assert.deepEqual(validate(variant, { dims: [1] }, 'v'), { dims: [1] });
  throwsWith(() => validate(variant, { dimz: [1] }, 'v'), "v.dimz: unknown key 'dimz'; allowed: dims (did you mean 'dims'?)");
  throwsWith(() => validate(variant, 5, 'v'), "v: expected one of 'n', 't' or null or a dict, got 5");
  // Open dicts pass extra keys through; the root path is the file alone.
  assert.deepEqual(validate(obj({ type: str() }, { open: true }), { type: 'A', extra: [1] }), { type: 'A', extra: [1] });
  throwsWith(() => validate(obj({ a: int() }), { b: 1 }, '', f), "configs/x.yaml: b: unknown key 'b'; allowed: a");
});

/** A full UperNet-like experiment, as a base chain on disk. */
function upernetTree(): string {
  return tree({
    '_base_/models/upernet_conv2former.yaml': `
model:
  type: EncoderDecoder
  backbone:
    type: Conv2Former
    variant: t
    drop_path_rate: 0.3
    checkpoint: null
    out_indices: [0, 1, 2, 3]
  decode_head:
    type: UPerHead
    in_channels: [72, 144, 288, 576]
    channels: 512
    num_classes: 150
    loss_decode: {type: CrossEntropyLoss, loss_weight: 1.0}
  auxiliary_head: {type: FCNHead, in_index: 2, num_classes: 150}
`,
    '_base_/datasets/ade20k.yaml': `
data:
  batch_size: 2
  num_workers: 4
  train:
    type: ADE20KDataset
    img_dir: data/ade/images/training
    pipeline:
      - {type: LoadImageFromFile}
      - {type: Resize, scale: [2048, 512], ratio_range: [0.5, 2.0]}
  val:
    type: ADE20KDataset
    img_dir: data/ade/images/validation
    pipeline: [{type: LoadImageFromFile}]
model:
  test_cfg: {mode: slide, crop_size: [512, 512], stride: [341, 341]}
`,
    '_base_/schedules/schedule_160k.yaml': `
optimizer:
  type: AdamW
  lr: 0.0001
  weight_decay: 0.05
  betas: [0.9, 0.999]
  paramwise_cfg: {layer_decay_rate: 0.9, decay_type: stage_wise, num_layers: 12}
schedule: {max_iters: 160000, warmup_iters: 1500, warmup_ratio: 0.000001, policy: poly, power: 1.0, min_lr: 0.0}
train: {eval_interval: 16000, checkpoint_interval: 16000, log_interval: 50, grad_clip: null, seed: 0}
`,
    'configs/upernet_t.yaml': `
_base_:
  - ../_base_/models/upernet_conv2former.yaml
  - ../_base_/datasets/ade20k.yaml
  - ../_base_/schedules/schedule_160k.yaml
model:
  backbone: {variant: {dims: [72, 144, 288, 576], depths: [3, 3, 12, 3], kernel_size: 11}}
work_dir: work_dirs/upernet_t
`,
  });
}

test('a full UperNet-like config passes validation with typed values', () => {
  const root = upernetTree();
  const file = join(root, 'configs/upernet_t.yaml');
  const cfg: ExperimentConfig = validateExperimentConfig(loadConfig(file), file);
  assert.equal(cfg.model.type, 'EncoderDecoder');
  const model = validateModelConfig(cfg.model, file);
  if (model.type !== 'EncoderDecoder') throw new Error('expected an EncoderDecoder block');
  assert.deepEqual(model.backbone.variant, { dims: [72, 144, 288, 576], depths: [3, 3, 12, 3], kernel_size: 11 });
  assert.deepEqual(model.backbone.out_indices, [0, 1, 2, 3]);
  assert.equal(model.decode_head.num_classes, 150);
  assert.deepEqual(model.test_cfg.crop_size, [512, 512]);
  assert.equal(cfg.data.train.type, 'ADE20KDataset');
  const policy: 'poly' | 'step' | 'cosine' = cfg.schedule.policy;
  assert.equal(policy, 'poly');
  assert.equal(cfg.optimizer.paramwise_cfg?.decay_type, 'stage_wise');
  assert.equal(cfg.train.grad_clip, null);
  assert.equal(cfg.work_dir, 'work_dirs/upernet_t');
});

test('experiment schema errors name the file and the key path', () => {
  const root = upernetTree();
  const file = join(root, 'configs/upernet_t.yaml');
  const bad = (opts: string[]) => () => validateExperimentConfig(loadConfig(file, { cfgOptions: opts }), 'configs/x.yaml');
  // The model block is the model builder's (one schema per type, src/models/build.ts).
  const badModel = (opts: string[]) => () => validateModelConfig(loadConfig(file, { cfgOptions: opts }).model, 'configs/x.yaml');
  throwsWith(bad(['schedule.max_iters=abc']), 'configs/x.yaml: schedule.max_iters: expected an integer >= 1, got "abc"');
  throwsWith(bad(['schedule.policy=linear']), "configs/x.yaml: schedule.policy: expected one of 'poly', 'step', 'cosine', got \"linear\"");
  throwsWith(bad(['schedule.policy=step']), "configs/x.yaml: schedule: policy 'step' needs 'steps'");
  throwsWith(badModel(['model.backbone.drop_path_rate=1.5']), 'model.backbone.drop_path_rate: expected a number in [0, 1], got 1.5');
  throwsWith(badModel(['model.backbone.variant=x']), "model.backbone.variant: expected one of 'n', 't', 's', 'b', 'l' or a dict, got \"x\"");
  throwsWith(badModel(['model.backbone.variant={dims: [1, 2, 3, 4], depth: [1, 1, 1, 1]}']),
    "model.backbone.variant.depth: unknown key 'depth'; allowed: dims, depths, kernel_size (did you mean 'depths'?)");
  throwsWith(badModel(['model.backbone.checkpoint=3']), 'model.backbone.checkpoint: expected a string or null, got 3');
  throwsWith(badModel(['model.decode_head.num_classes=1.5']), 'model.decode_head.num_classes: expected an integer >= 1, got 1.5');
  throwsWith(bad(['data.batch_size=0']), 'data.batch_size: expected an integer >= 1, got 0');
  throwsWith(bad(['data.val={img_dir: x}']), "data.val: missing required key 'type' (a string)");
  throwsWith(bad(['optimizer.type=Adam']), "optimizer.type: expected one of 'AdamW', got \"Adam\" (did you mean 'AdamW'?)");
  throwsWith(bad(['optimizer.paramwise_cfg.decay_type=block']), "optimizer.paramwise_cfg.decay_type: expected one of 'stage_wise', 'layer_wise'");
  throwsWith(bad(['train.grad_clip=-1']), 'train.grad_clip: expected a number >= 0 or null, got -1');
  throwsWith(badModel(['model.test_cfg.mode=sliding']), "model.test_cfg.mode: expected one of 'whole', 'slide', got \"sliding\" (did you mean 'slide'?)");
  throwsWith(badModel(['model.test_cfg.stride=[1]']), 'model.test_cfg.stride: expected a list of 2 elements, got 1');
  // The old top-level `test:` says where it went.
  throwsWith(() => validateExperimentConfig({ ...loadConfig(file), test: { mode: 'whole' } }, 'configs/x.yaml'), 'configs/x.yaml: test: moved to model.test_cfg');

  // Misspelt keys in closed blocks are errors, not silently ignored.
  const cfg = loadConfig(file);
  const opt = cfg.optimizer as Record<string, unknown>;
  throwsWith(() => validateExperimentConfig({ ...cfg, optimizer: { ...opt, lrr: 1 } }, 'configs/x.yaml'),
    "configs/x.yaml: optimizer.lrr: unknown key 'lrr'; allowed: type, lr, weight_decay, betas, eps, paramwise_cfg (did you mean 'lr'?)");
  throwsWith(() => validateExperimentConfig({ ...cfg, schedual: {} }, 'configs/x.yaml'), "configs/x.yaml: schedual: unknown key 'schedual'", "(did you mean 'schedule'?)");
  const { model: _m, ...noModel } = cfg;
  throwsWith(() => validateExperimentConfig(noModel, 'configs/x.yaml'), "configs/x.yaml: missing required key 'model' (a dict)");
  throwsWith(() => validateExperimentConfig({ ...cfg, model: { backbone: {} } }, 'c.yaml'), "c.yaml: model: missing required key 'type'");
});

test('dumpConfig writes YAML that loads back to the same merged object', async () => {
  const root = upernetTree();
  const cfg = loadConfig(join(root, 'configs/upernet_t.yaml'), { cfgOptions: ["work_dir='a: b # not a comment'"] });
  // Shared sub-objects must be written out in full (no YAML aliases), odd strings quoted.
  const shared = { type: 'Same' };
  const withShared = { ...cfg, extra: { a: shared, b: shared, s: ['yes', 'null', '1e3', '', '#x'], f: 1e-6 } };
  const out = join(root, 'work', 'config.yaml');
  mkdirSync(dirname(out));
  await dumpConfig(withShared, out);
  const text = readFileSync(out, 'utf8');
  assert.ok(!text.includes('*'), 'no aliases');
  assert.deepEqual(loadConfig(out), JSON.parse(JSON.stringify(withShared)));
  await dumpConfig(cfg, out); // overwrite in place
  assert.deepEqual(loadConfig(out), cfg);
  await assert.rejects(dumpConfig(cfg, join(root, 'missing-dir', 'c.yaml')), /cannot write/);
});

test('lookupType / buildFromTable: plain type tables and helpful unknown-type errors', () => {
  const datasets = { ADE20KDataset: 'ade', CocoDataset: 'coco', CityscapesDataset: 'city' };
  assert.equal(lookupType(datasets, 'CocoDataset', 'c.yaml', 'data.train.type', 'dataset type'), 'coco');
  const msg = throwsWith(() => lookupType(datasets, 'CocoDatset', 'c.yaml', 'data.train.type', 'dataset type'));
  assert.equal(msg, "c.yaml: data.train.type: unknown dataset type 'CocoDatset'; known: ADE20KDataset, CocoDataset, CityscapesDataset (did you mean 'CocoDataset'?)");
  assert.throws(() => lookupType(datasets, 'CocoDatset', 'c.yaml', 'data.train.type', 'dataset type'), (e: ConfigError) => {
    assert.deepEqual(e.details, { file: 'c.yaml', path: 'data.train.type', value: 'CocoDatset', allowed: ['ADE20KDataset', 'CocoDataset', 'CityscapesDataset'] });
    return true;
  });
  const unrelated = throwsWith(() => lookupType(datasets, 'Foo', undefined, 'x', 'dataset type'), "x: unknown dataset type 'Foo'; known: ADE20KDataset");
  assert.ok(!unrelated.includes('did you mean'), 'no suggestion for an unrelated name');
  // Only own keys are types.
  throwsWith(() => lookupType(datasets, 'toString', undefined, 'x', 'dataset type'), "unknown dataset type 'toString'");
  throwsWith(() => lookupType(datasets, 3, 'c.yaml', 'm.type', 'model type'), 'c.yaml: m.type: expected a model type (one of ADE20KDataset, CocoDataset, CityscapesDataset), got 3');

  const heads = { FCNHead: typeSpec(obj({ channels: int({ min: 1 }) }), (c) => `fcn ${c.channels}`) };
  assert.equal(buildFromTable(heads, { type: 'FCNHead', channels: 4 }, { file: 'c.yaml', path: 'model.decode_head' }, 'head type'), 'fcn 4');
  throwsWith(() => buildFromTable(heads, { type: 'FCNHead', chanels: 4 }, { file: 'c.yaml', path: 'model.decode_head' }, 'head type'),
    "c.yaml: model.decode_head.chanels: unknown key 'chanels'; allowed: channels (did you mean 'channels'?)");
  throwsWith(() => buildFromTable(heads, { type: 'FCNHead', channels: 0 }, { path: 'h' }, 'head type'), 'h.channels: expected an integer >= 1, got 0');
  throwsWith(() => buildFromTable(heads, 'FCNHead', { file: 'c.yaml', path: 'h' }, 'head type'), "c.yaml: h: expected a dict with a 'type' key, got \"FCNHead\"");
});
