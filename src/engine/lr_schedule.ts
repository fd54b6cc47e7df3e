/**
 * Iteration-based learning-rate schedules with MMCV `LrUpdaterHook` semantics (by_epoch=False).
 *
 * `iter` is 0-based: the first optimiser step uses `lrAt(0, cfg)`, exactly like MMCV where
 * `before_train_iter` reads `runner.iter` (0 for the first iteration) — so with linear warmup the
 * first step runs at `regular_lr * warmup_ratio`.
 *
 * Warmup (MMCV `get_warmup_lr`, linear): while `iter < warmup_iters`,
 * `lr = regular_lr(iter) * (1 - (1 - iter / warmup_iters) * (1 - warmup_ratio))`
 * `    = regular_lr(iter) * (warmup_ratio + (1 - warmup_ratio) * iter / warmup_iters)`.
 * Note: MMCV warms up the *regular* (already decayed) lr, not the base lr; for poly with
 * warmup_iters << max_iters the difference is tiny, but we follow MMCV exactly.
 *
 * Policies (progress = iter, max_progress = max_iters):
 * - `poly`:   `(base - min_lr) * (1 - iter / max_iters) ** power + min_lr`
 * - `step`:   `base * gamma ** k`, k = number of `steps` milestones <= iter (int `steps`: iter // steps),
 *             clamped below at `min_lr` when given
 * - `cosine`: `min_lr + 0.5 * (base - min_lr) * (1 + cos(pi * iter / max_iters))`
 * - `fixed`:  `base`
 *
 * Epoch-based `schedule:` blocks (MMDet recipes) become iterations in {@link resolveSchedule}.
 */
import type { ScheduleBlock } from '../config/experiment.ts';

export interface LrScheduleConfig {
  policy: 'poly' | 'step' | 'cosine' | 'fixed';
  base_lr: number;
  /** Length of the poly/cosine schedule. */
  max_iters?: number;
  /** poly exponent (default 1). */
  power?: number;
  /** Floor of poly/cosine/step (default 0). */
  min_lr?: number;
  /** step milestones (iterations) or a period. */
  steps?: number[] | number;
  /** step factor (default 0.1). */
  gamma?: number;
  warmup?: 'linear' | 'constant' | null;
  warmup_iters?: number;
  /** Starting fraction of the lr (MMCV default 0.1). */
  warmup_ratio?: number;
}

function needMax(cfg: LrScheduleConfig): number {
  if (!cfg.max_iters || cfg.max_iters <= 0) throw new Error(`lr schedule '${cfg.policy}' needs max_iters > 0`);
  return cfg.max_iters;
}

/** The regular (no warmup) lr at 0-based iteration `iter`. */
export function regularLr(iter: number, cfg: LrScheduleConfig): number {
  const base = cfg.base_lr;
  const minLr = cfg.min_lr ?? 0;
  switch (cfg.policy) {
    case 'fixed':
      return base;
    case 'poly': {
      const coeff = (1 - iter / needMax(cfg)) ** (cfg.power ?? 1);
      return (base - minLr) * coeff + minLr;
    }
    case 'cosine': {
      const f = iter / needMax(cfg);
      return minLr + 0.5 * (base - minLr) * (1 + Math.cos(Math.PI * f));
    }
    case 'step': {
      const steps = cfg.steps ?? [];
      let k: number;
      if (typeof steps === 'number') k = Math.floor(iter / steps);
      else {
        k = steps.length;
        for (let i = 0; i < steps.length; i++) if (iter < steps[i]) { k = i; break; }
      }
      const lr = base * (cfg.gamma ?? 0.1) ** k;
      return cfg.min_lr !== undefined ? Math.max(lr, cfg.min_lr) : lr;
    }
    default:
      throw new Error(`unknown lr policy '${(cfg as { policy: string }).policy}'`);
  }
}

/** The lr of the optimiser step at 0-based iteration `iter` (warmup included). */
export function lrAt(iter: number, cfg: LrScheduleConfig): number {
  const regular = regularLr(iter, cfg);
  const warmupIters = cfg.warmup_iters ?? 0;
  if (!cfg.warmup || iter >= warmupIters) return regular;
  const ratio = cfg.warmup_ratio ?? 0.1;
  if (cfg.warmup === 'constant') return regular * ratio;
  return regular * (1 - (1 - iter / warmupIters) * (1 - ratio));
}

/**
 * Linear warmup from 0 then cosine decay to 0 over `total` steps; `step` counts from 1 (the demo's
 * schedule; unlike {@link lrAt}, warmup starts at 0 and ramps the base lr, not the regular one).
 */
export function warmupCosineLr(baseLr: number, step: number, warmup: number, total: number): number {
  if (step <= warmup) return (baseLr * step) / warmup;
  const t = (step - warmup) / Math.max(1, total - warmup);
  return 0.5 * baseLr * (1 + Math.cos(Math.PI * Math.min(1, t)));
}

/**
 * Optimiser steps in one epoch: `max(1, floor(datasetLength / (batchSize * accumulate)))` (one
 * iteration = one optimiser step over `accumulate` batches; the last partial batch is not counted).
 */
export function itersPerEpoch(datasetLength: number, batchSize: number, accumulate = 1): number {
  for (const [name, v] of [['datasetLength', datasetLength], ['batchSize', batchSize], ['accumulate', accumulate]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`itersPerEpoch: ${name} must be a positive integer, got ${v}`);
  }
  return Math.max(1, Math.floor(datasetLength / (batchSize * accumulate)));
}

/** A `schedule:` block in iterations (see {@link resolveSchedule}). */
export interface ResolvedSchedule {
  /** Iterations to train: `max_iters`, else `max_epochs * itersPerEpoch`, the smaller when both are given. */
  maxIters: number;
  /** Length poly/cosine decay over: the epoch recipe's (`max_epochs * itersPerEpoch`) when given, else `max_iters`. */
  scheduleIters: number;
  /** `steps` in iterations (`steps[i] * itersPerEpoch` with `by_epoch`); undefined without steps. */
  steps?: number[];
  warmupIters: number;
  itersPerEpoch: number;
}

/**
 * The one place epochs become iterations. `max_epochs` spans `max_epochs * itersPerEpoch`
 * iterations; with `by_epoch`, step milestone `e` is iteration `e * itersPerEpoch` (MMCV's epoch-wise
 * step: the lr drops when epoch `e` starts). A `max_iters` given as well caps training (the lr still
 * follows the epoch recipe), so `--cfg-options schedule.max_iters=N` stops any config after N.
 * @param schedule a validated `schedule:` block (max_iters or max_epochs present).
 * @param itersPerEpoch from {@link itersPerEpoch}.
 */
export function resolveSchedule(schedule: ScheduleBlock, itersPerEpoch: number): ResolvedSchedule {
  if (!Number.isInteger(itersPerEpoch) || itersPerEpoch < 1) throw new Error(`resolveSchedule: itersPerEpoch must be a positive integer, got ${itersPerEpoch}`);
  const { max_iters: maxIters, max_epochs: maxEpochs } = schedule;
  const epochIters = maxEpochs !== undefined ? maxEpochs * itersPerEpoch : undefined;
  const scheduleIters = epochIters ?? maxIters;
  if (scheduleIters === undefined) throw new Error('schedule: give max_iters or max_epochs');
  return {
    maxIters: Math.min(maxIters ?? Infinity, epochIters ?? Infinity),
    scheduleIters,
    ...(schedule.steps ? { steps: schedule.steps.map((s) => (schedule.by_epoch ? s * itersPerEpoch : s)) } : {}),
    warmupIters: schedule.warmup_iters,
    itersPerEpoch,
  };
}
