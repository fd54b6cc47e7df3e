/**
 * Trainer hooks (MMEngine style): the trainer only steps; logging, progress, checkpoints,
 * evaluation and interrupts are hooks with one job each, called at fixed points of `Trainer.run`:
 *
 *   beforeRun → (beforeIter → one optimiser step → afterIter)* → afterRun
 *
 * Hooks run in list order at each point, each awaited before the next. `afterRun` runs when
 * `run()` ends, also when it throws (release what `beforeRun` took there).
 */
import type { TrainableModel } from '../gradients.ts';
import type { Optimizer } from '../optimizer.ts';
import type { CheckpointPointer } from '../checkpointer.ts';

/** What hooks may read and call on the trainer. */
export interface TrainerApi {
  /** Finished iterations (1-based count: after the first step it is 1). */
  readonly iter: number;
  readonly maxIters: number;
  readonly workDir: string;
  readonly model: TrainableModel;
  readonly optimizer: Optimizer;
  /** File name (in workDir) of the last checkpoint written or resumed from. */
  readonly lastCheckpoint: string | null;
  /** Iteration of the last checkpoint written or resumed from (-1: none). */
  readonly lastCheckpointIter: number;
  /** The best checkpoint so far (restored by `resume`, updated by `EvalHook`). */
  best: CheckpointPointer | null;
  /** This training run's id (kept across resumes). */
  readonly runId: string;
  /** Whether this process writes files and logs (every process, or rank 0 of a distributed run). */
  readonly writes: boolean;
  /** True when `flag` is true on any process of a distributed run (`flag` itself otherwise). */
  anyRank(flag: boolean): Promise<boolean>;
  /** Writes a checkpoint of the current iteration; returns the weights path. */
  saveCheckpoint(): Promise<string>;
  /** Makes `run()` return (interrupted) once this iteration's hooks are done. */
  stop(): void;
  /** Prints a human-readable line (the trainer's `log` option). */
  log(line: string): void;
}

/** Passed to `beforeRun`, `beforeIter` and `afterRun`. */
export interface RunContext {
  trainer: TrainerApi;
  /** A fresh run: starts at iteration 0 and was not resumed (the trainer seeded `globalRng`). */
  fresh: boolean;
  /** The iteration this `run()` started at. */
  startIter: number;
}

/** Passed to `afterIter`: what the step that just finished did. */
export interface IterContext extends RunContext {
  /** Finished iterations, counting this one (the same as `trainer.iter`). */
  iter: number;
  /** The lr of this step. */
  lr: number;
  /** Total loss (sum of the `*loss*` outputs), averaged over the accumulated batches. */
  loss: number;
  /** Every output of `forwardTrain` (losses, accuracies), averaged over the accumulated batches. */
  parts: Record<string, number>;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Seconds this iteration took, and the part of it spent waiting for batches. */
  time: number;
  dataTime: number;
  /** Tensor count of helper threads (`DataParallel`), when there are any. */
  workerTensors?: number;
  /** Bad training samples skipped so far, when the trainer was told how to count them. */
  numSkipped?: number;
}

/** A trainer hook; every method is optional. */
export interface Hook {
  beforeRun?(ctx: RunContext): void | Promise<void>;
  beforeIter?(ctx: RunContext): void | Promise<void>;
  afterIter?(ctx: IterContext): void | Promise<void>;
  afterRun?(ctx: RunContext): void | Promise<void>;
  /** State saved with each checkpoint (JSON-serialisable), keyed by the hook's class name. */
  stateDict?(): unknown;
  /** Restores what `stateDict` returned, on resume (before `beforeRun`). */
  loadStateDict?(state: unknown): void;
}
