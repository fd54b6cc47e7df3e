/**
 * `EvalHook`: every `interval` iterations and at the last one, evaluates (model in eval mode, back
 * to train mode after), appends a `{mode: 'val', iter, ...metrics}` row to `log.jsonl`, prints the
 * metrics, and when `bestMetric` (higher is better) beats `trainer.best`, names this iteration's
 * checkpoint (saving one first if there is none yet) in `best.json`.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic_write.ts';
import { stateFileOf } from '../checkpointer.ts';
import type { Hook, IterContext, TrainerApi } from './hook.ts';
import { appendLogRow } from './logger_hook.ts';
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

  async afterIter({ trainer, iter }: IterContext): Promise<void> {
    if (iter % this.opts.interval === 0 || iter === trainer.maxIters) await this.evaluate(trainer);
  }

  /** Evaluates now, logs the metrics and updates `best.json`; returns the metrics. */
  async evaluate(trainer: TrainerApi): Promise<Record<string, number>> {
    trainer.model.eval();
    let metrics: Record<string, number>;
    try {
      metrics = await this.opts.evaluate();
    } finally {
      trainer.model.train();
    }
    appendLogRow(trainer.workDir, { mode: 'val', iter: trainer.iter, ...metrics });
    trainer.log(`eval iter ${trainer.iter}: ${Object.entries(metrics).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    const key = this.opts.bestMetric;
    if (key && key in metrics && Number.isFinite(metrics[key]) && (!trainer.best || metrics[key] > trainer.best.value!)) {
      if (trainer.lastCheckpointIter !== trainer.iter) await trainer.saveCheckpoint();
      const weights = trainer.lastCheckpoint!;
      trainer.best = { iter: trainer.iter, weights, state: stateFileOf(weights), metric: key, value: metrics[key] };
      await writeFileAtomic(join(trainer.workDir, 'best.json'), JSON.stringify(trainer.best, null, 2) + '\n');
      trainer.log(`new best ${key} ${fmt(metrics[key])} at iter ${trainer.iter}`);
    }
    return metrics;
  }
}
