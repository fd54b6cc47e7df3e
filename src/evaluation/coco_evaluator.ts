/**
 * MMDet `CocoMetric` as an {@link Evaluator}: detections become COCO results (boxes `x, y, w, h`,
 * COCO category ids, masks as compressed RLE with string counts), then `src/coco`'s COCOeval gives
 * pycocotools' numbers per iou type. Metric keys as MMDet: `bbox_mAP`, `bbox_mAP_50`, `bbox_mAP_75`,
 * `bbox_mAP_s`, `bbox_mAP_m`, `bbox_mAP_l` (and `segm_*`). The report holds pycocotools' summary
 * block per iou type and a per-category AP table (MMDet `classwise`, one AP column per iou type).
 */
import { COCO } from '../coco/coco.ts';
import { COCOeval } from '../coco/cocoeval.ts';
import { encode } from '../coco/mask.ts';
import type { CocoResult } from '../coco/types.ts';
import { masksToBitmaps } from '../structures/masks.ts';
import { numInstances, type Instances } from '../structures/instances.ts';
import type { Prediction } from '../structures/prediction.ts';
import { fromJsonBytes, jsonBytes } from '../io/json_file.ts';
import type { EvalItem, EvalResult, Evaluator } from './evaluator.ts';
import { formatTable } from './table.ts';

export type CocoIouType = 'bbox' | 'segm';

export interface CocoMetricOptions {
  /** The ground truth. */
  coco: COCO;
  /** COCO category id of each contiguous label. */
  label2cat: readonly number[];
  /** Iou types to evaluate (default bbox and segm). */
  metrics?: readonly CocoIouType[];
}

const SUFFIXES = ['mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m', 'mAP_l'];

/**
 * COCO results of one image's detections (`instances` at the original image size).
 * @param imageId the COCO image id; `label2cat[label]` the category id.
 */
export function instancesToCocoResults(imageId: number, inst: Instances, label2cat: readonly number[], iouType: CocoIouType): CocoResult[] {
  const n = numInstances(inst);
  if (!inst.scores) throw new Error(`COCO results of image ${imageId}: detections need scores`);
  const bitmaps = iouType === 'segm' ? (inst.masks ? masksToBitmaps(inst.masks) : null) : null;
  if (iouType === 'segm' && !bitmaps) throw new Error(`COCO results of image ${imageId}: segm needs masks`);
  const out: CocoResult[] = [];
  for (let i = 0; i < n; i++) {
    const cat = label2cat[inst.labels[i]];
    if (cat === undefined) throw new Error(`COCO results of image ${imageId}: label ${inst.labels[i]} has no category (${label2cat.length} classes)`);
    const [x1, y1, x2, y2] = inst.boxes.subarray(i * 4, i * 4 + 4);
    const r: CocoResult = { image_id: imageId, category_id: cat, score: inst.scores[i] };
    if (bitmaps) r.segmentation = encode(bitmaps.masks[i], bitmaps.height, bitmaps.width);
    else r.bbox = [x1, y1, x2 - x1, y2 - y1];
    out.push(r);
  }
  return out;
}

interface CocoEntry {
  index: number;
  id: number;
  res: Partial<Record<CocoIouType, CocoResult[]>>;
}

export class CocoMetric implements Evaluator {
  readonly type = 'CocoMetric';
  readonly metrics: readonly CocoIouType[];
  /** Per processed image, in processing order: its dataset index, image id and results per iou type. */
  private entries: CocoEntry[] = [];

  constructor(private readonly opts: CocoMetricOptions) {
    this.metrics = opts.metrics ?? ['bbox', 'segm'];
    if (this.metrics.length === 0) throw new Error('CocoMetric: metrics must name bbox and/or segm');
  }

  get defaultBestMetric(): string {
    return `${this.metrics[0]}_mAP`;
  }

  reset(): void {
    this.entries = [];
  }

  async process(items: readonly EvalItem[], results: readonly Prediction[]): Promise<void> {
    items.forEach((it, k) => {
      const id = it.meta.imageId;
      if (id === undefined) throw new Error(`CocoMetric: sample ${it.index} has no COCO image id`);
      const inst = results[k]?.instances;
      if (!inst) throw new Error(`CocoMetric: the prediction of sample ${it.index} has no instances`);
      const res: Partial<Record<CocoIouType, CocoResult[]>> = {};
      for (const t of this.metrics) res[t] = instancesToCocoResults(id, inst, this.opts.label2cat, t);
      this.entries.push({ index: it.index, id, res });
    });
  }

  /** The COCO results gathered so far (what `--out` writes), per iou type. */
  cocoResults(iouType: CocoIouType): readonly CocoResult[] {
    return this.entries.flatMap((e) => e.res[iouType] ?? []);
  }

  partial(): Uint8Array {
    return jsonBytes(this.entries);
  }

  /** Every rank's images, in dataset order (as one process would have processed them: same ties, same digits). */
  merge(parts: readonly Uint8Array[]): void {
    this.entries = parts.flatMap((p) => fromJsonBytes<CocoEntry[]>(p)).sort((a, b) => a.index - b.index);
  }

  evaluate(): EvalResult {
    const metrics: Record<string, number> = {};
    const report: string[] = [];
    const json: Record<string, unknown> = {};
    const imgIds = [...new Set(this.entries.map((e) => e.id))].sort((a, b) => a - b);
    const perCat = new Map<CocoIouType, Map<number, number>>();
    for (const t of this.metrics) {
      const res = this.cocoResults(t) as CocoResult[];
      report.push(`Evaluating ${t}...`);
      if (res.length === 0) {
        // pycocotools cannot load an empty result list; every AP of no detection is 0.
        report.push(`no ${t} detections in ${imgIds.length} images: every AP is 0`);
        for (const s of SUFFIXES) metrics[`${t}_${s}`] = 0;
        json[t] = { stats: new Array(12).fill(0), per_category_ap: {} };
        perCat.set(t, new Map(this.opts.label2cat.map((c) => [c, 0])));
        continue;
      }
      const ev = new COCOeval(this.opts.coco, this.opts.coco.loadRes(res), t);
      ev.params.imgIds = imgIds;
      ev.evaluate();
      ev.accumulate();
      report.push(...ev.summarize(null));
      SUFFIXES.forEach((s, i) => { metrics[`${t}_${s}`] = ev.stats[i]; });
      const aps = ev.perCategoryAP();
      perCat.set(t, aps);
      json[t] = { stats: ev.stats, per_category_ap: Object.fromEntries([...aps].map(([id, ap]) => [String(id), ap])) };
    }
    report.push(this.perCategoryTable(perCat));
    // MMDetection's metric names (`coco/bbox_mAP`, ...), what `--metrics-out` readers look up.
    for (const [k, v] of Object.entries(metrics)) json[`coco/${k}`] = v;
    return { metrics, report: report.join('\n'), json };
  }

  /** Category | bbox AP | segm AP rows in label order; 3 decimals as MMDet, `nan` without ground truth. */
  private perCategoryTable(perCat: Map<CocoIouType, Map<number, number>>): string {
    const fmt = (ap: number | undefined) => (ap === undefined || ap < 0 || Number.isNaN(ap) ? 'nan' : ap.toFixed(3));
    const rows = this.opts.label2cat.map((cat) => [
      this.opts.coco.cats.get(cat)?.name ?? String(cat),
      ...this.metrics.map((t) => fmt(perCat.get(t)?.get(cat))),
    ]);
    return formatTable(['category', ...this.metrics.map((t) => `${t} AP`)], rows);
  }
}
