/**
 * Shared CLI runner: a user error ends the process with a one-line cause and exit code 1, never a
 * bare stack trace (set C2F_DEBUG=1 for the stack).
 */
export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    const e = err as Error;
    process.stderr.write(`error: ${e.message}\n`);
    if (process.env.C2F_DEBUG) process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  }
}
