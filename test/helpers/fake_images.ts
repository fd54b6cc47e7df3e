/** A tiny in-memory dataset for trainer tests. */
import type { Dataset } from '../../src/datasets/dataset.ts';
import type { Sample } from '../../src/datasets/transforms/types.ts';
import { Rng } from '../../src/nn/random.ts';

/** Random `size`x`size` images, seeded by index, plus (with `noise`) a little jitter from the loader's per-draw Rng. */
export class FakeImages implements Dataset {
  badSamples = 0;
  constructor(readonly length: number, private readonly noise = true, private readonly size = 32) {}
  async getSample(index: number, rng: Rng): Promise<Sample | null> {
    const r = new Rng(1000 + index);
    const n = this.size * this.size * 3;
    const data = new Float32Array(n);
    const jitter = this.noise ? rng.uniform() : 0;
    for (let i = 0; i < n; i++) data[i] = r.normal() + jitter;
    const s = this.size;
    return { img: { data, height: s, width: s, channels: 3 }, oriShape: [s, s], imgShape: [s, s], scaleFactor: [1, 1], flip: false, imageId: index };
  }
}
