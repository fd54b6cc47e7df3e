/**
 * Iteration-based trainer (MMCV `IterBasedRunner`-like).
 *
 * Per iteration `i` (0-based; logs and checkpoint names use the 1-based count of finished
 * iterations, as MMCV): set `optimizer.lr = lrAt(i, schedule)`, draw `accumulate` batches, sum the
 * gradients of the summed `*loss*` outputs (from `gradients`: this thread, or `DataParallel`
 * threads) and divide by `accumulate`, clip them to a global norm
 * of `gradClip` (torch `clip_grad_norm_`: scale by `max / (norm + 1e-6)` when that is < 1), take one
 * AdamW step and dispose every temporary (the tensor count stays flat).
 *
 * Checkpoints (`workDir/iter_<n>.safetensors` = model weights with PyTorch keys, and
 * `workDir/iter_<n>_state.safetensors` = AdamW moments keyed `exp_avg.<param>`/`exp_avg_sq.<param>`
 * with the trainer state — iteration, step count, `globalRng` state, data-loader state — as JSON in
 * the metadata entry `trainer_state`) are written atomically, then `latest.json` naming them is
 * written atomically, so `latest.json` always points at complete files. `best.json` names the
 * checkpoint with the best `bestMetric` returned by `evaluate`.
 *
 * `resume()` restores all of that so the resumed run continues exactly: same lr, same next batch,
 * same DropPath masks.
 */
import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, readFileSync, appendFileSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadCheckpoint } from '../nn/checkpoint.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { writeFileAtomic } from '../io/atomic_write.ts';
import { globalRng, manualSeed, type RngState } from '../nn/random.ts';
import type { DataLoader, DataLoaderState } from '../datasets/loader.ts';
import type { AdamW } from './adamw.ts';
import { lrAt, type LrScheduleConfig } from './lr_schedule.ts';
import { localGradients, type GradientSource, type TrainableModel } from './gradients.ts';

export type { TrainableModel } from './gradients.ts';

export interface TrainerOptions {
  model: TrainableModel;
  loader: DataLoader;
  optimizer: AdamW;
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
  /** Receives the human-readable lines (default `console.log`). */
  log?: (line: string) => void;
  /** `\r` progress line on stdout (default: stdout is a TTY and `log` is not given). */
  progress?: boolean;
  /** On SIGINT: after saving, `process.exit(130)` (default true) or return from `run()`. */
  exitOnInterrupt?: boolean;
}

/** What `latest.json` / `best.json` hold. */
export interface CheckpointPointer {
  iter: number;
  weights: string;
  state: string;
  metric?: string;
  value?: number;
}

/**
 * Reads a checkpoint pointer (`latest.json`, `best.json`) and returns the absolute paths of the
 * weights and state files it names. Errors name the pointer and what is wrong with it.
 */
export function readCheckpointPointer(pointerPath: string): CheckpointPointer & { weightsPath: string; statePath: string } {
  let ptr: CheckpointPointer;
  try {
    ptr = JSON.parse(readFileSync(pointerPath, 'utf8')) as CheckpointPointer;
  } catch (e) {
    throw new Error(`checkpoint pointer ${pointerPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof ptr?.weights !== 'string') throw new Error(`checkpoint pointer ${pointerPath} has no 'weights' file name`);
  const weightsPath = resolve(dirname(pointerPath), ptr.weights);
  if (!existsSync(weightsPath)) throw new Error(`checkpoint pointer ${pointerPath} names ${weightsPath}, which does not exist`);
  const statePath = resolve(dirname(pointerPath), typeof ptr.state === 'string' ? ptr.state : stateFileOf(ptr.weights));
  return { ...ptr, weightsPath, statePath };
}

/** The JSON stored in the state file's `trainer_state` metadata. */
export interface TrainerState {
  iter: number;
  stepCount: number;
  rng: RngState;
  loader: DataLoaderState;
  seed: number;
}

export interface RunResult {
  iter: number;
  interrupted: boolean;
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(sec).padStart(2, '0')}s`;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4).replace(/\.?0+$/, '') || '0' : v.toExponential(3);
}

export class Trainer {
  /** Finished iterations. */
  iter = 0;
  /** File name (in workDir) of the last checkpoint written or resumed from. */
  lastCheckpoint: string | null = null;
  best: CheckpointPointer | null = null;
  private readonly opts: TrainerOptions;
  private resumed = false;
  private stopRequested = false;
  private lastCheckpointIter = -1;

  constructor(opts: TrainerOptions) {
    if (!Number.isInteger(opts.maxIters) || opts.maxIters < 0) throw new Error(`Trainer: maxIters must be a non-negative integer, got ${opts.maxIters}`);
    const acc = opts.accumulate ?? 1;
    if (!Number.isInteger(acc) || acc < 1) throw new Error(`Trainer: accumulate must be a positive integer, got ${acc}`);
    this.opts = opts;
    mkdirSync(opts.workDir, { recursive: true });
  }

  private get logFn(): (line: string) => void {
    return this.opts.log ?? ((l) => console.log(l));
  }

  /** Trains until `maxIters`; returns the finished iteration count. */
  async run(): Promise<RunResult> {
    const o = this.opts;
    const { model, loader, optimizer } = o;
    const logInterval = o.logInterval ?? 50;
    const ckptInterval = o.checkpointInterval ?? 1000;
    const accumulate = o.accumulate ?? 1;
    const gradients = o.gradients ?? localGradients(model, optimizer.variables);
    const progress = o.progress ?? (Boolean(process.stdout.isTTY) && !o.log);
    const logPath = join(o.workDir, 'log.jsonl');
    if (this.iter === 0 && !this.resumed) {
      manualSeed(o.seed);
      // A fresh run keeps its own log: an earlier run's is moved aside, not appended to.
      if (existsSync(logPath)) renameSync(logPath, join(o.workDir, `log.${statSync(logPath).mtime.toISOString().replace(/[:.]/g, '-')}.jsonl`));
    }
    model.train();

    this.stopRequested = false;
    const onSigint = () => {
      this.stopRequested = true;
    };
    process.on('SIGINT', onSigint);
    let window: { n: number; time: number; data: number; parts: Record<string, number> } = { n: 0, time: 0, data: 0, parts: {} };
    const startIter = this.iter;
    const runStart = performance.now();
    try {
      while (this.iter < o.maxIters) {
        const t0 = performance.now();
        const lr = lrAt(this.iter, o.schedule);
        optimizer.lr = lr;
        let grads: Record<string, tf.Tensor> | null = null;
        const parts: Record<string, number> = {};
        let dataMs = 0;
        let total = 0;
        for (let k = 0; k < accumulate; k++) {
          const td = performance.now();
          const batch = await loader.nextBatch();
          dataMs += performance.now() - td;
          if (!batch) throw new Error('Trainer: the data loader ran out of batches (use an infinite loader)');
          try {
            const r = await gradients.compute(batch);
            for (const [key, v] of Object.entries(r.parts)) parts[key] = (parts[key] ?? 0) + v / accumulate;
            total += r.total / accumulate;
            if (!grads) grads = r.grads;
            else {
              const prev: Record<string, tf.Tensor> = grads;
              const next: Record<string, tf.Tensor> = {};
              for (const [name, g] of Object.entries(r.grads)) next[name] = prev[name] ? tf.add(prev[name], g) : tf.clone(g);
              for (const [name, g] of Object.entries(prev)) if (!next[name]) next[name] = tf.clone(g);
              tf.dispose(prev);
              tf.dispose(r.grads);
              grads = next;
            }
          } finally {
            batch.dispose();
          }
        }
        let g = grads!;
        if (!Number.isFinite(total)) {
          tf.dispose(g);
          const where = this.lastCheckpoint ? join(o.workDir, this.lastCheckpoint) : 'none (no checkpoint was written yet)';
          throw new Error(`loss is ${Number.isNaN(total) ? 'NaN' : 'Inf'} at iter ${this.iter + 1}; the last good checkpoint is ${where}`);
        }
        if (accumulate > 1) {
          const avg: Record<string, tf.Tensor> = {};
          for (const [name, t] of Object.entries(g)) avg[name] = tf.div(t, accumulate);
          tf.dispose(g);
          g = avg;
        }
        const gradNorm = globalNorm(g);
        if (o.gradClip != null && o.gradClip > 0) {
          const coef = o.gradClip / (gradNorm + 1e-6);
          if (coef < 1) {
            const clipped: Record<string, tf.Tensor> = {};
            for (const [name, t] of Object.entries(g)) clipped[name] = tf.mul(t, coef);
            tf.dispose(g);
            g = clipped;
          }
        }
        optimizer.step(g);
        tf.dispose(g);
        this.iter++;

        const dt = (performance.now() - t0) / 1000;
        window.n++;
        window.time += dt;
        window.data += dataMs / 1000;
        window.parts.loss = (window.parts.loss ?? 0) + total;
        for (const [k, v] of Object.entries(parts)) window.parts[k] = (window.parts[k] ?? 0) + v;

        if (progress) {
          const width = 30;
          const done = Math.round((width * this.iter) / o.maxIters);
          process.stdout.write(`\r[${'#'.repeat(done)}${'.'.repeat(width - done)}] ${this.iter}/${o.maxIters} loss ${fmt(total)}`);
        }
        if (this.iter % logInterval === 0 || this.iter === o.maxIters) {
          const avg = (k: string) => window.parts[k] / window.n;
          const timePer = window.time / window.n;
          const elapsedPer = (performance.now() - runStart) / 1000 / (this.iter - startIter);
          const eta = elapsedPer * (o.maxIters - this.iter);
          const numTensors = tf.memory().numTensors;
          const partKeys = Object.keys(window.parts).filter((k) => k !== 'loss');
          const rec: Record<string, number> = { iter: this.iter, lr, loss: avg('loss') };
          for (const k of partKeys) rec[k] = avg(k);
          Object.assign(rec, { grad_norm: gradNorm, time: timePer, data_time: window.data / window.n, eta_s: eta, num_tensors: numTensors });
          if (gradients.workerTensors !== undefined) rec.worker_tensors = gradients.workerTensors;
          appendFileSync(logPath, JSON.stringify(rec) + '\n');
          const partsStr = partKeys.map((k) => `${k} ${fmt(avg(k))}`).join(', ');
          if (progress) process.stdout.write('\r\x1b[K');
          this.logFn(`iter ${this.iter}/${o.maxIters}  lr ${lr.toExponential(3)}  loss ${fmt(avg('loss'))}${partsStr ? ` (${partsStr})` : ''}` +
            `  ${timePer.toFixed(3)} s/iter  data ${(window.data / window.n).toFixed(3)} s  ETA ${fmtDuration(eta)}  tensors ${numTensors}` +
            (gradients.workerTensors !== undefined ? ` (workers ${gradients.workerTensors})` : ''));
          window = { n: 0, time: 0, data: 0, parts: {} };
        }
        if (this.iter % ckptInterval === 0 || this.iter === o.maxIters) await this.saveCheckpoint();
        if (o.evaluate && o.evalInterval && (this.iter % o.evalInterval === 0 || this.iter === o.maxIters)) await this.runEval();
        if (this.stopRequested) {
          if (this.lastCheckpointIter !== this.iter) await this.saveCheckpoint();
          this.logFn(`interrupted at iter ${this.iter}; saved ${join(o.workDir, this.lastCheckpoint!)}`);
          if (o.exitOnInterrupt ?? true) {
            process.removeListener('SIGINT', onSigint);
            process.exit(130);
          }
          return { iter: this.iter, interrupted: true };
        }
      }
      return { iter: this.iter, interrupted: false };
    } finally {
      if (progress) process.stdout.write('\n');
      process.removeListener('SIGINT', onSigint);
    }
  }

  private async runEval(): Promise<void> {
    const o = this.opts;
    o.model.eval();
    let metrics: Record<string, number>;
    try {
      metrics = await o.evaluate!();
    } finally {
      o.model.train();
    }
    appendFileSync(join(o.workDir, 'log.jsonl'), JSON.stringify({ mode: 'val', iter: this.iter, ...metrics }) + '\n');
    this.logFn(`eval iter ${this.iter}: ${Object.entries(metrics).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    const key = o.bestMetric;
    if (key && key in metrics && Number.isFinite(metrics[key]) && (!this.best || metrics[key] > this.best.value!)) {
      if (this.lastCheckpointIter !== this.iter) await this.saveCheckpoint();
      const weights = this.lastCheckpoint!;
      this.best = { iter: this.iter, weights, state: stateFileOf(weights), metric: key, value: metrics[key] };
      await writeFileAtomic(join(o.workDir, 'best.json'), JSON.stringify(this.best, null, 2) + '\n');
      this.logFn(`new best ${key} ${fmt(metrics[key])} at iter ${this.iter}`);
    }
  }

  /** Writes `iter_<n>.safetensors`, `iter_<n>_state.safetensors`, then `latest.json`; returns the weights path. */
  async saveCheckpoint(): Promise<string> {
    const o = this.opts;
    const weights = `iter_${this.iter}.safetensors`;
    const state = stateFileOf(weights);
    await writeSafetensors(join(o.workDir, weights), o.model.stateDict(), { iter: String(this.iter) });
    const opt = o.optimizer.state();
    const ts: TrainerState = { iter: this.iter, stepCount: opt.stepCount, rng: globalRng.getState(), loader: o.loader.state(), seed: o.seed };
    await writeSafetensors(join(o.workDir, state), opt.tensors, { trainer_state: JSON.stringify(ts) });
    const ptr: CheckpointPointer = { iter: this.iter, weights, state };
    await writeFileAtomic(join(o.workDir, 'latest.json'), JSON.stringify(ptr, null, 2) + '\n');
    this.lastCheckpoint = weights;
    this.lastCheckpointIter = this.iter;
    return join(o.workDir, weights);
  }

  /**
   * Restores weights, optimizer moments and step count, iteration, `globalRng` and loader state.
   * @param path `latest.json`/`best.json`-style pointer, or an `iter_<n>.safetensors` weights file
   *   (its `_state` file beside it); default `workDir/latest.json`.
   */
  async resume(path?: string): Promise<void> {
    const o = this.opts;
    path ??= join(o.workDir, 'latest.json');
    if (!existsSync(path)) throw new Error(`cannot resume: ${path} does not exist`);
    let weightsPath: string, statePath: string;
    if (path.endsWith('.json')) {
      ({ weightsPath, statePath } = readCheckpointPointer(path));
    } else {
      weightsPath = path;
      statePath = join(dirname(path), stateFileOf(basename(path)));
    }
    await loadCheckpoint(o.model, weightsPath);
    const st = await readSafetensors(statePath);
    const raw = st.metadata.trainer_state;
    if (!raw) throw new Error(`cannot resume: ${statePath} has no trainer_state metadata`);
    const ts = JSON.parse(raw) as TrainerState;
    o.optimizer.loadState({ stepCount: ts.stepCount, tensors: st.tensors });
    globalRng.setState(ts.rng);
    o.loader.restore(ts.loader);
    this.iter = ts.iter;
    this.resumed = true;
    this.lastCheckpoint = basename(weightsPath);
    this.lastCheckpointIter = ts.iter;
    const bestPath = join(dirname(weightsPath), 'best.json');
    if (existsSync(bestPath)) this.best = JSON.parse(readFileSync(bestPath, 'utf8')) as CheckpointPointer;
  }
}

function stateFileOf(weights: string): string {
  return weights.replace(/\.safetensors$/, '') + '_state.safetensors';
}

/** sqrt(sum of squares) over all gradients, as a JS number. */
export function globalNorm(grads: Record<string, tf.Tensor>): number {
  return tf.tidy(() => {
    const sq = Object.values(grads).map((t) => tf.sum(tf.square(t)));
    if (sq.length === 0) return 0;
    return Math.sqrt(tf.addN(sq).dataSync()[0]);
  });
}
