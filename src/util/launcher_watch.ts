/**
 * No orphaned trainer: `npx tsx tools/train.ts` runs as four processes (npm exec → sh → the tsx CLI
 * → node with the TypeScript loader), and a `kill -9` of any launcher above leaves the node process
 * running, still writing the work dir. SIGINT/SIGTERM are relayed by tsx; SIGKILL cannot be. So the
 * tool watches its launcher ancestors (those whose command line names tsx, npm, npx or an MPI
 * launcher such as mpirun/orted, or runs
 * through tsx's loader, as the demos that start train/test do) and stops as on SIGTERM when one of
 * them is gone or its pid was reused. Linux only (`/proc`); elsewhere it watches nothing.
 */
import { parentPid, processCommand, processStartTime } from './process_info.ts';

interface Watched {
  pid: number;
  start: number;
  command: string;
}

const LAUNCHER = /(^|[\s/'"])(tsx|npx|npm|npm-cli\.js|npx-cli\.js|mpirun|mpiexec|orterun|orted|prted|prterun)(['"\s]|$)|\/tsx\/dist\/(cli\.mjs|loader\.mjs|preflight\.cjs)/;

/** The consecutive launcher processes above this one (nearest first). */
export function launcherAncestors(): Watched[] {
  const out: Watched[] = [];
  let pid = parentPid(process.pid);
  while (pid !== null && pid > 1) {
    const command = processCommand(pid);
    const start = processStartTime(pid);
    if (start === null || !LAUNCHER.test(command)) break;
    out.push({ pid, start, command });
    pid = parentPid(pid);
  }
  return out;
}

/**
 * Sends this process SIGTERM (after `onGone`'s message) within `intervalMs` of a launcher
 * ancestor's end, as if the launcher had relayed the signal: a training run finishes its iteration,
 * saves a checkpoint and exits (143); anything else ends at once. The timer does not keep the
 * process alive. Returns a function that stops watching.
 */
export function stopWithLauncher(onGone: (line: string) => void, intervalMs = 500): () => void {
  const watched = launcherAncestors();
  if (watched.length === 0) return () => undefined;
  const timer = setInterval(() => {
    const gone = watched.find((w) => processStartTime(w.pid) !== w.start);
    if (!gone) return;
    clearInterval(timer);
    onGone(`the launcher process ${gone.pid} (${gone.command}) has ended (killed?); stopping this process ${process.pid} as on SIGTERM`);
    process.kill(process.pid, 'SIGTERM');
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
