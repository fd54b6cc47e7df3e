import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../src/nn/random.ts';
import type { Dataset } from '../src/datasets/dataset.ts';
import type { Sample } from '../src/datasets/transforms/types.ts';
import { collate, type Batch } from '../src/datasets/collate.ts';
import { DataLoader } from '../src/datasets/loader.ts';
import { GroupedBatchSampler, InfiniteSampler, SequentialSampler } from '../src/datasets/sampler.ts';

await tf.setBackend('cpu');

/** Sample size of index i: some wide, some tall. */
const dims = (i: number): [number, number] => (i % 3 === 0 ? [7 + (i % 2), 4] : [4, 5 + (i % 4)]);

/** In-memory dataset with random (unseeded) async delays, so completions come out of order. */
class FakeDataset implements Dataset {
  badSamples = 0;
  inFlight = 0;
  maxInFlight = 0;
  constructor(readonly length: number, private readonly nulls = new Set<number>(), private readonly seg = false) {}

  async getSample(index: number, rng: Rng): Promise<Sample | null> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, Math.random() * 3));
    this.inFlight--;
    if (this.nulls.has(index)) {
      this.badSamples++;
      return null;
    }
    const [h, w] = dims(index);
    const data = new Float32Array(h * w * 3).fill(index + 1);
    data[0] = rng.uniform(); // "augmentation": depends on the per-sample rng only
    const flip = rng.uniform() < 0.5;
    return {
      img: { data, height: h, width: w, channels: 3 }, imageId: index, oriShape: [h, w], imgShape: [h, w],
      scaleFactor: [1, 1], flip, gtBboxes: new Float32Array([0, 0, 1, 1]), gtLabels: new Int32Array([index % 5]),
      gtSegMap: this.seg ? new Uint8Array(h * w).fill(index % 7) : undefined,
    };
  }

  aspectGroup(index: number): 0 | 1 {
    const [h, w] = dims(index);
    return w >= h ? 0 : 1;
  }
}

interface Snap { ids: (number | undefined)[]; flips: boolean[]; seeds: (number | undefined)[]; shape: number[]; data: number[] }

async function take(loader: DataLoader, k: number): Promise<Snap[]> {
  const out: Snap[] = [];
  for (let i = 0; i < k; i++) {
    const b = await loader.nextBatch();
    if (!b) break;
    out.push({ ids: b.metas.map((m) => m.imageId), flips: b.metas.map((m) => m.flip), seeds: b.metas.map((m) => m.samplingSeed), shape: b.imgs.shape, data: Array.from(b.imgs.dataSync()) });
    b.dispose();
  }
  return out;
}

test('same seed gives identical batches despite random delays; another seed another order', async () => {
  const mk = (seed: number) => new DataLoader(new FakeDataset(23), { batchSize: 3, shuffle: true, seed, infinite: true, prefetch: 7 });
  const a = await take(mk(7), 12);
  const b = await take(mk(7), 12);
  assert.deepEqual(a, b);
  const c = await take(mk(8), 12);
  assert.notDeepEqual(a.map((s) => s.ids), c.map((s) => s.ids));
});

test('loads concurrently up to prefetch', async () => {
  const ds = new FakeDataset(40);
  await take(new DataLoader(ds, { batchSize: 2, prefetch: 6 }), 10);
  assert.ok(ds.maxInFlight > 1 && ds.maxInFlight <= 6, `max in flight ${ds.maxInFlight}`);
});

test('InfiniteSampler: each epoch a permutation, epochs differ, state/restore continues exactly', () => {
  const s = new InfiniteSampler(10, { shuffle: true, seed: 3 });
  const draws = Array.from({ length: 30 }, () => s.next()!);
  const epochs = [draws.slice(0, 10), draws.slice(10, 20), draws.slice(20)];
  for (const e of epochs) assert.deepEqual([...e].sort((x, y) => x - y), [...Array(10).keys()]);
  assert.notDeepEqual(epochs[0], epochs[1]);
  const s2 = new InfiniteSampler(10, { shuffle: true, seed: 3 });
  for (let i = 0; i < 15; i++) s2.next();
  const st = s2.state();
  assert.equal(st.epoch, 1);
  assert.equal(st.position, 5);
  const s3 = new InfiniteSampler(10, { shuffle: true, seed: 99 });
  s3.restore(JSON.parse(JSON.stringify(st)));
  assert.deepEqual(Array.from({ length: 15 }, () => s3.next()), draws.slice(15));
  const seq = new SequentialSampler(3);
  assert.deepEqual([seq.next(), seq.next(), seq.next(), seq.next()], [0, 1, 2, null]);
});

test('GroupedBatchSampler: one group per batch, every index once per pass', () => {
  const ds = new FakeDataset(17);
  const gb = new GroupedBatchSampler(new InfiniteSampler(17, { seed: 1, stopAtEpochEnd: true }), (i) => ds.aspectGroup(i), 4);
  const seen: number[] = [];
  for (let b = gb.nextBatch(); b; b = gb.nextBatch()) {
    assert.equal(new Set(b.map((i) => ds.aspectGroup(i))).size, 1);
    assert.ok(b.length <= 4);
    seen.push(...b);
  }
  assert.deepEqual(seen.sort((x, y) => x - y), [...Array(17).keys()]);
});

test('loader with aspect grouping: every batch one group; finite pass covers the dataset', async () => {
  const ds = new FakeDataset(17);
  const loader = new DataLoader(ds, { batchSize: 3, shuffle: true, seed: 2, groupByAspect: true });
  const ids: number[] = [];
  for await (const b of loader) {
    const groups = b.metas.map((m) => ds.aspectGroup(m.imageId!));
    assert.equal(new Set(groups).size, 1);
    ids.push(...b.metas.map((m) => m.imageId!));
    b.dispose();
  }
  assert.deepEqual(ids.sort((x, y) => x - y), [...Array(17).keys()]);
  let again = 0;
  for await (const b of loader) { again += b.metas.length; b.dispose(); } // next epoch
  assert.equal(again, 17);
});

test('loader state/restore continues with exactly the same batches', async () => {
  const opts = { batchSize: 3, shuffle: true, seed: 5, infinite: true, groupByAspect: true, prefetch: 5 };
  const a = new DataLoader(new FakeDataset(11, new Set([4])), opts);
  await take(a, 5);
  const st = JSON.parse(JSON.stringify(a.state()));
  assert.ok(st.buckets.some((b: unknown[]) => b.length > 0), 'state should hold a partly filled group bucket');
  const rest = await take(a, 6);
  const b = new DataLoader(new FakeDataset(11, new Set([4])), opts);
  b.restore(st);
  assert.deepEqual(await take(b, 6), rest);
});

test('null samples are replaced and counted; all-null fails clearly', async () => {
  const ds = new FakeDataset(10, new Set([2, 5]));
  const loader = new DataLoader(ds, { batchSize: 2 });
  const got = await take(loader, 100);
  assert.deepEqual(got.flatMap((s) => s.ids), [0, 1, 3, 4, 6, 7, 8, 9]);
  assert.equal(loader.stats.skipped, 2);
  const allNull = new Set([...Array(5).keys()]);
  const inf = new DataLoader(new FakeDataset(5, allNull), { batchSize: 2, infinite: true, shuffle: true, maxSkips: 20 });
  await assert.rejects(inf.nextBatch(), /21 consecutive samples were null.*no valid sample/);
  const fin = new DataLoader(new FakeDataset(5, allNull), { batchSize: 2 });
  await assert.rejects(fin.nextBatch(), /all 5 samples of the pass were null.*no valid sample/);
});

test('collate pads images with zeros and seg maps with 255; dispose frees the tensors', async () => {
  const ds = new FakeDataset(4, new Set(), true);
  const before = tf.memory().numTensors;
  const samples = (await Promise.all([0, 1].map((i) => ds.getSample(i, new Rng(i))))) as Sample[];
  const batch: Batch = collate(samples);
  // index 0: 7x4, index 1: 4x6 -> batch 7x6
  assert.deepEqual(batch.imgs.shape, [2, 7, 6, 3]);
  assert.equal(batch.imgs.dtype, 'float32');
  const img = batch.imgs.arraySync();
  assert.equal(img[0][6][3][0], 1); // inside image 0
  assert.equal(img[0][6][4][2], 0); // right padding
  assert.equal(img[1][3][5][1], 2);
  assert.equal(img[1][4][0][0], 0); // bottom padding
  assert.deepEqual(batch.gtSegMaps!.shape, [2, 7, 6]);
  assert.equal(batch.gtSegMaps!.dtype, 'int32');
  const seg = batch.gtSegMaps!.arraySync();
  assert.equal(seg[1][3][5], 1);
  assert.equal(seg[1][4][0], 255);
  assert.equal(seg[0][0][4], 255);
  assert.deepEqual(batch.metas[0].oriShape, [7, 4]);
  assert.deepEqual(batch.metas[1].padShape, [4, 6]);
  assert.deepEqual(batch.metas[1].batchInputShape, [7, 6]);
  assert.deepEqual(Array.from(batch.gtLabels[1]), [1]);
  assert.equal(batch.gtBboxes.length, 2);
  assert.equal(tf.memory().numTensors, before + 2);
  batch.dispose();
  batch.dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => collate([]), /empty batch/);
});

test('shard {rank, size}: the ranks\' batches of a step are one process\'s batch of size x batchSize, same per-sample Rngs; each rank resumes exactly', async () => {
  const n = 13;
  const one = new DataLoader(new FakeDataset(n), { batchSize: 4, shuffle: true, infinite: true, seed: 5 });
  const shards = [0, 1].map((rank) => new DataLoader(new FakeDataset(n), { batchSize: 2, shuffle: true, infinite: true, seed: 5, shard: { rank, size: 2 } }));
  const whole = await take(one, 7);
  const parts = await Promise.all(shards.map((l) => take(l, 7)));
  for (let step = 0; step < 7; step++) {
    const ids = [...parts[0][step].ids, ...parts[1][step].ids].sort((a, b) => a! - b!);
    assert.deepEqual(ids, [...whole[step].ids].sort((a, b) => a! - b!), `step ${step}`);
    // Rank 0 holds the even global draws, rank 1 the odd ones: same flips as the single process's.
    assert.deepEqual(parts[0][step].flips, [whole[step].flips[0], whole[step].flips[2]]);
    assert.deepEqual(parts[1][step].flips, [whole[step].flips[1], whole[step].flips[3]]);
    // and the same sampling seeds for the model (ImgMeta.samplingSeed), distinct per draw.
    assert.deepEqual(parts[0][step].seeds, [whole[step].seeds[0], whole[step].seeds[2]]);
    assert.deepEqual(parts[1][step].seeds, [whole[step].seeds[1], whole[step].seeds[3]]);
    assert.equal(new Set(whole[step].seeds).size, 4);
    assert.ok(whole[step].seeds.every((v) => Number.isInteger(v) && v! >= 0 && v! < 2 ** 32));
  }
  // Each rank's own state resumes its own stream.
  const states = shards.map((l) => l.state());
  const next = await Promise.all(shards.map((l) => take(l, 3)));
  const again = [0, 1].map((rank) => new DataLoader(new FakeDataset(n), { batchSize: 2, shuffle: true, infinite: true, seed: 5, shard: { rank, size: 2 } }));
  again.forEach((l, r) => l.restore(states[r]));
  assert.deepEqual(await Promise.all(again.map((l) => take(l, 3))), next);
  assert.throws(() => new DataLoader(new FakeDataset(n), { batchSize: 2, shard: { rank: 2, size: 2 } }), /0 <= rank < size/);
});
