/**
 * What 2 MPI ranks compute for a detector, in one process: the gradient of the batch [A, B, C, D]
 * equals the average of the gradients of [A, C] and [B, D] when each image samples its targets from
 * its own seed (ImgMeta.samplingSeed) and the loss normalisers are batch-wide (ops/batch_counts.ts).
 * The "other rank" is played by recording each half's counts first, then replaying their sums.
 */
import { test } from 'node:test';
import path from 'node:path';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { loadConfig } from '../src/config/load.ts';
import { buildModel } from '../src/models/build.ts';
import type { MaskRCNN } from '../src/models/mask_rcnn.ts';
import { sumLosses } from '../src/models/model.ts';
import { manualSeed } from '../src/nn/random.ts';
import { LOCAL_COUNTS, type CountReducer } from '../src/ops/batch_counts.ts';
import type { Batch } from '../src/datasets/collate.ts';
import { SCENE, sceneBatch, stackBatches, type DetShape } from './helpers/det_batch.ts';

import { initBackend } from '../src/backend.ts';

await initBackend('wasm', { quiet: true, wasmThreads: 1 });

/** Four images with 1-3 objects each, so that the halves' counts (positives, sampled RoIs) differ. */
function images(): Batch[] {
  const moved = (s: DetShape, dx: number, dy: number): DetShape => ({ ...s, cx: s.cx + dx, cy: s.cy + dy });
  const scenes: DetShape[][] = [[SCENE[0]], SCENE, [moved(SCENE[1], -30, -20), SCENE[2]], [moved(SCENE[0], 40, 50)]];
  return scenes.map((scene, i) => {
    const b = sceneBatch(scene, 128);
    b.metas[0].samplingSeed = 1000 + 17 * i;
    return b;
  });
}

/** Records the counts a half sums (leaving them as they are). */
class Recorder implements CountReducer {
  readonly size = 2;
  readonly calls: Float64Array[] = [];
  sumSync(buf: Float64Array): void {
    this.calls.push(buf.slice());
  }
}

/** Gives a half the sums of its own and the other half's recorded counts, call by call. */
function replay(own: Float64Array[], other: Float64Array[]): CountReducer {
  let k = 0;
  return {
    size: 2,
    sumSync(buf: Float64Array): void {
      assert.deepEqual(Array.from(buf), Array.from(own[k]), `call ${k}: counts differ from the recorded pass`);
      buf.set(own[k].map((v, j) => v + other[k][j]));
      k++;
    },
  };
}

/**
 * Max |difference| / max |gradient| between the gradient of the 4 images and the mean of the halves'
 * gradients, with the halves' counts shared (`exact`) and with each half's own (`perHalf`); and how
 * many count reductions a half makes per step.
 */
async function splitBatchGaps(file: string): Promise<{ exact: number; perHalf: number; reductions: number }> {
  manualSeed(0);
  const m = (await buildModel((loadConfig(file) as { model: unknown }).model, { file, log: () => {} })) as MaskRCNN;
  m.eval(); // BatchNorm with running statistics (SyncBN is tested on its own)
  const imgs = images();
  const whole = stackBatches(imgs);
  const halves = [stackBatches([imgs[0], imgs[2]]), stackBatches([imgs[1], imgs[3]])];
  const vars = m.trainableVariables();
  const grads = (batch: Batch, counts: CountReducer): Float32Array[] => {
    m.countReducer = counts;
    const { value, grads: g } = tf.variableGrads(() => sumLosses(m.loss(batch)), vars);
    value.dispose();
    const out = vars.map((v) => g[v.name].dataSync() as Float32Array);
    tf.dispose(Object.values(g));
    return out;
  };
  const ref = grads(whole, LOCAL_COUNTS);
  const rec = [new Recorder(), new Recorder()];
  halves.forEach((h, i) => grads(h, rec[i]));
  assert.notDeepEqual(rec[0].calls.map((c) => Array.from(c)), rec[1].calls.map((c) => Array.from(c)), 'the halves should have different counts');
  const mean = (a: Float32Array[], b: Float32Array[]) => a.map((x, t) => x.map((v, j) => (v + b[t][j]) / 2));
  const shared = mean(grads(halves[0], replay(rec[0].calls, rec[1].calls)), grads(halves[1], replay(rec[1].calls, rec[0].calls)));
  const local = mean(grads(halves[0], LOCAL_COUNTS), grads(halves[1], LOCAL_COUNTS));
  const gap = (g: Float32Array[]) => {
    let diff = 0, scale = 0;
    g.forEach((x, t) => x.forEach((v, j) => {
      diff = Math.max(diff, Math.abs(v - ref[t][j]));
      scale = Math.max(scale, Math.abs(ref[t][j]));
    }));
    return diff / scale;
  };
  [whole, ...halves, ...imgs].forEach((b) => b.dispose());
  m.dispose();
  return { exact: gap(shared), perHalf: gap(local), reductions: rec[0].calls.length };
}

for (const [file, reductions] of [['configs/maskrcnn_c2f_shapes.yaml', 2], ['configs/cascade_maskrcnn_c2f_shapes.yaml', 4]] as const) {
  test(`${path.basename(file)}: [A, B, C, D] = the mean of [A, C] and [B, D] with per-image sampling seeds and batch-wide normalisers`, async () => {
    const { exact, perHalf, reductions: made } = await splitBatchGaps(file);
    console.log(`# relative gradient gap: batch-wide normalisers ${exact.toExponential(2)}, per-half ${perHalf.toExponential(2)}`);
    assert.equal(made, reductions, 'one count reduction for the RPN and one per RoI stage');
    assert.ok(exact <= 3e-5, `max |difference| / max |gradient| ${exact} with batch-wide normalisers`);
    // Each half normalised by its own counts (what DDP does without them) is measurably different.
    assert.ok(perHalf > 100 * Math.max(exact, 1e-7), `per-half normalisers: ${perHalf}, batch-wide: ${exact}`);
  });
}
