/** Paths to the shared, read-only fixtures and small readers for them. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

export const FIXTURES = path.resolve(import.meta.dirname, '../../../shared/fixtures');
export const TINY_DIR = path.join(FIXTURES, 'conv2former-tiny');
export const TINY_CKPT = path.join(TINY_DIR, 'ckpt.pth');
/** pycocotools' outputs on a small COCO set (gt.json, dt_*.json, expected.json, masks_expected.json). */
export const COCO_PARITY_DIR = path.join(FIXTURES, 'coco-parity');

/** The path of a shared fixture, e.g. `fixturePath('coco-parity', 'gt.json')`. */
export function fixturePath(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}

/** A little-endian float32 file as a tensor of `shape`. */
export function readF32(file: string, shape: number[]): tf.Tensor {
  const buf = readFileSync(file);
  const arr = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return tf.tensor(arr, shape);
}

export interface TinyMeta {
  dims: [number, number, number, number];
  depths: [number, number, number, number];
  kernel_size: number;
  input_shape: number[];
  out_shapes: number[][];
  logits_first10: number[];
}

export function readTinyMeta(): TinyMeta {
  return JSON.parse(readFileSync(path.join(TINY_DIR, 'meta.json'), 'utf8')) as TinyMeta;
}

/** Max |a - b|. */
export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Max |a - b| / max |b|. */
export function maxRelDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / Math.max(tf.max(tf.abs(b)).dataSync()[0], 1e-12));
}
