/**
 * Instance-segmentation demo, end to end on the synthetic shapes:
 *  1. generates `data/shapes` if it is missing (tools/make_shapes.ts defaults, seed 0);
 *  2. trains `configs/maskrcnn_c2f_shapes.yaml` with tools/train.ts into work_dirs/maskrcnn_c2f_shapes
 *     (`--quick`: the same recipe on a shorter schedule, into work_dirs/maskrcnn_c2f_shapes_quick);
 *  3. tests the checkpoint `latest.json` points to with tools/test.ts (COCO results, metrics JSON,
 *     overlays with boxes, class names, scores and masks);
 *  4. plots the training log with tools/plot_log.ts (losses; bbox and segm mAP).
 *
 *   npm run demo:det [-- --quick] [-- --max-iters 300 --backend wasm]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readCheckpointPointer } from '../src/engine/trainer.ts';
import { runCli } from './cli.ts';
import { DEMO_OPTIONS, ROOT, checkMaxIters, ensureShapes, runTool } from './demo_common.ts';
import { readJsonFileSync } from '../src/io/json_file.ts';

const CONFIG = 'configs/maskrcnn_c2f_shapes.yaml';
/** The quick schedule: the full one (1500 iterations, lr x0.1 at 1125 and 1350) scaled to this length. */
export const QUICK_ITERS = 900;

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 [--quick] [--max-iters N] [--backend NAME]')
    .option('quick', { type: 'boolean', default: false, describe: `the same recipe on a ${QUICK_ITERS}-iteration schedule (lr steps scaled)` })
    .options(DEMO_OPTIONS)
    .strict()
    .parse();
  const maxIters = checkMaxIters(argv['max-iters']);
  if (maxIters !== undefined && argv.quick) throw new Error('give --quick or --max-iters, not both');
  process.chdir(ROOT);
  await ensureShapes('instances');

  const work = argv.quick ? 'work_dirs/maskrcnn_c2f_shapes_quick' : 'work_dirs/maskrcnn_c2f_shapes';
  const options: string[] = [];
  if (argv.quick) {
    const at = (f: number) => Math.round(QUICK_ITERS * f);
    options.push(`schedule.max_iters=${QUICK_ITERS}`, `schedule.steps=[${at(0.75)},${at(0.9)}]`, `train.eval_interval=${QUICK_ITERS}`, `train.checkpoint_interval=${QUICK_ITERS}`);
  } else if (maxIters) {
    options.push(`schedule.max_iters=${maxIters}`);
  }
  const backend = argv.backend ? ['--backend', argv.backend] : [];
  runTool('train.ts', [CONFIG, '--work-dir', work, ...(options.length ? ['--cfg-options', ...options] : []), ...backend]);

  const latest = path.join(work, 'latest.json');
  if (!existsSync(latest)) throw new Error(`training wrote no ${latest}`);
  const ptr = readCheckpointPointer(latest);
  const weights = ptr.weightsPath;
  const overlays = path.join(work, 'overlays');
  const metrics = path.join(work, 'metrics.json');
  const results = path.join(work, 'results.json');
  runTool('test.ts', [CONFIG, weights, '--out', results, '--show-dir', overlays, '--metrics-out', metrics, ...backend]);

  const curves = path.join(work, 'curves.png');
  runTool('plot_log.ts', [path.join(work, 'log.jsonl'), '--out', curves, '--val-keys', 'bbox_mAP,segm_mAP']);

  const m = readJsonFileSync(metrics, 'metrics file') as Record<string, number | null>;
  const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : (100 * v).toFixed(1));
  console.log(`\ndone: bbox mAP ${pct(m['coco/bbox_mAP'])} (AP50 ${pct(m['coco/bbox_mAP_50'])})  segm mAP ${pct(m['coco/segm_mAP'])} (iter ${ptr.iter ?? '?'})`);
  console.log(`  checkpoint: ${weights}`);
  console.log(`  training log: ${path.join(work, 'log.jsonl')}`);
  console.log(`  results:    ${results} (COCO format)`);
  console.log(`  metrics:    ${metrics}`);
  console.log(`  overlays:   ${overlays}/`);
  console.log(`  curves:     ${curves}`);
});
