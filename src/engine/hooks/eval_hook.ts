/**
 * `EvalHook`: every `interval` iterations and at the last one, evaluates (model in eval mode, back
 * to train mode after); when `bestMetric` (higher is better) beats `trainer.best`, names this
 * iteration's checkpoint (saving one first if there is none yet) in `best.json`; then appends a
 * `{mode: 'val', iter, ...metrics}` row to `log.jsonl` and prints the metrics.
 *
 * The log row is written last: it marks the evaluation done. A run resumed at an evaluation point
 * whose row is missing (killed during that evaluation) evaluates before it continues, so the final
 * evaluation and `best.json` are never lost to a crash.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic_write.ts';
import { faultPoint } from '../../util/fault_points.ts';
import { stateFileOf } from '../checkpointer.ts';
import type { Hook, IterContext, RunContext, TrainerApi } from './hook.ts';
import { appendLogRow, readLogRows } from './logger_hook.ts';
import { fmt } from './format.ts';

export interface EvalHookOptions {
  evaluate: () => Promise<Record<string, number>>;
  /** Evaluate every n iterations; always at `maxIters`. */
  interval: number;
  /** Metric of `evaluate` to track for `best.json`, e.g. 'mIoU' (none: no best.json). */
  bestMetric?: string;
}

export class EvalHook implements Hook {
  constructor(private readonly opts: EvalHookOptions) {}

  private due(trainer: TrainerApi, iter: number): boolean {
    return iter > 0 && (iter % this.opts.interval === 0 || iter === trainer.maxIters);
  }

  async beforeRun({ trainer, fresh, startIter }: RunContext): Promise<void> {
    if (fresh || !this.due(trainer, startIter)) return;
    if (readLogRows(trainer.workDir).some((r) => r.mode === 'val' && r.iter === startIter)) return;
    trainer.log(`the evaluation of iter ${startIter} did not finish before the run stopped; evaluating now`);
    await this.evaluate(trainer);
  }

  async afterIter({ trainer, iter }: IterContext): Promise<void> {
    if (this.due(trainer, iter)) await this.evaluate(trainer);
  }

  /** Evaluates now, updates `best.json`, logs the metrics; returns them. */
  async evaluate(trainer: TrainerApi): Promise<Record<string, number>> {
    trainer.model.eval();
    let metrics: Record<string, number>;
    try {
      metrics = await this.opts.evaluate();
    } finally {
      trainer.model.train();
    }
    faultPoint('eval:metrics');
    const key = this.opts.bestMetric;
    let newBest = false;
    if (key && key in metrics && Number.isFinite(metrics[key]) && (!trainer.best || metrics[key] > trainer.best.value!)) {
      if (trainer.lastCheckpointIter !== trainer.iter) await trainer.saveCheckpoint();
      const weights = trainer.lastCheckpoint!;
      trainer.best = { iter: trainer.iter, weights, state: stateFileOf(weights), run_id: trainer.runId, metric: key, value: metrics[key] };
      if (trainer.writes) await writeFileAtomic(join(trainer.workDir, 'best.json'), JSON.stringify(trainer.best, null, 2) + '\n');
      newBest = true;
      faultPoint('eval:best');
    }
    if (!trainer.writes) return metrics;
    appendLogRow(trainer.workDir, { mode: 'val', iter: trainer.iter, ...metrics });
    trainer.log(`eval iter ${trainer.iter}: ${Object.entries(metrics).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    if (newBest) trainer.log(`new best ${key} ${fmt(metrics[key!])} at iter ${trainer.iter}`);
    return metrics;
  }
}
