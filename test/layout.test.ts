/**
 * The layout drawn in the README: one folder per concern, imports only point down the list.
 * A folder that imports one above it (e.g. datasets → models) fails here with the file and import.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '..', 'src');
/** Top to bottom, as README's Layout section. */
const LAYERS = ['onnx', 'dist', 'engine', 'models', 'heads', 'necks', 'backbone', 'evaluation', 'datasets', 'ops', 'nn', 'structures', 'coco', 'config', 'io', 'util', 'backend.ts', 'kernels', 'wasm_threads.ts'];

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

const layerOf = (file: string): string => path.relative(SRC, file).split(path.sep)[0];

test('src/: every folder is in the README layout and imports only folders below it', () => {
  const bad: string[] = [];
  for (const file of tsFiles(SRC)) {
    const from = layerOf(file);
    if (from === 'index.ts') continue; // the public API re-exports everything
    const rank = LAYERS.indexOf(from);
    assert.ok(rank >= 0, `src/${from} is not in the README layout`);
    for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const to = layerOf(path.resolve(path.dirname(file), m[1]));
      if (to !== from && LAYERS.indexOf(to) <= rank) bad.push(`${path.relative(SRC, file)} imports ${m[1]} (${to} is above ${from})`);
    }
  }
  assert.deepEqual(bad, []);
});
