/** The export and classify CLIs, run as a user would. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { readSafetensors } from '../src/io/safetensors.ts';
import { readTorchCheckpoint } from '../src/io/torch_checkpoint.ts';
import { TINY_CKPT } from './helpers/fixtures.ts';
import { runTool } from './helpers/run_tool.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-tools-'));

const run = (tool: string, args: string[]) => runTool(tool, args, { C2F_BACKEND: 'cpu' });

test('export writes the backbone without classifier, PyTorch names and values, plus a sidecar', async () => {
  const out = path.join(tmp, 'backbone.safetensors');
  const r = run('export.ts', ['--checkpoint', TINY_CKPT, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const { tensors, metadata } = await readSafetensors(out);
  const original = await readTorchCheckpoint(TINY_CKPT);
  const backboneKeys = [...original.keys()].filter((k) => !/^(head|pred)\./.test(k));
  assert.deepEqual([...tensors.keys()].sort(), backboneKeys.sort());
  for (const k of backboneKeys) {
    assert.deepEqual(tensors.get(k)!.shape, original.get(k)!.shape, k);
    assert.deepEqual([...tensors.get(k)!.data], [...original.get(k)!.data], k);
  }
  assert.equal(metadata.format, 'pt');
  const sidecar = JSON.parse(readFileSync(out.replace(/\.safetensors$/, '.json'), 'utf8'));
  assert.deepEqual(sidecar.dims, [16, 32, 64, 128]);
  assert.deepEqual(sidecar.depths, [1, 1, 2, 1]);
  assert.equal(sidecar.kernel_size, 11);
  assert.deepEqual(sidecar.out_channels, [16, 32, 64, 128]);
  assert.deepEqual(sidecar.input.mean, [0.485, 0.456, 0.406]);
});

test('export refuses a checkpoint of another variant with a one-line cause', () => {
  const r = run('export.ts', ['--variant', 't', '--checkpoint', TINY_CKPT, '--out', path.join(tmp, 'x.safetensors')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*ckpt\.pth is not Conv2Former-T: it has dims \[16,32,64,128\]/m);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
});

test('classify prints the top-5 classes; a bad image is a clear error', async () => {
  const img = path.join(tmp, 'img.png');
  await sharp({ create: { width: 300, height: 240, channels: 3, background: { r: 200, g: 30, b: 60 } } }).png().toFile(img);
  const r = run('classify.ts', ['--checkpoint', TINY_CKPT, img]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines[0], img);
  assert.equal(lines.length, 6);
  const probs = lines.slice(1).map((l) => Number(/([\d.]+)%/.exec(l)![1]));
  assert.deepEqual(probs, [...probs].sort((a, b) => b - a));
  const bad = run('classify.ts', ['--checkpoint', TINY_CKPT, path.join(tmp, 'missing.jpg')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: cannot read image .*missing\.jpg/m);
});

test('export --format onnx --with-head → classify --engine onnxruntime prints the tfjs engine\'s top-5', async () => {
  const img = path.join(tmp, 'img2.png');
  await sharp({ create: { width: 260, height: 300, channels: 3, background: { r: 20, g: 160, b: 90 } } }).png().toFile(img);
  const onnx = path.join(tmp, 'tiny_cls.onnx');
  const ex = run('export.ts', ['--format', 'onnx', '--with-head', '--checkpoint', TINY_CKPT, '--out', onnx]);
  assert.equal(ex.code, 0, ex.stderr);
  assert.match(ex.stdout, /outputs logits/);
  const classes = (out: string) => out.trim().split('\n').slice(1).map((l) => l.replace(/^\s*[\d.]+%/, '').trim());
  const probs = (out: string) => out.trim().split('\n').slice(1).map((l) => Number(/([\d.]+)%/.exec(l)![1]));
  const tfjs = run('classify.ts', ['--checkpoint', TINY_CKPT, img]);
  const ort = run('classify.ts', ['--engine', 'onnxruntime', '--checkpoint', onnx, img]);
  assert.equal(ort.code, 0, ort.stderr);
  assert.deepEqual(classes(ort.stdout), classes(tfjs.stdout));
  probs(ort.stdout).forEach((p, i) => assert.ok(Math.abs(p - probs(tfjs.stdout)[i]) <= 0.011, `top-${i + 1}: ${p}% vs ${probs(tfjs.stdout)[i]}%`));
  const bad = run('classify.ts', ['--engine', 'onnxruntime', '--checkpoint', TINY_CKPT, img]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--checkpoint must be an exported classifier \.onnx/);
});

test('demo: the training loop runs and its tensor count stays flat', () => {
  const workDir = path.join(tmp, 'demo');
  const r = run('demo.ts', ['--iters', '6', '--batch', '2', '--size', '32', '--warmup', '2', '--log-interval', '1', '--eval-interval', '100', '--work-dir', workDir]);
  assert.equal(r.code, 0, r.stderr);
  const counts = [...r.stdout.matchAll(/tensors (\d+)/g)].map((m) => Number(m[1]));
  assert.equal(counts.length, 6);
  assert.ok(counts.slice(1).every((c) => c === counts[1]), `tensor counts ${counts.join(', ')}`);
  assert.match(r.stdout, /final validation accuracy [\d.]+%/);
});
