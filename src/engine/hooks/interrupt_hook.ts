/**
 * `InterruptHook`: on SIGINT, finishes the current iteration, saves a checkpoint (unless one of this
 * iteration exists), says where, then exits with status 130 or makes `run()` return interrupted.
 * Put it last, so the other hooks see the final iteration first.
 */
import { join } from 'node:path';
import type { Hook, IterContext } from './hook.ts';

export class InterruptHook implements Hook {
  private requested = false;
  private readonly onSigint = () => {
    this.requested = true;
  };

  /** @param exitOnInterrupt After saving: `process.exit(130)` (default) or return from `run()`. */
  constructor(private readonly exitOnInterrupt = true) {}

  beforeRun(): void {
    this.requested = false;
    process.on('SIGINT', this.onSigint);
  }

  async afterIter({ trainer, iter }: IterContext): Promise<void> {
    if (!this.requested) return;
    if (trainer.lastCheckpointIter !== iter) await trainer.saveCheckpoint();
    trainer.log(`interrupted at iter ${iter}; saved ${join(trainer.workDir, trainer.lastCheckpoint!)}`);
    if (this.exitOnInterrupt) {
      process.removeListener('SIGINT', this.onSigint);
      process.exit(130);
    }
    trainer.stop();
  }

  afterRun(): void {
    process.removeListener('SIGINT', this.onSigint);
  }
}
