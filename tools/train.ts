/**
 * Trains a model from an experiment config (MMSeg `tools/train.py`-like).
 *
 *   npx tsx tools/train.ts configs/upernet_c2f_shapes.yaml [--work-dir DIR] [--resume [CKPT]]
 *     [--cfg-options schedule.max_iters=100 data.batch_size=4 ...] [--backend auto|wasm|cpu|...]
 *
 * - `schedule.max_epochs` (MMDet recipes; `by_epoch: true` puts `steps` in epochs) becomes iterations
 *   with floor(len(train set) / (batch_size * accumulate)) iterations per epoch; `schedule.max_iters`
 *   caps any schedule, epoch-based ones included.
 *
 * - The merged config (bases + --cfg-options) is validated, then dumped to `<work-dir>/config.yaml`.
 *   The work dir defaults to the config's `work_dir`, else `work_dirs/<config stem>`.
 * - `--resume` alone resumes from `<work-dir>/latest.json` (starting afresh when the work dir has no
 *   checkpoint yet); `--resume CKPT` from a pointer JSON or an `iter_<n>.safetensors` file. Lr, data
 *   order, RNG and the log continue exactly; a weights/state pair that was not written together, or a
 *   seed or model config that differs from the checkpoint's, is refused.
 * - One run per work dir: `<work-dir>/.lock` names the running process; a second run fails naming it
 *   (a lock left by a crashed run is taken over).
 * - Bad samples (unreadable image or label) are skipped and counted: the end of training prints
 *   `skipped N of M samples (first: FILE: cause)` per split and the log rows carry `num_skipped`;
 *   `--strict-data` makes any bad sample an error. Before the first iteration every file of both
 *   splits is checked for existence and one validation sample is loaded.
 * - `train.data_parallel: N` (> 1) trains N model replicas on N threads, each on a slice of every batch
 *   (wasm/cpu backends, which use one core each; ignored on the native ones).
 * - `--launcher mpi` (started by `mpirun -np N` / `srun --mpi=pmix`): data-parallel training over N
 *   processes: `data.batch_size` per rank, each rank its shard of every step's draws, gradients
 *   all-reduced in 25 MB buckets and averaged, `train.sync_bn: true` (or `norm_cfg: {type: SyncBN}`)
 *   statistics over all ranks, sharded evaluation, rank 0 writes; a failing rank stops the job.
 * - Every `train.eval_interval` iterations (and at the end) the model is evaluated on `data.val` with
 *   its `model.test_cfg` by the `val_evaluator` (default by the model's task); `train.best_metric`
 *   (default the evaluator's: mIoU, bbox_mAP) is tracked in `best.json`; the final metrics are
 *   printed at the end.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, extname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/backend.ts';
import { EXPERIMENT_OPEN_PATHS, dumpConfig, loadConfig, validateExperimentConfig, type ExperimentConfig } from '../src/config/index.ts';
import { buildLoadingDataset } from '../src/datasets/build.ts';
import { checkDataset } from '../src/datasets/check.ts';
import { skipSummary } from '../src/datasets/dataset.ts';
import { readLogRows } from '../src/engine/hooks/logger_hook.ts';
import { acquireWorkDirLock } from '../src/engine/work_dir_lock.ts';
import { localGradients } from '../src/engine/gradients.ts';
import type { ProcessGroup } from '../src/engine/process_group.ts';
import { AllReducedGradients, broadcastState, convertSyncBatchNorm, shareLossCounts } from '../src/dist/distributed.ts';
import { loadMpi, type Mpi } from '../src/dist/mpi.ts';
import { DataLoader } from '../src/datasets/loader.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { evaluateModel } from '../src/engine/evaluate.ts';
import { itersPerEpoch, resolveSchedule, type LrScheduleConfig, type ResolvedSchedule } from '../src/engine/lr_schedule.ts';
import { buildParamGroups } from '../src/engine/param_groups.ts';
import { DataParallel } from '../src/engine/data_parallel.ts';
import { Trainer } from '../src/engine/trainer.ts';
import { buildEvaluator } from '../src/evaluation/build.ts';
import { buildValidatedModel, validateModelConfig } from '../src/models/build.ts';
import { runCli } from './cli.ts';

function fmtMetric(v: number): string {
  return Number.isNaN(v) ? 'nan' : (100 * v).toFixed(2);
}

/** The lr schedule of the validated `schedule:` block in iterations (linear warmup when warmup_iters > 0). */
export function scheduleOf(cfg: ExperimentConfig, baseLr: number, resolved: ResolvedSchedule): LrScheduleConfig {
  const s = cfg.schedule;
  return {
    policy: s.policy,
    base_lr: baseLr,
    max_iters: resolved.scheduleIters,
    power: s.power,
    min_lr: s.min_lr,
    steps: resolved.steps,
    gamma: s.gamma,
    warmup: resolved.warmupIters > 0 ? 'linear' : null,
    warmup_iters: resolved.warmupIters,
    warmup_ratio: s.warmup_ratio,
  };
}

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 CONFIG [--work-dir DIR] [--resume [CKPT]] [--cfg-options k=v ...] [--backend NAME]')
    .command('$0 <config>', 'train a model from a config', (y) => y.positional('config', { type: 'string', describe: 'experiment config (YAML)' }))
    .option('work-dir', { type: 'string', describe: 'output folder (default: work_dir of the config, else work_dirs/<config stem>)' })
    .option('resume', { type: 'string', describe: 'resume from <work-dir>/latest.json, or from the given pointer/weights file' })
    .option('cfg-options', { type: 'string', array: true, describe: 'overrides a.b.c=value applied after merging the bases' })
    .option('backend', { type: 'string', default: 'auto', describe: 'tfjs backend: auto, tensorflow-gpu, tensorflow, wasm, cpu (auto honours C2F_BACKEND)' })
    .option('strict-data', { type: 'boolean', default: false, describe: 'a bad sample (unreadable image/label) is an error instead of being skipped' })
    .option('launcher', { type: 'string', choices: ['none', 'mpi'], default: 'none', describe: 'mpi: one process per rank, started by mpirun/srun (data.batch_size per rank)' })
    .strict()
    .parse();
  // MPI first: every message below can then say which rank it comes from.
  const mpi = argv.launcher === 'mpi' ? loadMpi() : null;
  // One rank per GPU with tfjs-node-gpu: each rank sees the GPU of its local rank (unless told otherwise).
  if (mpi && mpi.localSize > 1) process.env.CUDA_VISIBLE_DEVICES ??= String(mpi.localRank);
  const dist = mpi && mpi.size > 1 ? mpi : undefined;
  try {
    await train(argv, mpi, dist);
  } catch (e) {
    // The rank and cause; runCli's exit(1) then makes mpirun stop every rank (MPI_Abort's message can get lost).
    if (dist) (e as Error).message = `rank ${dist.rank} of ${dist.size}: ${(e as Error).message}`;
    throw e;
  }
  await mpi?.finalize();
});

interface TrainArgs {
  config?: unknown;
  'work-dir'?: string;
  resume?: string;
  'cfg-options'?: string[];
  backend: string;
  'strict-data': boolean;
}

async function train(argv: TrainArgs, mpi: Mpi | null, dist: ProcessGroup | undefined): Promise<void> {
  const cfgPath = argv.config as string;
  const raw = loadConfig(cfgPath, { cfgOptions: argv['cfg-options'] ?? [], openPaths: EXPERIMENT_OPEN_PATHS });
  const cfg = validateExperimentConfig(raw, cfgPath);
  // The whole model block is checked before any data is scanned.
  const modelBlock = validateModelConfig(cfg.model, cfgPath);

  const workDir = argv['work-dir'] ?? cfg.work_dir ?? join('work_dirs', basename(cfgPath, extname(cfgPath)));
  // Data-parallel threads take the cores themselves: then the wasm backend gets no pool of its own.
  await initBackend(argv.backend, (cfg.train.data_parallel ?? 1) > 1 ? { wasmThreads: 1 } : {});

  // Build everything before writing anything, so a bad config leaves no half-made work dir.
  // Rank 0 alone speaks (its log rows hold every rank's averaged losses).
  const log = (line: string) => { if (!dist || dist.rank === 0) console.log(line); };
  // data.num_workers threads load the samples (0: this thread).
  const workers = cfg.data.num_workers ?? 0;
  const strictData = argv['strict-data'];
  const dataOverrides = strictData ? { on_bad_sample: 'error' } : {};
  const trainSet = await buildLoadingDataset(cfg.data.train, { file: cfgPath, path: 'data.train' }, workers, dataOverrides);
  const valSet = await buildLoadingDataset(cfg.data.val, { file: cfgPath, path: 'data.val' }, workers, dataOverrides);
  // Found now, not at the first evaluation after hours of training.
  await checkDataset(trainSet, { name: `data.train of ${cfgPath}`, strict: strictData, maxLoads: 0, log });
  await checkDataset(valSet, { name: `data.val of ${cfgPath}`, strict: strictData, log });
  const model = await buildValidatedModel(modelBlock, { file: cfgPath, log });
  const evaluator = buildEvaluator(cfg.val_evaluator, { task: model.task, dataset: valSet, numClasses: model.numClasses, file: cfgPath });
  const bestMetric = cfg.train.best_metric ?? evaluator.defaultBestMetric;

  const seed = cfg.train.seed ?? 0;
  const loader = new DataLoader(trainSet, { batchSize: cfg.data.batch_size, shuffle: true, infinite: true, seed, ...(dist ? { shard: dist } : {}) });
  // Epochs become iterations here, once: one iteration = one optimiser step over `accumulate` batches.
  const accumulate = cfg.train.accumulate ?? 1;
  const schedule = resolveSchedule(cfg.schedule, itersPerEpoch(trainSet.length, cfg.data.batch_size, accumulate));
  const opt = cfg.optimizer;
  if (opt.type !== 'AdamW') throw new Error(`${cfgPath}: optimizer.type: only AdamW is implemented, got '${opt.type}'`);
  const pw = opt.paramwise_cfg;
  const paramGroups = buildParamGroups(model, {
    weightDecay: opt.weight_decay,
    layerDecayRate: pw?.layer_decay_rate,
    decayType: pw?.decay_type,
    numLayers: pw?.num_layers,
  });
  const optimizer = new AdamW(model, {
    lr: opt.lr,
    weightDecay: opt.weight_decay,
    betas: opt.betas as [number, number] | undefined,
    eps: opt.eps,
    paramGroups,
  });

  let last: { iter: number; metrics: Record<string, number> } | null = null;
  // Distributed: each rank predicts its shard of the validation set; the metrics come from the union.
  const evalOnce = async (): Promise<Record<string, number>> => (await evaluateModel(model, valSet, evaluator, { log, ...(dist ? { shard: dist } : {}) })).metrics;
  let trainer: Trainer | null = null;
  const evaluate = async (): Promise<Record<string, number>> => {
    const metrics = await evalOnce();
    last = { iter: trainer?.iter ?? -1, metrics };
    return metrics;
  };

  let replicas = cfg.train.data_parallel ?? 1;
  if (replicas > 1 && !DataParallel.helpsOn(tf.getBackend())) {
    log(`train.data_parallel ${replicas} ignored: the '${tf.getBackend()}' backend already uses every core`);
    replicas = 1;
  }
  if (replicas > availableParallelism()) log(`note: train.data_parallel ${replicas} > ${availableParallelism()} CPU cores; the threads will share them`);
  let dataParallel: DataParallel | null = null;
  if (replicas > 1) {
    dataParallel = await DataParallel.start(model, optimizer.variables, { workers: replicas, modelConfig: cfg.model, file: cfgPath });
  }

  if (mpi && dist) {
    if (replicas > 1) throw new Error(`${cfgPath}: train.data_parallel ${replicas} and --launcher mpi do not combine; use more ranks instead`);
    await broadcastState(model, mpi);
    const synced = convertSyncBatchNorm(model, mpi, cfg.train.sync_bn ?? false);
    const counted = shareLossCounts(model, mpi) ? '; loss normalisers over the global batch' : '';
    log(`mpi: ${dist.size} ranks, global batch ${cfg.data.batch_size * dist.size}; ${synced} BatchNorm layer(s) synced across ranks${counted}`);
  } else if (cfg.train.sync_bn && mpi) {
    log('train.sync_bn: one rank, nothing to sync');
  }
  mkdirSync(workDir, { recursive: true });
  if (!dist || dist.rank === 0) {
    acquireWorkDirLock(workDir, log);
    await dumpConfig(raw, join(workDir, 'config.yaml'));
  }
  trainer = new Trainer({
    model,
    loader,
    optimizer,
    schedule: scheduleOf(cfg, opt.lr, schedule),
    maxIters: schedule.maxIters,
    workDir,
    logInterval: cfg.train.log_interval,
    checkpointInterval: cfg.train.checkpoint_interval,
    evalInterval: cfg.train.eval_interval,
    evaluate,
    bestMetric,
    gradClip: cfg.train.grad_clip ?? null,
    accumulate,
    gradients: dataParallel ?? (mpi && dist ? new AllReducedGradients(localGradients(model, optimizer.variables), mpi) : undefined),
    dist,
    seed,
    modelConfig: cfg.model,
    numSkipped: () => trainSet.badSamples,
    log,
  });
  if (argv.resume !== undefined) {
    const from = argv.resume === '' ? undefined : argv.resume;
    if (from === undefined && !existsSync(join(workDir, 'latest.json'))) {
      log(`no checkpoint in ${workDir} to resume from (latest.json); starting at iteration 0`);
    } else {
      await trainer.resume(from);
      log(`resumed from ${from ?? join(workDir, 'latest.json')} at iter ${trainer.iter} (run ${trainer.runId})`);
    }
  }
  const epochs = cfg.schedule.max_epochs !== undefined ? ` (${cfg.schedule.max_epochs} epochs of ${schedule.itersPerEpoch} iters${schedule.maxIters < schedule.scheduleIters ? ', capped by max_iters' : ''})` : '';
  const params = model.namedParameters().reduce((n, [, p]) => n + p.variable.size, 0);
  log(`training ${modelBlock.type} (${(params / 1e6).toFixed(2)}M parameters) on ${trainSet.length} images, ` +
    `batch ${cfg.data.batch_size}${replicas > 1 ? ` on ${replicas} threads` : ''}, iters ${trainer.iter} -> ${schedule.maxIters}${epochs}; work dir ${workDir}`);
  let result;
  try {
    result = await trainer.run();
  } finally {
    await dataParallel?.close();
  }
  if (result.iter > 0) {
    // The trainer evaluates at max_iters; report that: this run's, the log's (resumed after it), or a new one.
    const done = last as { iter: number; metrics: Record<string, number> } | null;
    if (done === null || done.iter !== result.iter) {
      const row = readLogRows(workDir).find((r) => r.mode === 'val' && r.iter === result.iter);
      const { mode: _mode, iter: _iter, ...logged } = row ?? {};
      if (row) last = { iter: result.iter, metrics: logged as Record<string, number> };
      else {
        model.eval();
        last = { iter: result.iter, metrics: await evalOnce() };
      }
    }
    const m = (last as { metrics: Record<string, number> }).metrics;
    log(`final (iter ${result.iter}): ${Object.entries(m).map(([k, v]) => `${k} ${fmtMetric(v)}`).join('  ')}` +
      (trainer.best ? `  (best ${bestMetric} ${fmtMetric(trainer.best.value!)} at iter ${trainer.best.iter})` : ''));
    for (const [name, ds] of [['data.train', trainSet], ['data.val', valSet]] as const) {
      const skips = skipSummary(ds);
      if (skips) log(`${name}: ${skips}`);
    }
    const pointers = ['latest.json', 'best.json'].filter((f) => existsSync(join(workDir, f)));
    log(`checkpoints in ${workDir} (${pointers.join(', ')})`);
  }
  await Promise.all([trainSet.close?.(), valSet.close?.()]);
}
