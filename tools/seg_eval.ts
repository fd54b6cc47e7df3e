/**
 * Evaluates semantic-segmentation label maps with MMSegmentation's metrics (aAcc, per-class
 * IoU/Acc, mIoU, mAcc): predictions in one folder, ground truth in another, paired by file stem.
 *
 *   npx tsx tools/seg_eval.ts --pred-dir work_dirs/pred --gt-dir data/ade/annotations/validation \
 *     --num-classes 150 --reduce-zero-label [--json metrics.json] [--class-names wall,building,...]
 *
 * Label maps are PNGs whose stored sample values are the class ids (see src/io/label_png.ts for
 * what is accepted: grayscale 1-16 bit, palette indices, gray saved as RGB).
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SegMetricAccumulator, type SegMetrics } from '../src/evaluation/index.ts';
import { writeFileAtomic } from '../src/io/atomic_write.ts';
import { readLabelPng } from '../src/io/label_png.ts';
import { runCli } from './cli.ts';

/** stem → file name of every *.png in `dir`. */
async function listPngs(dir: string, flag: string): Promise<Map<string, string>> {
  const st = await stat(dir).catch(() => null);
  if (!st) throw new Error(`${flag} ${dir} does not exist`);
  if (!st.isDirectory()) throw new Error(`${flag} ${dir} is not a directory`);
  const stems = new Map<string, string>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !/\.png$/i.test(entry.name)) continue;
    const stem = entry.name.slice(0, -4);
    const other = stems.get(stem);
    if (other !== undefined) throw new Error(`${flag} ${dir} has two files with stem "${stem}": ${other} and ${entry.name}`);
    stems.set(stem, entry.name);
  }
  if (stems.size === 0) throw new Error(`${flag} ${dir} contains no .png files`);
  return stems;
}

function listSome(stems: string[], n = 5): string {
  return stems.slice(0, n).join(', ') + (stems.length > n ? `, ... (${stems.length} in all)` : '');
}

function toJson(m: SegMetrics): string {
  const num = (x: number): number | null => (Number.isNaN(x) ? null : x);
  const obj = {
    aAcc: num(m.aAcc),
    mIoU: num(m.mIoU),
    mAcc: num(m.mAcc),
    per_class: { IoU: m.perClass.IoU.map(num), Acc: m.perClass.Acc.map(num) },
  };
  return JSON.stringify(obj, null, 2) + '\n';
}

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 --pred-dir P --gt-dir G --num-classes K [--reduce-zero-label] [--ignore-index 255] [--json OUT] [--class-names a,b,c]')
    .option('pred-dir', { type: 'string', demandOption: true, describe: 'folder of predicted label-map PNGs' })
    .option('gt-dir', { type: 'string', demandOption: true, describe: 'folder of ground-truth label-map PNGs (same stems)' })
    .option('num-classes', { type: 'number', demandOption: true, describe: 'number of classes K (ids 0..K-1)' })
    .option('reduce-zero-label', { type: 'boolean', default: false, describe: 'GT 0 is ignored and k becomes k-1 (ADE20K style)' })
    .option('ignore-index', { type: 'number', default: 255, describe: 'GT value excluded from evaluation' })
    .option('json', { type: 'string', describe: 'also write the metrics (fractions, NaN as null) to this JSON file' })
    .option('class-names', { type: 'string', describe: 'comma-separated class names for the table' })
    .strict()
    .parse();
  const k = argv['num-classes'];
  if (!Number.isInteger(k) || k < 1) throw new Error(`--num-classes must be a positive integer, got ${k}`);
  const ignoreIndex = argv['ignore-index'];
  if (!Number.isInteger(ignoreIndex)) throw new Error(`--ignore-index must be an integer, got ${ignoreIndex}`);
  const classNames = argv['class-names']?.split(',').map((s) => s.trim());
  if (classNames && classNames.length !== k) {
    throw new Error(`--class-names has ${classNames.length} names but --num-classes is ${k}`);
  }

  const predDir = argv['pred-dir'];
  const gtDir = argv['gt-dir'];
  const [preds, gts] = await Promise.all([listPngs(predDir, '--pred-dir'), listPngs(gtDir, '--gt-dir')]);
  const noPred = [...gts.keys()].filter((s) => !preds.has(s)).sort();
  const noGt = [...preds.keys()].filter((s) => !gts.has(s)).sort();
  if (noPred.length || noGt.length) {
    const parts: string[] = [];
    if (noPred.length) parts.push(`no prediction in ${predDir} for ${noPred.length} ground-truth map(s): ${listSome(noPred)}`);
    if (noGt.length) parts.push(`no ground truth in ${gtDir} for ${noGt.length} prediction(s): ${listSome(noGt)}`);
    throw new Error(parts.join('; '));
  }

  const acc = new SegMetricAccumulator(k, { ignoreIndex, reduceZeroLabel: argv['reduce-zero-label'] });
  const stems = [...gts.keys()].sort();
  for (const stem of stems) {
    const predFile = path.join(predDir, preds.get(stem)!);
    const gtFile = path.join(gtDir, gts.get(stem)!);
    const [pred, gt] = await Promise.all([readLabelPng(predFile), readLabelPng(gtFile)]);
    if (pred.width !== gt.width || pred.height !== gt.height) {
      throw new Error(
        `${stem}: prediction ${predFile} is ${pred.width}x${pred.height} but ground truth ${gtFile} is ${gt.width}x${gt.height} (width x height)`,
      );
    }
    acc.add(pred.data, gt.data);
  }

  const counts = acc.pixelCounts();
  if (counts.predOutOfRange > 0) {
    console.warn(`warning: ${counts.predOutOfRange} evaluated pixels have a prediction outside 0..${k - 1}; they count as misses (MMSeg does the same)`);
  }
  if (counts.labelOutOfRange > 0) {
    console.warn(
      `warning: ${counts.labelOutOfRange} ground-truth pixels are outside 0..${k - 1} and not --ignore-index ${ignoreIndex}; ` +
        'MMSeg leaves them out of every label area (check --num-classes / --reduce-zero-label)',
    );
  }
  const metrics = acc.compute();
  console.log(`${stems.length} images, ${counts.total} pixels (${counts.ignored} ignored), ${k} classes`);
  console.log('per class results:');
  console.log(acc.perClassTable(classNames));
  if (argv.json) {
    await writeFileAtomic(argv.json, toJson(metrics));
    console.log(`wrote ${argv.json}`);
  }
});
