/**
 * Semantic-segmentation demo, end to end on the synthetic shapes:
 *  1. generates `data/shapes` if it is missing (tools/make_shapes.ts defaults, seed 0);
 *  2. trains `configs/upernet_c2f_shapes.yaml` with tools/train.ts into work_dirs/upernet_c2f_shapes;
 *  3. tests the checkpoint `latest.json` points to with tools/test.ts (metrics JSON + overlays);
 *  4. plots the training log with tools/plot_log.ts.
 *
 *   npm run demo:seg [-- --max-iters 300 --backend wasm]
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readCheckpointPointer } from '../src/engine/trainer.ts';
import { runCli } from './cli.ts';
import { DEMO_OPTIONS, ROOT, checkMaxIters, ensureShapes, runTool } from './demo_common.ts';
import { readJsonFileSync } from '../src/io/json_file.ts';

const CONFIG = 'configs/upernet_c2f_shapes.yaml';
const WORK = 'work_dirs/upernet_c2f_shapes';

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 [--max-iters N] [--backend NAME]')
    .options(DEMO_OPTIONS)
    .strict()
    .parse();
  const maxIters = checkMaxIters(argv['max-iters']);
  process.chdir(ROOT);

  await ensureShapes('semantic');

  const backend = argv.backend ? ['--backend', argv.backend] : [];
  runTool('train.ts', [CONFIG, '--work-dir', WORK, ...(maxIters ? ['--cfg-options', `schedule.max_iters=${maxIters}`] : []), ...backend]);

  const latest = path.join(WORK, 'latest.json');
  if (!existsSync(latest)) throw new Error(`training wrote no ${latest}`);
  const ptr = readCheckpointPointer(latest);
  const weights = ptr.weightsPath;
  const overlays = path.join(WORK, 'overlays');
  const metrics = path.join(WORK, 'metrics.json');
  runTool('test.ts', [CONFIG, weights, '--show-dir', overlays, '--metrics-out', metrics, ...backend]);

  const curves = path.join(WORK, 'curves.png');
  runTool('plot_log.ts', [path.join(WORK, 'log.jsonl'), '--out', curves]);

  const m = readJsonFileSync(metrics, 'metrics file') as { aAcc: number | null; mIoU: number | null; mAcc: number | null };
  const pct = (v: number | null) => (v === null ? 'nan' : (100 * v).toFixed(2));
  console.log(`\ndone: mIoU ${pct(m.mIoU)}  aAcc ${pct(m.aAcc)}  mAcc ${pct(m.mAcc)} (iter ${ptr.iter ?? '?'})`);
  console.log(`  checkpoint: ${weights}`);
  console.log(`  training log: ${path.join(WORK, 'log.jsonl')}`);
  console.log(`  metrics:    ${metrics}`);
  console.log(`  overlays:   ${overlays}/`);
  console.log(`  curves:     ${curves}`);
});
