/**
 * `InterruptHook`: on SIGINT or SIGTERM (Ctrl-C; `kill`, a scheduler's pre-emption, relayed by the
 * tsx launcher), finishes the current iteration, saves a checkpoint (unless one of this iteration
 * exists), says where, then exits with status 130 (SIGINT) / 143 (SIGTERM) or makes `run()` return
 * interrupted. Put it last, so the other hooks see the final iteration first.
 */
import { join } from 'node:path';
import type { Hook, IterContext } from './hook.ts';

export class InterruptHook implements Hook {
  private requested: NodeJS.Signals | null = null;
  private readonly onSigint = () => this.request('SIGINT');
  private readonly onSigterm = () => this.request('SIGTERM');

  /**
   * @param exitOnInterrupt After saving: `process.exit(130)` (default) or return from `run()`.
   * @param graceMs Exit anyway this long after a signal (default: never). For distributed runs,
   *   whose save needs every rank: a dead peer would otherwise leave this rank waiting forever.
   */
  constructor(private readonly exitOnInterrupt = true, private readonly graceMs?: number) {}

  private request(signal: NodeJS.Signals): void {
    this.requested = signal;
    if (this.graceMs !== undefined) {
      const code = signal === 'SIGTERM' ? 143 : 130;
      setTimeout(() => {
        process.stderr.write(`error: no checkpoint within ${this.graceMs! / 1000} s of ${signal} (a peer process is gone?); exiting\n`);
        process.exit(code);
      }, this.graceMs).unref();
    }
  }

  beforeRun(): void {
    this.requested = null;
    process.on('SIGINT', this.onSigint);
    process.on('SIGTERM', this.onSigterm);
  }

  async afterIter({ trainer, iter }: IterContext): Promise<void> {
    // Distributed: every rank stops at the same iteration (a signal may reach them at different ones).
    if (!(await trainer.anyRank(this.requested !== null))) return;
    const signal = this.requested ?? 'SIGTERM';
    if (trainer.lastCheckpointIter !== iter) await trainer.saveCheckpoint();
    trainer.log(`interrupted (${signal}) at iter ${iter}; saved ${join(trainer.workDir, trainer.lastCheckpoint!)}`);
    if (this.exitOnInterrupt) {
      this.afterRun();
      process.exit(signal === 'SIGTERM' ? 143 : 130);
    }
    trainer.stop();
  }

  afterRun(): void {
    process.removeListener('SIGINT', this.onSigint);
    process.removeListener('SIGTERM', this.onSigterm);
  }
}
