/** buildDataset's config checks and tools/browse_dataset.ts on a tiny generated shapes set. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { buildDataset } from '../src/datasets/build.ts';
import { generateShapes } from '../src/datasets/shapes.ts';
import { runTool } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-browse-'));
await generateShapes({ out: tmp, seed: 3, train: 3, val: 1, minSize: 64, maxSize: 96, log: () => {} });

const cocoBlock = {
  type: 'CocoDataset',
  ann_file: path.join(tmp, 'coco/annotations/instances_train.json'),
  img_dir: path.join(tmp, 'coco/images/train'),
  pipeline: [{ type: 'Resize', scale: [128, 96], keep_ratio: true }, { type: 'Pad', size_divisor: 32 }],
};

test('buildDataset: snake_case keys, unknown type and key errors name the place', async () => {
  const ds = await buildDataset(cocoBlock, { file: 'cfg', path: 'data.train' });
  assert.equal(ds.length, 3);
  const at = { file: 'x.yaml', path: 'data.train' };
  await assert.rejects(buildDataset({ ...cocoBlock, type: 'CocoDatset' }, at),
    /^ConfigError: x\.yaml: data\.train\.type: unknown dataset type 'CocoDatset'; known: CocoDataset, SegDataset, ADE20KDataset, ShapesSegDataset \(did you mean 'CocoDataset'\?\)$/);
  await assert.rejects(buildDataset({ ...cocoBlock, ann_fle: 'a' }, at), /x\.yaml: data\.train\.ann_fle: unknown key 'ann_fle'; allowed: ann_file, img_dir, /);
  const { pipeline: _p, ...noPipeline } = cocoBlock;
  await assert.rejects(buildDataset(noPipeline, at), /x\.yaml: data\.train: missing required key 'pipeline'/);
  // Overrides replace keys before validation.
  const flipped = await buildDataset(cocoBlock, at, { pipeline: [{ type: 'RandomFlip', prob: 1 }] });
  assert.equal(flipped.length, 3);
});

test('browse_dataset writes annotated PNGs for instance and semantic sets', async () => {
  const cfgs = {
    inst: { data: { train: cocoBlock } },
    sem: { data: { train: { type: 'ShapesSegDataset', img_dir: path.join(tmp, 'ade/images/training'), ann_dir: path.join(tmp, 'ade/annotations/training'),
      pipeline: [{ type: 'RandomFlip', prob: 0.5 }, { type: 'Normalize' }] } } },
  };
  for (const [name, cfg] of Object.entries(cfgs)) {
    const file = path.join(tmp, `${name}.yaml`);
    writeFileSync(file, JSON.stringify(cfg)); // JSON is valid YAML
    const out = path.join(tmp, `out_${name}`);
    const r = runTool('browse_dataset.ts', [file, '--out', out, '--n', '2']);
    assert.equal(r.code, 0, r.stderr);
    const pngs = readdirSync(out).filter((f) => f.endsWith('.png'));
    assert.equal(pngs.length, 2);
    const meta = await sharp(path.join(out, pngs[0])).metadata();
    assert.ok((meta.channels ?? 0) >= 3 && (meta.width ?? 0) > 0);
  }
  const bad = runTool('browse_dataset.ts', [path.join(tmp, 'nope.yaml'), '--out', tmp]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: config file not found: .*nope\.yaml/m);
});
