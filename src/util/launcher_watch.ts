/**
 * No orphaned trainer: `npx tsx tools/train.ts` runs as four processes (npm exec → sh → the tsx CLI
 * → node with the TypeScript loader), and a `kill -9` of any launcher above leaves the node process
 * running, still writing the work dir. SIGINT/SIGTERM are relayed by tsx; SIGKILL cannot be. So the
 * tool watches its launcher ancestors (those whose command line names tsx, npm or npx, or runs
 * through tsx's loader, as the demos that start train/test do) and exits when one of them is gone
 * or its pid was reused. Linux only (`/proc`); elsewhere it watches nothing.
 */
import { parentPid, processCommand, processStartTime } from './process_info.ts';

interface Watched {
  pid: number;
  start: number;
  command: string;
}

const LAUNCHER = /(^|[\s/'"])(tsx|npx|npm|npm-cli\.js|npx-cli\.js)(['"\s]|$)|\/tsx\/dist\/(cli\.mjs|loader\.mjs|preflight\.cjs)/;

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
 * Exits this process (status 129, after `onGone`'s message) within `intervalMs` of a launcher
 * ancestor's end. The timer does not keep the process alive. Returns a function that stops watching.
 */
export function exitWithLauncher(onGone: (line: string) => void, intervalMs = 500): () => void {
  const watched = launcherAncestors();
  if (watched.length === 0) return () => undefined;
  const timer = setInterval(() => {
    for (const w of watched) {
      if (processStartTime(w.pid) === w.start) continue;
      onGone(`the launcher process ${w.pid} (${w.command}) has ended (killed?); stopping this process ${process.pid} too`);
      process.exit(129);
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
