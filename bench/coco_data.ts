/**
 * A deterministic, COCO-val-sized synthetic evaluation set for the COCOeval benchmark: images with
 * polygon instances (small/medium/large in COCO's sense) and a few crowd RLEs, and detections that
 * are jittered copies of the GT (some with wrong classes) plus false positives, each result given
 * both as a box and as a compressed RLE.
 */
import { area, frPoly, segmentationToRle, toRle } from '../src/coco/mask.ts';
import type { BoxXYWH, CocoAnnotation, CocoDataset, CocoResult, CompressedRLE, UncompressedRLE } from '../src/coco/types.ts';
import { Rng } from '../src/nn/random.ts';

export interface BenchSetOptions {
  images: number;
  categories: number;
  /** Mean GT instances per image (COCO val: ~7.3). */
  gtPerImage: number;
  /** Detections per image. */
  detsPerImage: number;
  seed: number;
}

/** A star-like polygon around (cx, cy) with mean radius r. */
function polygon(rng: Rng, cx: number, cy: number, r: number, w: number, h: number): number[] {
  const n = 6 + Math.floor(rng.uniform() * 10);
  const pts: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * (i + 0.3 * rng.uniform())) / n;
    const rr = r * (0.6 + 0.4 * rng.uniform());
    pts.push(Math.min(w - 1, Math.max(0, cx + rr * Math.cos(a))), Math.min(h - 1, Math.max(0, cy + rr * Math.sin(a))));
  }
  return pts.map((v) => Math.round(v * 100) / 100);
}

function bboxOfPoly(p: number[]): BoxXYWH {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < p.length; i += 2) {
    x0 = Math.min(x0, p[i]); x1 = Math.max(x1, p[i]);
    y0 = Math.min(y0, p[i + 1]); y1 = Math.max(y1, p[i + 1]);
  }
  return [x0, y0, x1 - x0, y1 - y0];
}

/** Radius drawn so that areas spread over COCO's small (<32²), medium and large (>96²) ranges. */
function radius(rng: Rng): number {
  const u = rng.uniform();
  return u < 0.4 ? 4 + 12 * rng.uniform() : u < 0.75 ? 18 + 35 * rng.uniform() : 55 + 120 * rng.uniform();
}

export function makeBenchSet(o: BenchSetOptions): { gt: CocoDataset; dtBbox: CocoResult[]; dtSegm: CocoResult[] } {
  const rng = new Rng(o.seed);
  const gt: CocoDataset = { images: [], annotations: [], categories: [] };
  for (let c = 1; c <= o.categories; c++) gt.categories.push({ id: c, name: `class_${c}`, supercategory: `super_${(c - 1) % 10}` });
  const dtBbox: CocoResult[] = [];
  const dtSegm: CocoResult[] = [];
  let annId = 1;
  for (let i = 0; i < o.images; i++) {
    const w = 480 + Math.floor(rng.uniform() * 161);
    const h = 360 + Math.floor(rng.uniform() * 121);
    const imageId = 100000 + i;
    gt.images.push({ id: imageId, width: w, height: h, file_name: `${imageId}.jpg` });
    const nGt = Math.max(1, Math.round(o.gtPerImage * (0.3 + 1.4 * rng.uniform())));
    const anns: CocoAnnotation[] = [];
    for (let k = 0; k < nGt; k++) {
      const r = radius(rng);
      const cx = rng.uniform() * w;
      const cy = rng.uniform() * h;
      const poly = polygon(rng, cx, cy, r, w, h);
      const cat = 1 + Math.floor(rng.uniform() * o.categories);
      const crowd = rng.uniform() < 0.01;
      const seg = crowd ? uncompressed(frPoly(poly, h, w)) : [poly];
      const rle = segmentationToRle(seg, h, w);
      const ann: CocoAnnotation = {
        id: annId++, image_id: imageId, category_id: cat, iscrowd: crowd ? 1 : 0,
        segmentation: seg, bbox: bboxOfPoly(poly), area: area(rle),
      };
      anns.push(ann);
    }
    gt.annotations.push(...anns);
    for (let d = 0; d < o.detsPerImage; d++) {
      const src = anns[Math.floor(rng.uniform() * anns.length)];
      const falsePositive = rng.uniform() < 0.5;
      let poly: number[];
      let cat: number;
      if (falsePositive) {
        poly = polygon(rng, rng.uniform() * w, rng.uniform() * h, radius(rng), w, h);
        cat = 1 + Math.floor(rng.uniform() * o.categories);
      } else {
        const [bx, by, bw, bh] = src.bbox;
        const s = 0.15 * Math.max(bw, bh);
        const r = Math.max(bw, bh) / 2 * (0.8 + 0.4 * rng.uniform());
        poly = polygon(rng, bx + bw / 2 + (rng.uniform() - 0.5) * s, by + bh / 2 + (rng.uniform() - 0.5) * s, r, w, h);
        cat = rng.uniform() < 0.9 ? src.category_id : 1 + Math.floor(rng.uniform() * o.categories);
      }
      const score = Math.round(rng.uniform() * 1e4) / 1e4;
      const bbox = bboxOfPoly(poly).map((v) => Math.round(v * 100) / 100) as BoxXYWH;
      dtBbox.push({ image_id: imageId, category_id: cat, bbox, score });
      dtSegm.push({ image_id: imageId, category_id: cat, segmentation: frPoly(poly, h, w), score });
    }
  }
  return { gt, dtBbox, dtSegm };
}

/** Crowd regions are stored as uncompressed RLE in COCO files. */
function uncompressed(rle: CompressedRLE): UncompressedRLE {
  return { size: rle.size, counts: [...toRle(rle).counts] };
}
