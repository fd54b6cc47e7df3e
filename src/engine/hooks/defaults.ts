/** The trainer's default hooks, built from its options. */
import type { TrainerOptions } from '../trainer.ts';
import type { Hook } from './hook.ts';
import { ProgressHook } from './progress_hook.ts';
import { LoggerHook } from './logger_hook.ts';
import { CheckpointHook } from './checkpoint_hook.ts';
import { EvalHook } from './eval_hook.ts';
import { InterruptHook } from './interrupt_hook.ts';

/**
 * The hook list `Trainer` runs for `opts`, in order: `ProgressHook` (when `progress`; default: stdout
 * is a TTY and no `log` is given), `LoggerHook`, `CheckpointHook`, `EvalHook` (when `evaluate` and
 * `evalInterval`), `opts.hooks`, `InterruptHook`.
 */
export function defaultHooks(opts: TrainerOptions): Hook[] {
  const progress = opts.progress ?? (Boolean(process.stdout.isTTY) && !opts.log);
  const hooks: Hook[] = [];
  if (progress) hooks.push(new ProgressHook());
  hooks.push(new LoggerHook({ interval: opts.logInterval, clearProgressLine: progress }));
  hooks.push(new CheckpointHook(opts.checkpointInterval));
  if (opts.evaluate && opts.evalInterval) {
    hooks.push(new EvalHook({ evaluate: opts.evaluate, interval: opts.evalInterval, bestMetric: opts.bestMetric }));
  }
  hooks.push(...(opts.hooks ?? []));
  // Distributed: the save on a signal needs every rank; a dead one must not keep this one forever.
  hooks.push(new InterruptHook(opts.exitOnInterrupt ?? true, opts.dist && opts.dist.size > 1 ? 30_000 : undefined));
  return hooks;
}
