/**
 * COCO box/mask AP from a GT file and a results file, the numbers pycocotools prints.
 *
 *   npx tsx tools/coco_eval.ts --gt instances_val.json --dt results.bbox.json --iou-type bbox [--json out.json] [--per-class]
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { COCO } from '../src/coco/coco.ts';
import { COCOeval } from '../src/coco/cocoeval.ts';
import { writeFileAtomic } from '../src/io/atomic_write.ts';
import { runCli } from './cli.ts';

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 --gt GT.json --dt RESULTS.json --iou-type bbox|segm [--json OUT] [--per-class]')
    .option('gt', { type: 'string', demandOption: true, describe: 'COCO annotation file' })
    .option('dt', { type: 'string', demandOption: true, describe: 'results file (list of {image_id, category_id, score, bbox|segmentation})' })
    .option('iou-type', { type: 'string', choices: ['bbox', 'segm'], demandOption: true })
    .option('json', { type: 'string', describe: 'write {"iouType", "stats", "per_category"} here' })
    .option('per-class', { type: 'boolean', default: false, describe: 'print AP per category' })
    .strict()
    .parse();
  const gt = await COCO.fromFile(argv.gt);
  const dt = gt.loadRes(argv.dt);
  const ev = new COCOeval(gt, dt, argv.iouType as 'bbox' | 'segm');
  ev.evaluate();
  ev.accumulate();
  ev.summarize((line) => console.log(line));
  const perCat = ev.perCategoryAP();
  if (argv.perClass) {
    console.log('\ncategory                          AP');
    for (const [id, ap] of perCat) {
      const name = gt.cats.get(id)?.name ?? String(id);
      console.log(`${`${name} (${id})`.padEnd(30)} ${ap < 0 ? '   n/a' : ap.toFixed(3).padStart(6)}`);
    }
  }
  if (argv.json) {
    const out = { iouType: argv.iouType, stats: ev.stats, per_category: Object.fromEntries([...perCat].map(([id, ap]) => [String(id), ap])) };
    await writeFileAtomic(argv.json, JSON.stringify(out, null, 2) + '\n');
  }
});
