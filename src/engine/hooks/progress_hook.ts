/** `ProgressHook`: a `\r` progress bar with the iteration's loss on stdout (for a TTY). */
import type { Hook, IterContext } from './hook.ts';
import { fmt } from './format.ts';

export class ProgressHook implements Hook {
  /** @param width Bar width in characters. */
  constructor(private readonly width = 30) {}

  afterIter({ trainer, iter, loss }: IterContext): void {
    const done = Math.round((this.width * iter) / trainer.maxIters);
    process.stdout.write(`\r[${'#'.repeat(done)}${'.'.repeat(this.width - done)}] ${iter}/${trainer.maxIters} loss ${fmt(loss)}`);
  }

  /** Ends the bar's line. */
  afterRun(): void {
    process.stdout.write('\n');
  }
}
