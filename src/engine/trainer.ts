/**
 * Iteration-based trainer (MMEngine `Runner`-like): a small loop, side concerns as hooks.
 *
 * Per iteration `i` (0-based; hooks, logs and checkpoint names see the 1-based count of finished
 * iterations, as MMCV): call `beforeIter`, set `optimizer.lr = lrAt(i, schedule)`, draw `accumulate`
 * batches, sum the gradients of the summed `*loss*` outputs (from `gradients`: this thread, or
 * `DataParallel` threads) and divide by `accumulate`, clip them to a global norm of `gradClip`
 * (torch `clip_grad_norm_`: scale by `max / (norm + 1e-6)` when that is < 1), take one optimizer
 * step, dispose every temporary (the tensor count stays flat), then call `afterIter`.
 *
 * The default hooks, built from the options, in order: `ProgressHook` (when `progress`),
 * `LoggerHook`, `CheckpointHook`, `EvalHook` (when `evaluate` and `evalInterval`), the caller's
 * `hooks`, `InterruptHook`. So at one iteration the checkpoint is written before evaluation.
 *
 * `resume()` restores weights, optimizer state, iteration, `globalRng`, loader state, the hooks'
 * state and `best`, so the resumed run continues exactly: same lr, same next batch, same DropPath
 * masks, same log rows. A fresh run moves an earlier run's `latest.json`/`best.json` aside.
 * Checkpoint files are described in `checkpointer.ts`.
 */
import * as tf from '@tensorflow/tfjs';
import { float32Buffer } from '../kernels/host.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed } from '../nn/random.ts';
import { faultPoint } from '../util/fault_points.ts';
import type { DataLoader } from '../datasets/loader.ts';
import type { Optimizer } from './optimizer.ts';
import { lrAt, type LrScheduleConfig } from './lr_schedule.ts';
import { localGradients, type GradientSource, type TrainableModel } from './gradients.ts';
import { Checkpointer, type CheckpointPointer } from './checkpointer.ts';
import { allGatherJson, type ProcessGroup } from './process_group.ts';
import type { Hook, IterContext, RunContext, TrainerApi } from './hooks/hook.ts';
import { defaultHooks } from './hooks/defaults.ts';

export type { TrainableModel } from './gradients.ts';
export { readCheckpointPointer, type CheckpointPointer, type TrainerState } from './checkpointer.ts';
export type { Hook, IterContext, RunContext, TrainerApi } from './hooks/hook.ts';
export { defaultHooks } from './hooks/defaults.ts';

export interface TrainerOptions {
  model: TrainableModel;
  loader: DataLoader;
  optimizer: Optimizer;
  schedule: LrScheduleConfig;
  /** Iteration to stop at (training runs iterations `iter .. maxIters-1`). */
  maxIters: number;
  workDir: string;
  /** Log every n iterations (default 50). */
  logInterval?: number;
  /** Checkpoint every n iterations (default 1000); always at the end. */
  checkpointInterval?: number;
  evalInterval?: number;
  evaluate?: () => Promise<Record<string, number>>;
  /** Metric of `evaluate` to track for `best.json` (higher is better), e.g. 'mIoU'. */
  bestMetric?: string;
  /** Max global gradient norm (null/undefined: no clipping). */
  gradClip?: number | null;
  /** Batches per optimiser step (default 1). */
  accumulate?: number;
  /** Where batch gradients come from (default: this thread; `DataParallel` for several CPU threads). */
  gradients?: GradientSource;
  /** Seeds `globalRng` when a fresh (not resumed) run starts at iteration 0. */
  seed: number;
  /** The model config block: stored in checkpoints, and a resume with a different one is refused. */
  modelConfig?: unknown;
  /** Bad training samples skipped so far (logged as `num_skipped` when > 0). */
  numSkipped?: () => number;
  /**
   * Distributed training (one process of `size`, e.g. under MPI): rank 0 alone writes checkpoints,
   * `best.json` and the log; checkpoints hold every rank's data-loader state; interrupts are agreed.
   */
  dist?: ProcessGroup;
  /** Receives the human-readable lines (default `console.log`). */
  log?: (line: string) => void;
  /** `\r` progress line on stdout (default: stdout is a TTY and `log` is not given). */
  progress?: boolean;
  /** On SIGINT: after saving, `process.exit(130)` (default true) or return from `run()`. */
  exitOnInterrupt?: boolean;
  /** Extra hooks, called after the default ones and before `InterruptHook`. */
  hooks?: Hook[];
}

export interface RunResult {
  iter: number;
  interrupted: boolean;
}

/** What one optimiser step did (before the iteration count moves on). */
interface StepResult {
  lr: number;
  loss: number;
  parts: Record<string, number>;
  gradNorm: number;
  dataTime: number;
}

export class Trainer implements TrainerApi {
  /** Finished iterations. */
  iter = 0;
  best: CheckpointPointer | null = null;
  readonly model: TrainableModel;
  readonly optimizer: Optimizer;
  readonly maxIters: number;
  readonly workDir: string;
  readonly hooks: Hook[];
  private readonly opts: TrainerOptions;
  private readonly gradients: GradientSource;
  private readonly checkpointer: Checkpointer;
  private resumed = false;
  private stopRequested = false;

  constructor(opts: TrainerOptions) {
    if (!Number.isInteger(opts.maxIters) || opts.maxIters < 0) throw new Error(`Trainer: maxIters must be a non-negative integer, got ${opts.maxIters}`);
    const acc = opts.accumulate ?? 1;
    if (!Number.isInteger(acc) || acc < 1) throw new Error(`Trainer: accumulate must be a positive integer, got ${acc}`);
    this.opts = opts;
    ({ model: this.model, optimizer: this.optimizer, maxIters: this.maxIters, workDir: this.workDir } = opts);
    this.gradients = opts.gradients ?? localGradients(opts.model, opts.optimizer.variables);
    this.checkpointer = new Checkpointer(opts.workDir, opts);
    this.hooks = defaultHooks(opts);
    mkdirSync(opts.workDir, { recursive: true });
  }

  /** File name (in workDir) of the last checkpoint written or resumed from. */
  get lastCheckpoint(): string | null {
    return this.checkpointer.lastCheckpoint;
  }

  get lastCheckpointIter(): number {
    return this.checkpointer.lastCheckpointIter;
  }

  /** Prints a human-readable line through the `log` option (default `console.log`). */
  log(line: string): void {
    (this.opts.log ?? console.log)(line);
  }

  /** Makes `run()` return (interrupted) once the current iteration's hooks are done. */
  stop(): void {
    this.stopRequested = true;
  }

  /** Trains until `maxIters` (or a hook calls `stop()`); returns the finished iteration count. */
  async run(): Promise<RunResult> {
    const fresh = this.iter === 0 && !this.resumed;
    if (fresh) {
      manualSeed(this.opts.seed);
      if (this.writes) this.checkpointer.startFresh((line) => this.log(line));
    }
    this.model.train();
    this.stopRequested = false;
    const run: RunContext = { trainer: this, fresh, startIter: this.iter };
    try {
      for (const h of this.hooks) await h.beforeRun?.(run);
      while (this.iter < this.maxIters) {
        for (const h of this.hooks) await h.beforeIter?.(run);
        const t0 = performance.now();
        const step = await this.step();
        this.iter++;
        faultPoint('train:step');
        const time = (performance.now() - t0) / 1000;
        const ctx: IterContext = { ...run, ...step, iter: this.iter, time, workerTensors: this.gradients.workerTensors, numSkipped: this.opts.numSkipped?.() };
        for (const h of this.hooks) await h.afterIter?.(ctx);
        if (this.stopRequested) return { iter: this.iter, interrupted: true };
      }
      return { iter: this.iter, interrupted: false };
    } finally {
      for (const h of this.hooks) await h.afterRun?.(run);
    }
  }

  /** One optimiser step at iteration `this.iter` (0-based): lr, accumulated gradients, clip, update. */
  private async step(): Promise<StepResult> {
    const { loader, optimizer, schedule, gradClip } = this.opts;
    const accumulate = this.opts.accumulate ?? 1;
    const lr = lrAt(this.iter, schedule);
    optimizer.lr = lr;
    let grads: Record<string, tf.Tensor> | null = null;
    const parts: Record<string, number> = {};
    let dataMs = 0;
    let loss = 0;
    for (let k = 0; k < accumulate; k++) {
      const td = performance.now();
      const batch = await loader.nextBatch();
      dataMs += performance.now() - td;
      if (!batch) throw new Error('Trainer: the data loader ran out of batches (use an infinite loader)');
      try {
        const r = await this.gradients.compute(batch);
        for (const [key, v] of Object.entries(r.parts)) parts[key] = (parts[key] ?? 0) + v / accumulate;
        loss += r.total / accumulate;
        grads = grads ? addGrads(grads, r.grads) : r.grads;
      } finally {
        batch.dispose();
      }
    }
    let g = grads!;
    if (!Number.isFinite(loss)) {
      tf.dispose(g);
      const where = this.lastCheckpoint ? join(this.workDir, this.lastCheckpoint) : 'none (no checkpoint was written yet)';
      throw new Error(`loss is ${Number.isNaN(loss) ? 'NaN' : 'Inf'} at iter ${this.iter + 1}; the last good checkpoint is ${where}`);
    }
    if (accumulate > 1) g = mapGrads(g, (t) => tf.div(t, accumulate));
    const gradNorm = globalNorm(g);
    if (gradClip != null && gradClip > 0) {
      const coef = gradClip / (gradNorm + 1e-6);
      if (coef < 1) g = mapGrads(g, (t) => tf.mul(t, coef));
    }
    optimizer.step(g);
    tf.dispose(g);
    return { lr, loss, parts, gradNorm, dataTime: dataMs / 1000 };
  }

  /** Writes `iter_<n>.safetensors`, `iter_<n>_state.safetensors`, then `latest.json`; returns the weights path. */
  async saveCheckpoint(): Promise<string> {
    const hooks: Record<string, unknown> = {};
    for (const h of this.hooks) if (h.stateDict) hooks[h.constructor.name] = h.stateDict();
    return this.checkpointer.save(this.iter, hooks);
  }

  /** This training run's id (kept across resumes; in every checkpoint). */
  get runId(): string {
    return this.checkpointer.runId;
  }

  get writes(): boolean {
    return !this.opts.dist || this.opts.dist.rank === 0;
  }

  async anyRank(flag: boolean): Promise<boolean> {
    const dist = this.opts.dist;
    if (!dist || dist.size === 1) return flag;
    return (await allGatherJson(dist, flag)).some(Boolean);
  }

  /**
   * Restores weights, optimizer state, iteration, `globalRng`, loader state, the hooks' state and
   * `best` (from the `best.json` beside the weights), after checking that the weights and state
   * files belong together and match `seed` and `modelConfig` (see checkpointer.ts).
   * @param path `latest.json`/`best.json`-style pointer, or an `iter_<n>.safetensors` weights file
   *   (its `_state` file beside it); default `workDir/latest.json`.
   */
  async resume(path?: string): Promise<void> {
    const { iter, best, hooks } = await this.checkpointer.resume(path);
    this.iter = iter;
    this.resumed = true;
    this.best = best;
    for (const h of this.hooks) if (h.loadStateDict && hooks[h.constructor.name] !== undefined) h.loadStateDict(hooks[h.constructor.name]);
  }
}

/** `a + b` per name (a name in only one of them is copied); disposes `a` and `b`. */
function addGrads(a: Record<string, tf.Tensor>, b: Record<string, tf.Tensor>): Record<string, tf.Tensor> {
  const next: Record<string, tf.Tensor> = {};
  for (const [name, g] of Object.entries(b)) next[name] = a[name] ? tf.add(a[name], g) : tf.clone(g);
  for (const [name, g] of Object.entries(a)) if (!next[name]) next[name] = tf.clone(g);
  tf.dispose(a);
  tf.dispose(b);
  return next;
}

/** `fn` of every gradient, by name; disposes `grads`. */
function mapGrads(grads: Record<string, tf.Tensor>, fn: (t: tf.Tensor) => tf.Tensor): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [name, t] of Object.entries(grads)) out[name] = fn(t);
  tf.dispose(grads);
  return out;
}

/** sqrt(sum of squares) over all gradients, as a JS number. */
export function globalNorm(grads: Record<string, tf.Tensor>): number {
  // On cpu/wasm: one pass over each gradient's memory (float64 sums) instead of two kernels per tensor.
  const views = Object.values(grads).map((t) => float32Buffer(t, false));
  if (views.length > 0 && views.every((v) => v !== null)) {
    let s = 0;
    for (const v of views as Float32Array[]) for (let i = 0; i < v.length; i++) s += v[i] * v[i];
    return Math.sqrt(s);
  }
  return tf.tidy(() => {
    const sq = Object.values(grads).map((t) => tf.sum(tf.square(t)));
    if (sq.length === 0) return 0;
    return Math.sqrt(tf.addN(sq).dataSync()[0]);
  });
}
