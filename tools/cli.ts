/**
 * Shared CLI runner: a user error ends the process with a one-line cause and exit code 1, never a
 * bare stack trace (set C2F_DEBUG=1 for the stack). The tool stops (as on SIGTERM: training saves a
 * checkpoint first) when the launcher it was started through (`npx`, `tsx`, `npm run`) is killed,
 * so no orphaned process keeps writing.
 */
import { stopWithLauncher } from '../src/util/launcher_watch.ts';

export async function runCli(main: () => Promise<void>): Promise<void> {
  stopWithLauncher((line) => process.stderr.write(`error: ${line}\n`));
  try {
    await main();
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`error: ${e.message}\n`);
    if (process.env.C2F_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  }
}
