/**
 * Semantic-segmentation demo, end to end on the synthetic shapes:
 *  1. generates `data/shapes` if it is missing (tools/make_shapes.ts defaults, seed 0);
 *  2. trains `configs/upernet_c2f_shapes.yaml` with tools/train.ts into work_dirs/upernet_c2f_shapes;
 *  3. tests the checkpoint `latest.json` points to with tools/test.ts (metrics JSON + overlays);
 *  4. plots the training log with tools/plot_log.ts.
 *
 *   npm run demo:seg [-- --max-iters 300 --backend wasm]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { SHAPES_GENERATOR_VERSION, generateShapes, readShapesStamp } from '../src/datasets/shapes.ts';
import { readCheckpointPointer } from '../src/engine/trainer.ts';
import { runCli } from './cli.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const CONFIG = 'configs/upernet_c2f_shapes.yaml';
const WORK = 'work_dirs/upernet_c2f_shapes';

/** Runs `tools/<tool>` with node + tsx, output shown live; throws when it fails. */
function runTool(tool: string, args: string[]): void {
  console.log(`\n$ npx tsx tools/${tool} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'tools', tool), ...args], { cwd: ROOT, stdio: 'inherit' });
  if (r.error) throw new Error(`cannot run tools/${tool}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`tools/${tool} failed (exit ${r.status ?? r.signal})`);
}

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 [--max-iters N] [--backend NAME]')
    .option('max-iters', { type: 'number', describe: 'training iterations (default: the config\'s schedule.max_iters)' })
    .option('backend', { type: 'string', describe: 'tfjs backend: auto, tensorflow-gpu, tensorflow, wasm, cpu' })
    .strict()
    .parse();
  const maxIters = argv['max-iters'];
  if (maxIters !== undefined && (!Number.isInteger(maxIters) || maxIters <= 0)) throw new Error(`--max-iters must be a positive integer, got ${maxIters}`);
  process.chdir(ROOT);

  const stamp = readShapesStamp(path.join('data', 'shapes'));
  const why = !stamp ? 'no data/shapes/shapes.json'
    : stamp.generator_version !== SHAPES_GENERATOR_VERSION ? `it was made by generator version ${stamp.generator_version}, this is ${SHAPES_GENERATOR_VERSION}`
    : !stamp.what.includes('semantic') ? 'it has no semantic set' : null;
  if (why) {
    console.log(`generating the shapes data set in data/shapes (${why}) ...`);
    await generateShapes({ out: 'data/shapes', seed: 0 });
  } else {
    console.log('using the existing data/shapes');
  }

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

  const m = JSON.parse(readFileSync(metrics, 'utf8')) as { aAcc: number | null; mIoU: number | null; mAcc: number | null };
  const pct = (v: number | null) => (v === null ? 'nan' : (100 * v).toFixed(2));
  console.log(`\ndone: mIoU ${pct(m.mIoU)}  aAcc ${pct(m.aAcc)}  mAcc ${pct(m.mAcc)} (iter ${ptr.iter ?? '?'})`);
  console.log(`  checkpoint: ${weights}`);
  console.log(`  training log: ${path.join(WORK, 'log.jsonl')}`);
  console.log(`  metrics:    ${metrics}`);
  console.log(`  overlays:   ${overlays}/`);
  console.log(`  curves:     ${curves}`);
});
