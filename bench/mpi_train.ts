/**
 * Distributed training throughput: images/s of the shapes UperNet (batch 4 per rank) for 1, 2 and 4
 * MPI ranks on this machine, each rank on the wasm backend with 1 thread (1 rank: also with 2), from
 * the trainer's own s/iter (median of the logged rows after the first). Needs the MPI addon
 * (`npm run build:mpi`) and `mpirun`.
 *
 *   npm run bench:mpi-train [-- --iters 30 --ranks 1,2,4]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { generateShapes } from '../src/datasets/shapes.ts';
import { median } from './timing.ts';

const argv = await yargs(hideBin(process.argv))
  .option('iters', { type: 'number', default: 30 })
  .option('ranks', { type: 'string', default: '1,2,4' })
  .option('batch', { type: 'number', default: 4, describe: 'images per rank per step' })
  .strict()
  .parse();
const root = path.resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'c2f-bench-mpi-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const made = await generateShapes({ out: path.join(tmp, 'data'), train: 64, val: 2, what: ['semantic'], log: () => {} });
const cfg = path.join(tmp, 'cfg.yaml');
writeFileSync(cfg, JSON.stringify({
  _base_: path.join(root, 'configs/upernet_c2f_shapes.yaml'),
  data: { num_workers: 0, batch_size: argv.batch, train: { img_dir: made.semantic!.train.images, ann_dir: made.semantic!.train.annotations },
    val: { img_dir: made.semantic!.val.images, ann_dir: made.semantic!.val.annotations } },
  schedule: { max_iters: argv.iters },
  train: { eval_interval: 100000, checkpoint_interval: 100000, log_interval: 1 },
}));

function run(ranks: number, threads: number): number {
  const work = path.join(tmp, `w${ranks}_${threads}`);
  const train = [process.execPath, '--import', 'tsx', path.join(root, 'tools/train.ts'), cfg, '--work-dir', work];
  const cmd = ranks === 1 ? train : ['mpirun', '--allow-run-as-root', '--oversubscribe', '--bind-to', 'none', '-np', String(ranks), ...train, '--launcher', 'mpi'];
  const r = spawnSync(cmd[0], cmd.slice(1), { cwd: root, encoding: 'utf8', env: { ...process.env, C2F_BACKEND: 'wasm', C2F_WASM_THREADS: String(threads) } });
  if (r.status !== 0) throw new Error(`${cmd.join(' ')} failed:\n${r.stderr}`);
  const times = readFileSync(path.join(work, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { time?: number })
    .filter((x) => typeof x.time === 'number').slice(1).map((x) => x.time!);
  return median(times);
}

console.log(`shapes UperNet, batch ${argv.batch} per rank, ${argv.iters} iterations, ${os.availableParallelism()} cores`);
for (const ranks of argv.ranks.split(',').map(Number)) {
  for (const threads of ranks === 1 ? [1, 2] : [1]) {
    const s = run(ranks, threads);
    console.log(`${ranks} rank(s) x ${threads} thread(s): ${s.toFixed(3)} s/step, ${(argv.batch * ranks / s).toFixed(1)} images/s`);
  }
}
