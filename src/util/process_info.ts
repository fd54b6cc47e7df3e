/**
 * What the OS says about a process (Linux `/proc`; elsewhere null): its start time, parent and
 * command line. Used to tell a reused pid from the original (work-dir lock) and to watch the
 * launcher processes a tool was started through (launcher_watch.ts).
 */
import { readFileSync } from 'node:fs';

interface ProcStat {
  /** `R`, `S`, `D`, `Z` (zombie: exited, not yet reaped), ... */
  state: string;
  ppid: number;
  /** Start time in clock ticks since boot. */
  start: number;
}

function procStat(pid: number): ProcStat | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces or ')': split after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]), start: Number(rest[19]) };
  } catch {
    return null;
  }
}

/** The process's start time (Linux clock ticks since boot), or null where `/proc` cannot say. */
export function processStartTime(pid: number): number | null {
  return procStat(pid)?.start ?? null;
}

/** Whether `pid` has exited but is not yet reaped (a zombie holds no resources); false when unknown. */
export function isZombie(pid: number): boolean {
  return procStat(pid)?.state === 'Z';
}

/** Parent pid of `pid` (null when unknown). */
export function parentPid(pid: number): number | null {
  return procStat(pid)?.ppid ?? null;
}

/** The command line of `pid`, arguments joined by spaces ('' when unknown). */
export function processCommand(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}
