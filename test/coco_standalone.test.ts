/**
 * `src/coco` (cocoapi-ts) stands on its own: its import graph stays inside `src/coco` (plus the leaf
 * `src/util/format_value.ts`, `src/util/json_depth.ts` and `node:` builtins), and `conv2former-dense/coco` runs the README
 * example without loading tfjs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fixturePath } from './helpers/fixtures.ts';
import { ROOT } from './helpers/run_tool.ts';

const COCO_DIR = path.join(ROOT, 'src', 'coco');
const ALLOWED_OUTSIDE = new Set(['format_value.ts', 'json_depth.ts'].map((f) => path.join(ROOT, 'src', 'util', f)));

/** The module specifiers of `import … from`, `export … from`, bare `import '…'` and `import('…')`. */
function specifiers(source: string): string[] {
  const re = /\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(?\s*['"]([^'"]+)['"]/g;
  return [...source.matchAll(re)].map((m) => m[1] ?? m[2]);
}

test('every import reachable from src/coco stays in src/coco, the one util file or node: builtins', () => {
  const queue = readdirSync(COCO_DIR).filter((f) => f.endsWith('.ts')).map((f) => path.join(COCO_DIR, f));
  const seen = new Set<string>();
  const bad: string[] = [];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('node:')) continue;
      const target = spec.startsWith('.') ? path.resolve(path.dirname(file), spec) : undefined;
      const inside = target !== undefined && (target.startsWith(COCO_DIR + path.sep) || ALLOWED_OUTSIDE.has(target));
      if (inside) queue.push(target);
      else bad.push(`${path.relative(ROOT, file)} imports '${spec}'`);
    }
  }
  assert.ok(seen.size > 10, `walked only ${seen.size} files`);
  assert.deepEqual(bad, []);
});

test("'conv2former-dense/coco' evaluates the bbox fixture as pycocotools without loading tfjs", () => {
  const script = `
    import { createRequire } from 'node:module';
    import { COCO, COCOeval, mask } from 'conv2former-dense/coco';
    const gt = await COCO.fromFile(${JSON.stringify(fixturePath('coco-parity', 'gt.json'))});
    const ev = new COCOeval(gt, gt.loadRes(${JSON.stringify(fixturePath('coco-parity', 'dt_bbox.json'))}), 'bbox');
    ev.evaluate(); ev.accumulate(); ev.summarize(null);
    const rle = mask.encode(new Uint8Array([0, 1, 1, 0]), 2, 2);
    const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => k.includes('@tensorflow'));
    console.log(JSON.stringify({ stats: ev.stats, area: mask.area(rle), loaded }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { stats: number[]; area: number; loaded: string[] };
  const expected = JSON.parse(readFileSync(fixturePath('coco-parity', 'expected.json'), 'utf8')) as { bbox: { stats: number[] } };
  out.stats.forEach((s, i) => assert.ok(Math.abs(s - expected.bbox.stats[i]) < 1e-9, `stats[${i}] ${s} vs ${expected.bbox.stats[i]}`));
  assert.equal(out.area, 2);
  assert.deepEqual(out.loaded, []);
});
