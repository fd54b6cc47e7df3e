/** `CheckpointHook`: saves a checkpoint every `interval` iterations and at the last one. */
import type { Hook, IterContext } from './hook.ts';

export class CheckpointHook implements Hook {
  /** @param interval Checkpoint every n iterations (default 1000); always at `maxIters`. */
  constructor(readonly interval = 1000) {}

  async afterIter({ trainer, iter }: IterContext): Promise<void> {
    if (iter % this.interval === 0 || iter === trainer.maxIters) await trainer.saveCheckpoint();
  }
}
