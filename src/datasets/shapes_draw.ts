/**
 * Rasteriser of the synthetic shapes datasets (see `shapes.ts`): textured backgrounds, shape
 * geometry, and one image with its annotations as in-memory pixel buffers.
 *
 * Instances: every shape is a polygon (circle = 32-gon, square, triangle, 10-vertex star; ring =
 * 32-gon minus a concentric 32-gon). Its mask is what pycocotools `frPoly` rasterises from the
 * stored (2-decimal) polygon, and the image pixels are painted from that same mask, so image and
 * annotation agree exactly. Later shapes occlude earlier ones; a new shape is refused when it would
 * leave an earlier instance with less than 70% of its full area visible. An instance's
 * segmentation is always exactly its VISIBLE mask:
 *  - unoccluded non-ring shapes: the polygon (COCO's usual GT form);
 *  - rings (which have a hole that polygons cannot express) and occluded shapes: a compressed RLE
 *    with `iscrowd: 0` (allowed by the COCO format; pycocotools `annToRLE` and our `COCO` accept it);
 *  - crowd regions (`iscrowd: 1`): a cluster of small shapes of one category, as an uncompressed
 *    RLE `{size, counts: number[]}` like COCO's crowd annotations; they never touch an instance.
 * `bbox` = pycocotools `toBbox` and `area` = `area` of the segmentation's RLE.
 *
 * Semantic: membership is decided per pixel centre (x + 0.5, y + 0.5) by an even-odd point-in-
 * polygon test on the same geometry; the same decision sets the pixel's label and colour.
 */
import { area, decode, encode, frPoly, toBbox, toRle } from '../coco/mask.ts';
import type { BoxXYWH, CompressedRLE, Segmentation, UncompressedRLE } from '../coco/types.ts';
import type { Rng } from '../nn/random.ts';

/** Shape category names; COCO category id = index + 1, semantic label = index + 2. */
export const SHAPE_NAMES = ['circle', 'square', 'triangle', 'star', 'ring'] as const;

export type RGB = [number, number, number];

const STAR_INNER = 0.45;
const RING_INNER = 0.55;
/** Area of each shape as a multiple of r² (r = circumradius). */
const AREA_FACTOR = [
  16 * Math.sin(Math.PI / 16), // 32-gon: 32/2 sin(2π/32)
  2,
  (3 * Math.sqrt(3)) / 4,
  5 * STAR_INNER * Math.sin(Math.PI / 5),
  16 * Math.sin(Math.PI / 16) * (1 - RING_INNER * RING_INNER),
];

const randInt = (rng: Rng, lo: number, hi: number): number => lo + Math.floor(rng.uniform() * (hi - lo + 1));
const clampByte = (v: number): number => (v < 0 ? 0 : v > 255 ? 255 : Math.round(v));
const round2 = (v: number): number => Math.round(v * 100) / 100;

function regularPolygon(n: number, cx: number, cy: number, r: number, theta: number, rInner?: number): number[] {
  const p: number[] = [];
  for (let k = 0; k < n; k++) {
    const a = theta + (2 * Math.PI * k) / n;
    const rr = rInner !== undefined && k % 2 === 1 ? rInner : r;
    p.push(round2(cx + rr * Math.cos(a)), round2(cy + rr * Math.sin(a)));
  }
  return p;
}

/** The outline of a shape (and the hole of a ring), as `[x1, y1, ...]` rounded to 2 decimals. */
export function shapePolygons(cat: number, cx: number, cy: number, r: number, theta: number): { outer: number[]; hole?: number[] } {
  switch (cat) {
    case 0: return { outer: regularPolygon(32, cx, cy, r, theta) };
    case 1: return { outer: regularPolygon(4, cx, cy, r, theta + Math.PI / 4) };
    case 2: return { outer: regularPolygon(3, cx, cy, r, theta - Math.PI / 2) };
    case 3: return { outer: regularPolygon(10, cx, cy, r, theta - Math.PI / 2, r * STAR_INNER) };
    case 4: return { outer: regularPolygon(32, cx, cy, r, theta), hole: regularPolygon(32, cx, cy, r * RING_INNER, theta) };
    default: throw new Error(`unknown shape category index ${cat}`);
  }
}

/** Row-major mask of a shape as pycocotools rasterises its polygon(s). */
function polygonMask(poly: { outer: number[]; hole?: number[] }, h: number, w: number): Uint8Array {
  const m = decode(frPoly(poly.outer, h, w));
  if (poly.hole) {
    const hole = decode(frPoly(poly.hole, h, w));
    for (let i = 0; i < m.length; i++) if (hole[i]) m[i] = 0;
  }
  return m;
}

/** Even-odd test of point (x, y) against a polygon `[x1, y1, ...]`. */
function insidePolygon(p: number[], x: number, y: number): boolean {
  let inside = false;
  const n = p.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = p[2 * i], yi = p[2 * i + 1], xj = p[2 * j], yj = p[2 * j + 1];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Row-major mask of a shape by pixel-centre membership. */
function centreMask(poly: { outer: number[]; hole?: number[] }, h: number, w: number): Uint8Array {
  const m = new Uint8Array(h * w);
  const xs = poly.outer.filter((_, i) => i % 2 === 0), ys = poly.outer.filter((_, i) => i % 2 === 1);
  const x0 = Math.max(0, Math.floor(Math.min(...xs))), x1 = Math.min(w - 1, Math.ceil(Math.max(...xs)));
  const y0 = Math.max(0, Math.floor(Math.min(...ys))), y1 = Math.min(h - 1, Math.ceil(Math.max(...ys)));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      if (insidePolygon(poly.outer, x + 0.5, y + 0.5) && !(poly.hole && insidePolygon(poly.hole, x + 0.5, y + 0.5))) m[y * w + x] = 1;
    }
  }
  return m;
}

/** Largest value of a ground channel before texture; shapes use {@link SHAPE_MIN} and up. */
const GROUND_MAX = 90;
const SHAPE_MIN = 150;

/**
 * A dark textured ground: two-colour gradient (channels 0..90) at a random angle, stripes
 * (amplitude 5..20) and Gaussian noise (std 6..12). Shapes are bright (channels >= 150), so shape
 * vs ground is visible at each pixel and the classes differ by their outlines only. (Ground and
 * shapes of any colour made "is this pixel ground" a texture statistic that a network trained from
 * scratch learns slowly: the shapes UperNet sat at the prior for a thousand iterations.)
 */
export function drawBackground(rng: Rng, w: number, h: number): Uint8Array {
  const c0: RGB = [randInt(rng, 0, GROUND_MAX), randInt(rng, 0, GROUND_MAX), randInt(rng, 0, GROUND_MAX)];
  const c1: RGB = [randInt(rng, 0, GROUND_MAX), randInt(rng, 0, GROUND_MAX), randInt(rng, 0, GROUND_MAX)];
  const ga = rng.uniform() * 2 * Math.PI, gx = Math.cos(ga), gy = Math.sin(ga);
  const sa = rng.uniform() * Math.PI, sx = Math.cos(sa), sy = Math.sin(sa);
  const period = 6 + rng.uniform() * 30, amp = 5 + rng.uniform() * 15;
  const noise = 6 + rng.uniform() * 6;
  const span = Math.abs(gx) * w + Math.abs(gy) * h || 1;
  const off = Math.min(0, gx * w) + Math.min(0, gy * h);
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const t = (gx * x + gy * y - off) / span;
      const s = amp * Math.sin((2 * Math.PI * (sx * x + sy * y)) / period);
      const i = (y * w + x) * 3;
      for (let c = 0; c < 3; c++) px[i + c] = clampByte(c0[c] + (c1[c] - c0[c]) * t + s + noise * rng.normal());
    }
  }
  return px;
}

/** A random bright colour (channels 150..255) at least `minDist` (RGB L1) from `avoid` when it can. */
function shapeColour(rng: Rng, avoid: RGB, minDist = 120): RGB {
  for (let k = 0; ; k++) {
    const c: RGB = [randInt(rng, SHAPE_MIN, 255), randInt(rng, SHAPE_MIN, 255), randInt(rng, SHAPE_MIN, 255)];
    if (k > 50 || Math.abs(c[0] - avoid[0]) + Math.abs(c[1] - avoid[1]) + Math.abs(c[2] - avoid[2]) >= minDist) return c;
  }
}

function pixelAt(px: Uint8Array, w: number, x: number, y: number): RGB {
  const i = (Math.floor(y) * w + Math.floor(x)) * 3;
  return [px[i], px[i + 1], px[i + 2]];
}

function paint(px: Uint8Array, mask: Uint8Array, c: RGB): void {
  for (let i = 0; i < mask.length; i++) if (mask[i]) px.set(c, i * 3);
}

/** Size class → target area range (pixels), COCO small < 32², medium, large > 96². */
const AREA_RANGES: [number, number][] = [[120, 900], [1300, 8000], [10000, 40000]];

/** A random shape placement (category, centre, circumradius, rotation) that fits in the image. */
function randomPlacement(rng: Rng, w: number, h: number, cat: number, sizeClass: number): { cx: number; cy: number; r: number; theta: number } {
  const [lo, hi] = AREA_RANGES[sizeClass];
  const a = Math.exp(Math.log(lo) + rng.uniform() * (Math.log(hi) - Math.log(lo)));
  const r = Math.max(3, Math.min(Math.sqrt(a / AREA_FACTOR[cat]), Math.min(w, h) / 2 - 2));
  const cx = r + 1 + rng.uniform() * (w - 2 * r - 2);
  const cy = r + 1 + rng.uniform() * (h - 2 * r - 2);
  return { cx, cy, r, theta: rng.uniform() * 2 * Math.PI };
}

/** One annotation of an instance image (COCO fields but ids), plus the colour it is painted in. */
export interface ShapeAnnotation {
  category_id: number;
  segmentation: Segmentation;
  bbox: BoxXYWH;
  area: number;
  iscrowd: 0 | 1;
  color: RGB;
}

export interface InstanceImage {
  width: number;
  height: number;
  /** `[h, w, 3]` RGB, row-major. */
  pixels: Uint8Array;
  annotations: ShapeAnnotation[];
}

/** Most of an instance's area that later shapes may cover. */
const MAX_OCCLUSION = 0.3;

/** A shape placed by {@link placeShapes}: its full mask area and the part later shapes left visible. */
interface PlacedShape {
  cat: number;
  poly: { outer: number[]; hole?: number[] };
  full: number;
  visible: Uint8Array;
  color: RGB;
  occluded: boolean;
}

/**
 * Paints up to `target` shapes (40 attempts) in drawing order, refusing any that would leave an
 * earlier one less than 70% visible or that covers < 16 pixels. The first shape is large half the
 * time (large shapes drawn later are mostly refused). `rasterise` makes the `[h*w]` mask.
 */
function placeShapes(rng: Rng, w: number, h: number, pixels: Uint8Array, target: number,
  rasterise: (poly: { outer: number[]; hole?: number[] }, h: number, w: number) => Uint8Array): PlacedShape[] {
  const insts: PlacedShape[] = [];
  for (let attempt = 0; attempt < 40 && insts.length < target; attempt++) {
    const cat = randInt(rng, 0, 4);
    const sizeClass = insts.length === 0 && rng.uniform() < 0.5 ? 2 : randInt(rng, 0, 2);
    const { cx, cy, r, theta } = randomPlacement(rng, w, h, cat, sizeClass);
    const poly = shapePolygons(cat, cx, cy, r, theta);
    const m = rasterise(poly, h, w);
    let full = 0;
    for (let i = 0; i < m.length; i++) full += m[i];
    if (full < 16) continue;
    const ok = insts.every((o) => {
      let vis = 0;
      for (let i = 0; i < m.length; i++) if (o.visible[i] && !m[i]) vis++;
      return vis >= (1 - MAX_OCCLUSION) * o.full;
    });
    if (!ok) continue;
    for (const o of insts) {
      for (let i = 0; i < m.length; i++) {
        if (o.visible[i] && m[i]) { o.visible[i] = 0; o.occluded = true; }
      }
    }
    const color = shapeColour(rng, pixelAt(pixels, w, cx, cy));
    paint(pixels, m, color);
    insts.push({ cat, poly, full, visible: m, color, occluded: false });
  }
  return insts;
}

/**
 * Draws one classification tile: a `size`x`size` textured ground with one shape of a random
 * category (circumradius 0.15..0.45 of the side, any rotation, fully inside), painted with the
 * semantic images' colours and pixel-centre rasterisation. `pixels` is `[size, size, 3]` RGB.
 */
export function drawShapeTile(rng: Rng, size: number): { pixels: Uint8Array; cat: number } {
  const pixels = drawBackground(rng, size, size);
  const cat = randInt(rng, 0, SHAPE_NAMES.length - 1);
  const r = size * (0.15 + 0.3 * rng.uniform());
  const cx = r + rng.uniform() * (size - 2 * r), cy = r + rng.uniform() * (size - 2 * r);
  const m = centreMask(shapePolygons(cat, cx, cy, r, rng.uniform() * 2 * Math.PI), size, size);
  paint(pixels, m, shapeColour(rng, pixelAt(pixels, size, cx, cy)));
  return { pixels, cat };
}

/**
 * Draws one instance image: 1–8 shapes (drawing order = annotation order for instances) and, with
 * probability 0.15, one crowd region (~10% of images get one). Deterministic given the state of `rng`.
 */
export function drawInstanceImage(rng: Rng, w: number, h: number): InstanceImage {
  const pixels = drawBackground(rng, w, h);
  const insts = placeShapes(rng, w, h, pixels, randInt(rng, 1, 8), polygonMask);

  const annotations: ShapeAnnotation[] = insts.map((o) => {
    const seg: Segmentation = o.occluded || o.poly.hole ? encode(o.visible, h, w) : [o.poly.outer];
    const rle: CompressedRLE = Array.isArray(seg) ? frPoly(o.poly.outer, h, w) : seg;
    return { category_id: o.cat + 1, segmentation: seg, bbox: toBbox(rle), area: area(rle), iscrowd: 0, color: o.color };
  });

  if (rng.uniform() < 0.15) { // about 1 in 10 images ends up with one (some clusters find no room)
    const crowd = drawCrowd(rng, w, h, pixels, insts.map((o) => o.visible));
    if (crowd) annotations.push(crowd);
  }
  return { width: w, height: h, pixels, annotations };
}

/** A cluster of 5–25 small shapes of one category that touch no instance; null if none fit. */
function drawCrowd(rng: Rng, w: number, h: number, pixels: Uint8Array, taken: Uint8Array[]): ShapeAnnotation | null {
  const cat = randInt(rng, 0, 3); // rings too small to have a hole are not rings
  const occupied = new Uint8Array(w * h);
  for (const t of taken) for (let i = 0; i < t.length; i++) if (t[i]) occupied[i] = 1;
  const rad = Math.min(w, h) * (0.12 + rng.uniform() * 0.12);
  const ccx = rad + rng.uniform() * (w - 2 * rad), ccy = rad + rng.uniform() * (h - 2 * rad);
  const union = new Uint8Array(w * h);
  const n = randInt(rng, 5, 25);
  let placed = 0;
  for (let k = 0; k < n; k++) {
    const a = rng.uniform() * 2 * Math.PI, d = Math.sqrt(rng.uniform()) * rad;
    const r = 2.5 + rng.uniform() * 3;
    const cx = Math.min(w - r - 1, Math.max(r + 1, ccx + d * Math.cos(a))), cy = Math.min(h - r - 1, Math.max(r + 1, ccy + d * Math.sin(a)));
    const m = polygonMask(shapePolygons(cat, cx, cy, r, rng.uniform() * 2 * Math.PI), h, w);
    let clash = false, any = false;
    for (let i = 0; i < m.length && !clash; i++) if (m[i]) { any = true; clash = occupied[i] === 1; }
    if (clash || !any) continue;
    for (let i = 0; i < m.length; i++) if (m[i]) union[i] = 1;
    placed++;
  }
  if (placed < 3) return null;
  const color = shapeColour(rng, pixelAt(pixels, w, ccx, ccy));
  paint(pixels, union, color);
  const comp = encode(union, h, w);
  const seg: UncompressedRLE = { size: [h, w], counts: Array.from(toRle(comp).counts) };
  return { category_id: cat + 1, segmentation: seg, bbox: toBbox(comp), area: area(comp), iscrowd: 1, color };
}

export interface SemanticImage {
  width: number;
  height: number;
  /** `[h, w, 3]` RGB, row-major. */
  pixels: Uint8Array;
  /** `[h, w]` labels: 0 ignore, 1 ground, 2..6 circle, square, triangle, star, ring. */
  label: Uint8Array;
  /** The shapes in drawing order: label and colour. */
  shapes: { label: number; color: RGB }[];
}

/**
 * Draws one semantic image: background (label 1), 0–2 noisy grey "clutter" ellipses and, in half
 * the images, a border band of random width (label 0 = ignore), then up to 2–8 shapes (labels 2..6;
 * none may hide more than 30% of an earlier one, as in the instance images)
 * that paint over the clutter but not over the border band.
 */
export function drawSemanticImage(rng: Rng, w: number, h: number): SemanticImage {
  const pixels = drawBackground(rng, w, h);
  const label = new Uint8Array(w * h).fill(1);
  const blobs = randInt(rng, 0, 2);
  for (let b = 0; b < blobs; b++) {
    const ex = w * (0.05 + rng.uniform() * 0.15), ey = h * (0.05 + rng.uniform() * 0.15);
    const bx = rng.uniform() * w, by = rng.uniform() * h, grey = randInt(rng, 40, 220);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const dx = (x + 0.5 - bx) / ex, dy = (y + 0.5 - by) / ey;
        if (dx * dx + dy * dy > 1) continue;
        label[y * w + x] = 0;
        const v = clampByte(grey + 25 * rng.normal());
        pixels.set([v, v, v], (y * w + x) * 3);
      }
    }
  }
  const placed = placeShapes(rng, w, h, pixels, randInt(rng, 2, 8), centreMask);
  for (const o of placed) for (let i = 0; i < o.visible.length; i++) if (o.visible[i]) label[i] = o.cat + 2;
  const shapes = placed.map((o) => ({ label: o.cat + 2, color: o.color }));
  if (rng.uniform() < 0.5) {
    const band = randInt(rng, 2, 8);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) if (x < band || y < band || x >= w - band || y >= h - band) label[y * w + x] = 0;
    }
  }
  return { width: w, height: h, pixels, label, shapes };
}
