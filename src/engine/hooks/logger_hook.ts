/**
 * `LoggerHook`: every `interval` iterations (and at the last one) appends a row of window averages
 * to `workDir/log.jsonl` and prints the matching human line. A fresh run starts its own log: an
 * earlier run's `log.jsonl` is moved aside to `log.<mtime>.jsonl`, not appended to. A resumed run
 * first drops the rows of the iterations it redoes (after its checkpoint's), and continues the
 * checkpoint's averaging window, so its log reads as the uninterrupted run's.
 *
 * Row keys, in order: `iter, lr, loss, <forwardTrain outputs>, grad_norm, time, data_time, eta_s,
 * num_tensors[, worker_tensors][, num_skipped]`; `lr` and `grad_norm` are the last iteration's,
 * `num_skipped` the bad samples skipped so far (when any), the others averages over the iterations
 * since the previous row.
 */
import * as tf from '@tensorflow/tfjs';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic_write.ts';
import { faultPoint } from '../../util/fault_points.ts';
import { moveAside } from '../checkpointer.ts';
import type { Hook, IterContext, RunContext } from './hook.ts';
import { fmt, fmtDuration } from './format.ts';

/** Appends one JSON row to `workDir/log.jsonl`. */
export function appendLogRow(workDir: string, row: Record<string, unknown>): void {
  appendFileSync(join(workDir, 'log.jsonl'), JSON.stringify(row) + '\n');
  faultPoint('log:row');
}

/** The rows of `workDir/log.jsonl` ([] when absent); a line cut by a crash is left out. */
export function readLogRows(workDir: string): Record<string, unknown>[] {
  const path = join(workDir, 'log.jsonl');
  if (!existsSync(path)) return [];
  const rows: Record<string, unknown>[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      rows.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a partial last line */
    }
  }
  return rows;
}

/** Keeps the rows of `log.jsonl` up to iteration `iter` (a resume redoes the later ones). */
async function truncateLog(workDir: string, iter: number): Promise<void> {
  const path = join(workDir, 'log.jsonl');
  if (!existsSync(path)) return;
  const keep = readLogRows(workDir).filter((r) => typeof r.iter === 'number' && r.iter <= iter);
  await writeFileAtomic(path, keep.map((r) => JSON.stringify(r) + '\n').join(''));
}

export interface LoggerHookOptions {
  /** Log every n iterations (default 50); always at the last one. */
  interval?: number;
  /** Clear a `\r` progress line on stdout before printing (set when `ProgressHook` runs). */
  clearProgressLine?: boolean;
}

interface Window {
  n: number;
  time: number;
  data: number;
  parts: Record<string, number>;
}

const emptyWindow = (): Window => ({ n: 0, time: 0, data: 0, parts: {} });

export class LoggerHook implements Hook {
  readonly interval: number;
  private readonly clearProgressLine: boolean;
  private window = emptyWindow();
  private runStart = 0;

  constructor(opts: LoggerHookOptions = {}) {
    this.interval = opts.interval ?? 50;
    this.clearProgressLine = opts.clearProgressLine ?? false;
  }

  async beforeRun({ trainer, fresh, startIter }: RunContext): Promise<void> {
    if (!trainer.writes) return;
    if (fresh) {
      moveAside(trainer.workDir, 'log.jsonl');
      this.window = emptyWindow();
    } else {
      await truncateLog(trainer.workDir, startIter);
    }
    this.runStart = performance.now();
  }

  stateDict(): Window {
    return { ...this.window, parts: { ...this.window.parts } };
  }

  loadStateDict(state: unknown): void {
    const w = state as Partial<Window>;
    if (typeof w?.n === 'number' && typeof w.parts === 'object') this.window = { n: w.n, time: w.time ?? 0, data: w.data ?? 0, parts: { ...w.parts } };
  }

  afterIter(ctx: IterContext): void {
    const { trainer, iter } = ctx;
    if (!trainer.writes) return;
    const w = this.window;
    w.n++;
    w.time += ctx.time;
    w.data += ctx.dataTime;
    w.parts.loss = (w.parts.loss ?? 0) + ctx.loss;
    for (const [k, v] of Object.entries(ctx.parts)) w.parts[k] = (w.parts[k] ?? 0) + v;
    if (iter % this.interval !== 0 && iter !== trainer.maxIters) return;

    const avg = (k: string) => w.parts[k] / w.n;
    const timePer = w.time / w.n;
    const elapsedPer = (performance.now() - this.runStart) / 1000 / (iter - ctx.startIter);
    const eta = elapsedPer * (trainer.maxIters - iter);
    const numTensors = tf.memory().numTensors;
    const partKeys = Object.keys(w.parts).filter((k) => k !== 'loss');
    const rec: Record<string, number> = { iter, lr: ctx.lr, loss: avg('loss') };
    for (const k of partKeys) rec[k] = avg(k);
    Object.assign(rec, { grad_norm: ctx.gradNorm, time: timePer, data_time: w.data / w.n, eta_s: eta, num_tensors: numTensors });
    if (ctx.workerTensors !== undefined) rec.worker_tensors = ctx.workerTensors;
    if (ctx.numSkipped) rec.num_skipped = ctx.numSkipped;
    appendLogRow(trainer.workDir, rec);
    const partsStr = partKeys.map((k) => `${k} ${fmt(avg(k))}`).join(', ');
    if (this.clearProgressLine) process.stdout.write('\r\x1b[K');
    trainer.log(`iter ${iter}/${trainer.maxIters}  lr ${ctx.lr.toExponential(3)}  loss ${fmt(avg('loss'))}${partsStr ? ` (${partsStr})` : ''}` +
      `  ${timePer.toFixed(3)} s/iter  data ${(w.data / w.n).toFixed(3)} s  ETA ${fmtDuration(eta)}  tensors ${numTensors}` +
      (ctx.workerTensors !== undefined ? ` (workers ${ctx.workerTensors})` : ''));
    this.window = emptyWindow();
  }
}
