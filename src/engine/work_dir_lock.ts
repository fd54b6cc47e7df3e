/**
 * One writer per work dir: `tools/train.ts` holds `<workDir>/.lock` (pid, host, start time and the
 * command line) while it runs, so a second run into the same folder fails at once, naming the
 * first, instead of overwriting its checkpoints and log.
 *
 * A lock whose process is gone (a crash, `kill -9`) is stale: on the same host the next run finds
 * the pid dead (or reused by a process started later) and takes the lock over, saying so. A lock
 * written on another host (a shared filesystem) cannot be checked from here; the error says which
 * file to remove once that run is known to be over. The lock is removed when the process exits.
 *
 * Taking the lock also removes the temporary files that interrupted atomic writes left behind
 * (`.NAME.PID.HEX.tmp`, see io/atomic_write.ts): under the lock no other writer can own them.
 */
import { closeSync, openSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isAtomicTemporary } from '../io/atomic_write.ts';
import { isZombie, processStartTime } from '../util/process_info.ts';

/** What `<workDir>/.lock` holds. */
export interface LockInfo {
  pid: number;
  host: string;
  /** The process's start time as the OS counts it (Linux: clock ticks since boot), to tell a reused pid. */
  pidStart: number | null;
  /** ISO time the lock was taken. */
  since: string;
  command: string;
}

export const LOCK_FILE = '.lock';

/** A held work-dir lock; `release()` is idempotent (and runs at process exit). */
export interface WorkDirLock {
  readonly path: string;
  release(): void;
}

function describe(info: LockInfo): string {
  return `pid ${info.pid} on ${info.host} since ${info.since} (${info.command})`;
}

function readLock(path: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>;
    return typeof v.pid === 'number' && typeof v.host === 'string' ? v as LockInfo : null;
  } catch {
    return null;
  }
}

/** Whether the process that wrote `info` (on this host) still runs. */
function holderAlive(info: LockInfo): boolean {
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (isZombie(info.pid)) return false; // exited, not yet reaped
  // The pid exists; a different start time means the pid was reused after the holder died.
  const start = processStartTime(info.pid);
  return info.pidStart === null || start === null || start === info.pidStart;
}

/**
 * Takes `<workDir>/.lock` (the folder must exist) and removes leftover atomic-write temporaries.
 * @throws naming the lock file and the run holding it when another live process holds it.
 */
export function acquireWorkDirLock(workDir: string, log: (line: string) => void = () => undefined): WorkDirLock {
  const path = join(workDir, LOCK_FILE);
  const info: LockInfo = {
    pid: process.pid,
    host: hostname(),
    pidStart: processStartTime(process.pid),
    since: new Date().toISOString(),
    command: process.argv.slice(1).join(' '),
  };
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) {
        throw new Error(`cannot lock work dir ${workDir}: ${path}: ${(e as Error).message}`);
      }
      const other = readLock(path);
      if (other && other.host !== info.host) {
        throw new Error(`work dir ${workDir} is locked by another run: ${describe(other)}. If that run is over, remove ${path}`);
      }
      if (other && holderAlive(other)) {
        throw new Error(`work dir ${workDir} is in use by another run: ${describe(other)}; wait for it to end, stop it, or pass another --work-dir`);
      }
      // Stale (or unreadable: a crash between create and write). Rename, not unlink: of two runs
      // racing for the stale lock only one rename succeeds; both then race for a fresh 'wx' create.
      const aside = `${path}.stale.${process.pid}`;
      try {
        renameSync(path, aside);
        unlinkSync(aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw new Error(`cannot remove the stale lock ${path}: ${(err as Error).message}`);
      }
      log(`removed the stale lock of a run that is no longer running (${other ? describe(other) : 'unreadable lock file'})`);
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(info, null, 2) + '\n');
    } finally {
      closeSync(fd);
    }
    break;
  }
  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    process.removeListener('exit', release);
    // Only remove our own lock (a stale-lock takeover by a later run must not be undone).
    if (readLock(path)?.pid === process.pid) {
      try {
        unlinkSync(path);
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', release);
  removeAtomicTemporaries(workDir, log);
  return { path, release };
}

/** Removes `writeFileAtomic` temporaries in `dir` (only call while holding its lock). */
export function removeAtomicTemporaries(dir: string, log: (line: string) => void = () => undefined): number {
  let n = 0;
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    if (!isAtomicTemporary(name)) continue;
    const p = join(dir, name);
    try {
      bytes += statSync(p).size;
      unlinkSync(p);
      n++;
    } catch {
      /* gone meanwhile */
    }
  }
  if (n > 0) log(`removed ${n} temporary file(s) (${(bytes / 2 ** 20).toFixed(1)} MiB) left in ${dir} by an interrupted write`);
  return n;
}
