/**
 * Training throughput: seconds per iteration of
 * - `upernet`: the shapes UperNet recipe (`configs/upernet_c2f_shapes.yaml`: batch 4, 128x128 crops,
 *   its data pipeline, AdamW with its parameter groups), and
 * - `t224`: a Conv2Former-T training step at 224x224, batch 1 (loss: the stage outputs' mean
 *   squares; AdamW),
 * on wasm with 2 and 1 threads and on cpu, each configuration in its own process, with PyTorch on
 * the same machine in the same run as the reference (`/usr/bin/python3` with torch:
 * `../shared/reference/torch_upernet.py` on ONE thread for `upernet`, `bench/torch_t_step.py` on
 * 2 threads for `t224`). Then a profile of wasm with 2 threads: wall time per phase (data, forward,
 * backward, optimizer), the kernels' share of it and their count (the rest is JavaScript between
 * kernels), and the kernel types that cost most.
 *
 *   npm run bench:train [-- --iters 10 --rows upernet,t224 --configs wasm:2,wasm:1,cpu:1 --torch]
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { loadConfig } from '../src/config/load.ts';
import { createConv2Former } from '../src/backbone/conv2former.ts';
import { buildModel } from '../src/models/build.ts';
import { sumLosses, type Model } from '../src/models/model.ts';
import { buildLoadingDataset } from '../src/datasets/build.ts';
import { DataLoader, type Batch } from '../src/datasets/loader.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { buildParamGroups } from '../src/engine/param_groups.ts';
import { variableGradsFreeing } from '../src/nn/backprop.ts';
import type { Module } from '../src/nn/module.ts';
import { manualSeed } from '../src/nn/random.ts';
import { median } from './timing.ts';
import { KernelProfiler, kernelTotals, phaseTotals, type KernelProfile } from './kernel_profile.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED_REF = resolve(ROOT, '..', 'shared', 'reference');
const PHASES = ['data', 'forward', 'backward', 'optimizer'] as const;

const argv = await yargs(hideBin(process.argv))
  .option('iters', { type: 'number', default: 10, describe: 'timed iterations per row (after warm-up); cpu runs a third' })
  .option('rows', { type: 'string', default: 'upernet,t224' })
  .option('configs', { type: 'string', default: 'wasm:2,wasm:1,cpu:1', describe: 'backend:threads list' })
  .option('torch', { type: 'boolean', default: true, describe: 'run the PyTorch references (needs /usr/bin/python3 with torch)' })
  .option('profile', { type: 'boolean', default: true, describe: 'profile the first config' })
  .option('child', { type: 'string', hidden: true, describe: 'internal: run one backend:threads config and print JSON' })
  .strict()
  .parse();

interface RowResult {
  row: string;
  config: string;
  sPerIter: number;
  runs: number[];
  profile?: { iters: number; phases: Record<string, { wallMs: number; kernelMs: number; kernels: number }>; top: [string, number, number][] };
}

/** One training iteration of a row, its phases marked for the profiler. */
interface Stepper {
  step(p: KernelProfiler | null): Promise<void>;
  dispose(): void;
}

const phase = <T>(p: KernelProfiler | null, name: string, fn: () => T): T => (p ? p.phase(name, fn) : fn());

/** Forward (the model's losses), backward, optimizer step, as the trainer does them. */
function trainStep(p: KernelProfiler | null, module: Module, loss: () => tf.Scalar, opt: AdamW): void {
  const vars = module.trainableVariables();
  let forwardMs = 0;
  const t0 = performance.now();
  const { value, grads } = phase(p, 'backward', () => variableGradsFreeing(() => {
    const l = phase(p, 'forward', loss);
    forwardMs = performance.now() - t0;
    return l;
  }, vars));
  // The backward phase's wall time included the forward: move it.
  if (p) p.profile.wallMs.set('backward', p.profile.wallMs.get('backward')! - forwardMs);
  value.dataSync();
  phase(p, 'optimizer', () => opt.step(grads));
  tf.dispose([value, ...Object.values(grads)]);
}

async function upernetStepper(): Promise<Stepper> {
  const file = 'configs/upernet_c2f_shapes.yaml';
  const cfg = loadConfig(join(ROOT, file)) as {
    model: unknown; data: { train: unknown; batch_size: number; num_workers?: number };
    optimizer: { lr: number; weight_decay: number; betas?: [number, number]; eps?: number };
  };
  const model = (await buildModel(cfg.model, { file, log: () => {} })) as Model & Module;
  model.train();
  const ds = await buildLoadingDataset(cfg.data.train, { file, path: 'data.train' }, cfg.data.num_workers ?? 0);
  const loader = new DataLoader(ds, { batchSize: cfg.data.batch_size, shuffle: true, infinite: true, seed: 0 });
  const it = loader[Symbol.asyncIterator]();
  const o = cfg.optimizer;
  const opt = new AdamW(model, {
    lr: o.lr, weightDecay: o.weight_decay, betas: o.betas, eps: o.eps,
    paramGroups: buildParamGroups(model, { weightDecay: o.weight_decay }),
  });
  return {
    async step(p) {
      const t0 = performance.now();
      const next = await it.next();
      if (p) p.profile.wallMs.set('data', (p.profile.wallMs.get('data') ?? 0) + performance.now() - t0);
      const batch = next.value as Batch;
      trainStep(p, model, () => sumLosses(model.loss(batch)), opt);
      batch.dispose();
    },
    dispose() {
      void it.return?.(undefined);
      model.dispose();
      void ds.close?.();
    },
  };
}

function t224Stepper(): Stepper {
  const net = createConv2Former('t');
  net.train();
  const x = tf.randomNormal([1, 224, 224, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const opt = new AdamW(net, { lr: 1e-4, weightDecay: 0.05 });
  return {
    async step(p) {
      trainStep(p, net, () => tf.addN(net.forward(x).map((o) => tf.mean(tf.square(o)))) as tf.Scalar, opt);
    },
    dispose() {
      x.dispose();
      net.dispose();
    },
  };
}

function summarize(p: KernelProfile, iters: number): RowResult['profile'] {
  const phases: Record<string, { wallMs: number; kernelMs: number; kernels: number }> = {};
  for (const name of PHASES) {
    const k = phaseTotals(p, name);
    phases[name] = { wallMs: (p.wallMs.get(name) ?? 0) / iters, kernelMs: k.ms / iters, kernels: k.count / iters };
  }
  const top = kernelTotals(p).slice(0, 12).map(([k, s]) => [k, s.ms / iters, s.count / iters] as [string, number, number]);
  return { iters, phases, top };
}

async function runChild(config: string): Promise<void> {
  const [backend, threads] = config.split(':');
  await initBackend(backend, { quiet: true, wasmThreads: Number(threads) });
  const iters = backend === 'cpu' ? Math.max(1, Math.round(argv.iters / 3)) : argv.iters;
  for (const row of argv.rows.split(',')) {
    manualSeed(0);
    const stepper = row === 'upernet' ? await upernetStepper() : row === 't224' ? t224Stepper() : null;
    if (!stepper) throw new Error(`--rows: unknown row '${row}' (expected upernet, t224)`);
    await stepper.step(null);
    const runs: number[] = [];
    for (let i = 0; i < iters; i++) {
      const t0 = performance.now();
      await stepper.step(null);
      runs.push((performance.now() - t0) / 1000);
    }
    const result: RowResult = { row, config, sPerIter: median(runs), runs };
    if (argv.profile && backend !== 'cpu') {
      const profiler = new KernelProfiler();
      for (let i = 0; i < iters; i++) await stepper.step(profiler);
      result.profile = summarize(profiler.stop(), iters);
    }
    stepper.dispose();
    console.log(JSON.stringify(result));
  }
}

/** The PyTorch rows: s/iter of the references, or null where python/torch/the reference is missing. */
function torchRows(rows: string[]): Record<string, { sPerIter: number; threads: number } | string> {
  const out: Record<string, { sPerIter: number; threads: number } | string> = {};
  const python = '/usr/bin/python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    for (const r of rows) out[r] = `no PyTorch (${python} -c 'import torch' failed)`;
    return out;
  }
  if (rows.includes('upernet')) {
    const script = join(SHARED_REF, 'torch_upernet.py');
    const data = join(ROOT, 'data/shapes/ade');
    if (!existsSync(script) || !existsSync(data)) out.upernet = `needs ${script} and ${data}`;
    else {
      const n = 10 * (argv.iters + 2);
      const r = spawnSync(python, [script, '--data', data, '--iters', String(n), '--eval-interval', String(n + 1),
        '--log-interval', '10', '--threads', '1', '--seed', '0'], { encoding: 'utf8', cwd: ROOT });
      // The first window has the warm-up; the last one the end-of-run evaluation does not touch.
      const windows = [...r.stdout.matchAll(/iter (\d+)\/\d+ .* ([\d.]+) s\/iter/g)].map((m) => Number(m[2])).slice(1);
      out.upernet = windows.length > 0 ? { sPerIter: median(windows), threads: 1 } : `torch_upernet.py failed: ${r.stderr.slice(-300)}`;
    }
  }
  if (rows.includes('t224')) {
    const ref = join(SHARED_REF, 'conv2former_ref.py');
    if (!existsSync(ref)) out.t224 = `needs ${ref}`;
    else {
      const r = spawnSync(python, [join(ROOT, 'bench/torch_t_step.py'), '--ref', ref, '--threads', '2', '--iters', String(argv.iters)], { encoding: 'utf8' });
      const line = r.stdout.trim().split('\n').pop() ?? '';
      out.t224 = r.status === 0 ? { sPerIter: (JSON.parse(line) as { s_per_iter: number }).s_per_iter, threads: 2 } : `torch_t_step.py failed: ${r.stderr.slice(-300)}`;
    }
  }
  return out;
}

if (argv.child) {
  await runChild(argv.child);
} else {
  const rows = argv.rows.split(',');
  const results: RowResult[] = [];
  argv.configs.split(',').forEach((config, i) => {
    const args = ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', config, '--rows', argv.rows,
      '--iters', String(argv.iters), `--profile=${argv.profile && i === 0}`];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`bench:train: the ${config} run failed (exit ${r.status})`);
    for (const line of r.stdout.split('\n')) if (line.startsWith('{')) results.push(JSON.parse(line) as RowResult);
  });
  const torch = argv.torch ? torchRows(rows) : {};
  console.log('\n| row | config | s/iter | PyTorch s/iter (threads) | ratio |');
  console.log('|---|---|---|---|---|');
  for (const r of results) {
    const t = torch[r.row];
    const ref = typeof t === 'object' ? `${t.sPerIter.toFixed(3)} (${t.threads})` : (t ?? '');
    const ratio = typeof t === 'object' ? `${(r.sPerIter / t.sPerIter).toFixed(2)}x` : '';
    console.log(`| ${r.row} | ${r.config} | ${r.sPerIter.toFixed(3)} | ${ref} | ${ratio} |`);
  }
  for (const r of results.filter((x) => x.profile)) {
    const p = r.profile!;
    console.log(`\nProfile: ${r.row} on ${r.config}, per iteration (mean of ${p.iters}):`);
    console.log('| phase | wall ms | kernel ms | kernels | JS between kernels ms |');
    console.log('|---|---|---|---|---|');
    for (const [name, s] of Object.entries(p.phases)) {
      console.log(`| ${name} | ${s.wallMs.toFixed(1)} | ${s.kernelMs.toFixed(1)} | ${s.kernels.toFixed(0)} | ${(s.wallMs - s.kernelMs).toFixed(1)} |`);
    }
    console.log('\n| kernel | ms/iter | calls/iter | mean µs |');
    console.log('|---|---|---|---|');
    for (const [k, ms, n] of p.top) console.log(`| ${k} | ${ms.toFixed(1)} | ${n.toFixed(0)} | ${((1000 * ms) / n).toFixed(0)} |`);
  }
}
