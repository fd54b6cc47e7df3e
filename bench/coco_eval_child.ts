/** Child of bench/coco.ts: loads one GT/results pair, times evaluate and accumulate, prints JSON. */
import { COCO } from '../src/coco/coco.ts';
import { COCOeval } from '../src/coco/cocoeval.ts';

const [gtFile, dtFile, iouType] = process.argv.slice(2);
let t = performance.now();
const gt = await COCO.fromFile(gtFile);
const dt = gt.loadRes(dtFile);
const load = (performance.now() - t) / 1000;
const ev = new COCOeval(gt, dt, iouType as 'bbox' | 'segm');
t = performance.now();
ev.evaluate();
const evaluate = (performance.now() - t) / 1000;
t = performance.now();
ev.accumulate();
const accumulate = (performance.now() - t) / 1000;
ev.summarize(() => {});
console.log(JSON.stringify({ load, evaluate, accumulate, maxRssMB: process.resourceUsage().maxRSS / 1024, dets: dt.anns.size, ap: ev.stats[0] }));
