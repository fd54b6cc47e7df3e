/**
 * The browser example (examples/browser/ served by tools/serve_example.ts) end to end in headless
 * Chromium: a tiny shapes set, a few dozen training iterations, the ONNX export, `tools/test.ts
 * --engine onnxruntime --out` on the exported model (onnxruntime-node), then the page on one
 * validation image with `?model=&image=`. The page's label map must match the PNG tools/test.ts
 * wrote on >= 99.9% of the pixels (same resize, normalisation and logits resize; only float rounding
 * and the JPEG decoders may differ). Needs Debian's chromium (`apt-get install chromium`) and the
 * optional onnxruntime-node; skipped without them. playwright-core drives the browser and downloads
 * none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { generateShapes } from '../src/datasets/shapes.ts';
import { readLabelPng } from '../src/io/label_png.ts';
import { ROOT, runTool } from './helpers/run_tool.ts';

const CHROMIUM = process.env.C2F_CHROMIUM ?? '/usr/bin/chromium';
const HAS_ORT_NODE = (() => {
  try {
    createRequire(import.meta.url).resolve('onnxruntime-node');
    return true;
  } catch {
    return false;
  }
})();
const SKIP = !existsSync(CHROMIUM) ? `${CHROMIUM} not found: apt-get install chromium (or set C2F_CHROMIUM) to run the browser example test`
  : !HAS_ORT_NODE ? 'onnxruntime-node (optional dependency) is not installed: tools/test.ts --engine onnxruntime needs it' : false;
const ENV = { C2F_BACKEND: 'wasm' };
const NORM = { type: 'Normalize', mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375] };

/** The shapes config with tiny data and 64x64 training crops; data.val keeps the config's test pipeline. */
function writeConfig(dir: string): string {
  const d = path.join(dir, 'data', 'ade');
  const cfg = {
    _base_: path.join(ROOT, 'configs', 'upernet_c2f_shapes.yaml'),
    data: {
      batch_size: 4,
      num_workers: 0,
      train: {
        img_dir: path.join(d, 'images/training'), ann_dir: path.join(d, 'annotations/training'),
        pipeline: [
          { type: 'LoadImageFromFile' }, { type: 'LoadAnnotations' },
          { type: 'Resize', scale: [96, 64], ratio_range: [0.75, 1.25], keep_ratio: true },
          { type: 'RandomCrop', crop_size: [64, 64], cat_max_ratio: 0.75 }, NORM, { type: 'Pad', size: [64, 64] },
        ],
      },
      val: { img_dir: path.join(d, 'images/validation'), ann_dir: path.join(d, 'annotations/validation') },
    },
    schedule: { max_iters: 40, warmup_iters: 5 },
    train: { eval_interval: 1000, checkpoint_interval: 40, log_interval: 20 },
  };
  const file = path.join(dir, 'shapes_tiny.yaml');
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return file;
}

function ok(r: ReturnType<typeof runTool>, what: string): void {
  assert.equal(r.code, 0, `${what} failed\nstderr: ${r.stderr}\nstdout: ${r.stdout}`);
}

/** Starts tools/serve_example.ts on a free port; resolves with its base URL once it listens. */
function startServer(modelDir: string): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tools', 'serve_example.ts'), '--model-dir', modelDir, '--port', '0'],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (b: Buffer) => {
      out += b.toString();
      const m = /open (http:\/\/[^/\s]+)\//.exec(out);
      if (m) resolve({ child, base: m[1] });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    child.once('exit', (code) => reject(new Error(`serve_example exited (${code}) before listening:\n${out}`)));
  });
}

/** Status and content type of a GET of the raw `urlPath` (not normalised, unlike fetch). */
function rawGet(base: string, urlPath: string): Promise<{ status: number; type: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    http.get({ hostname, port, path: urlPath }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']) }));
    }).on('error', reject);
  });
}

test('browser example: the page predicts what tools/test.ts --out writes', { skip: SKIP, timeout: 180_000 }, async (t) => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-browser-'));
  let server: ChildProcess | undefined;
  let browser: Browser | undefined;
  try {
    await generateShapes({ out: path.join(tmp, 'data'), train: 8, val: 2, minSize: 64, maxSize: 80, what: ['semantic'], log: () => {} });
    const cfg = writeConfig(tmp);
    const work = path.join(tmp, 'work');
    ok(runTool('train.ts', [cfg, '--work-dir', work], ENV), 'train.ts');
    const modelDir = path.join(tmp, 'onnx');
    mkdirSync(modelDir);
    const onnx = path.join(modelDir, 'seg.onnx');
    ok(runTool('export.ts', ['--format', 'onnx', '--config', cfg, '--checkpoint', path.join(work, 'latest'), '--out', onnx], ENV), 'export.ts');
    const pred = path.join(tmp, 'pred');
    ok(runTool('test.ts', [cfg, onnx, '--engine', 'onnxruntime', '--out', pred], ENV), 'test.ts --engine onnxruntime');

    // The validation image whose prediction has the most classes (a trained model: more than one).
    const valDir = path.join(tmp, 'data', 'ade', 'images', 'validation');
    const cands = await Promise.all(readdirSync(valDir).sort().map(async (f) => {
      const map = await readLabelPng(path.join(pred, `${path.parse(f).name}.png`));
      return { f, map, classes: new Set(map.data).size };
    }));
    const { f: imgName, map: want, classes } = cands.sort((a, b) => b.classes - a.classes)[0];
    assert.ok(classes >= 2, `tools/test.ts predicted a single class on every image; the test needs a model that separates classes`);
    copyFileSync(path.join(valDir, imgName), path.join(modelDir, imgName));

    const started = await startServer(modelDir);
    server = started.child;
    const { base } = started;
    assert.equal((await rawGet(base, '/%2e%2e/package.json')).status, 400);
    assert.equal((await rawGet(base, '/ort/../../package.json')).status, 400);
    assert.equal((await rawGet(base, '/nope.js')).status, 404);
    assert.deepEqual(await rawGet(base, '/ort/ort-wasm-simd-threaded.wasm'), { status: 200, type: 'application/wasm' });
    assert.deepEqual(await rawGet(base, '/model/seg.onnx'), { status: 200, type: 'application/octet-stream' });
    assert.deepEqual(await rawGet(base, '/main.js'), { status: 200, type: 'application/javascript' });

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`${base}/?model=model/seg.onnx&image=model/${imgName}`);
    await page.waitForSelector('body[data-done], body[data-error]', { state: 'attached', timeout: 60_000 });
    const r = await page.evaluate(() => {
      const w = window as unknown as { c2fResult?: { width: number; height: number; numClasses: number; labels: string }; c2fError?: string };
      return { result: w.c2fResult, error: w.c2fError, legend: document.querySelectorAll('#legend li').length };
    });
    assert.equal(r.error, undefined, `the page failed: ${r.error}\n${logs.join('\n')}`);
    assert.ok(r.result, `no c2fResult\n${logs.join('\n')}`);
    assert.equal(r.result.numClasses, 6);
    assert.equal(r.legend, 6);
    assert.deepEqual([r.result.width, r.result.height], [want.width, want.height]);
    const got = Buffer.from(r.result.labels, 'base64');
    assert.equal(got.length, want.data.length);
    let same = 0;
    for (let i = 0; i < got.length; i++) if (got[i] === want.data[i]) same++;
    const agree = same / got.length;
    t.diagnostic(`${imgName} ${want.width}x${want.height}, ${classes} classes: ${same}/${got.length} pixels agree`);
    assert.ok(agree >= 0.999, `the page agrees with tools/test.ts on ${(100 * agree).toFixed(2)}% of the pixels of ${imgName} (< 99.9%)`);

    // The file picker gives the same result as ?image=.
    await page.goto(`${base}/?model=model/seg.onnx`);
    await page.waitForSelector('#file:not([disabled])', { timeout: 30_000 });
    await page.setInputFiles('#file', path.join(valDir, imgName));
    await page.waitForSelector('body[data-done], body[data-error]', { state: 'attached', timeout: 30_000 });
    const picked = await page.evaluate(() => (window as unknown as { c2fResult?: { labels: string } }).c2fResult?.labels);
    assert.equal(picked, r.result.labels, `the picked file's labels differ from ?image='s\n${logs.join('\n')}`);

    // A missing model is reported in the page.
    await page.goto(`${base}/?model=model/missing.onnx&image=model/${imgName}`);
    await page.waitForSelector('body[data-error]', { state: 'attached', timeout: 30_000 });
    assert.match(await page.textContent('#error') ?? '', /missing\.json: HTTP 404/);
  } finally {
    await browser?.close();
    server?.kill();
    rmSync(tmp, { recursive: true, force: true });
  }
});
