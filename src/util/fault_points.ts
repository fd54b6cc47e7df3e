/**
 * Fault points: named places where the fault-injection tests (test/faults.test.ts) kill this
 * process, to prove that a crash there loses nothing that `--resume` cannot restore.
 *
 * `C2F_FAULT_AT=NAME@K` sends SIGKILL to this process the K-th time (1-based) `faultPoint(NAME)` is
 * reached. Without the variable a fault point is one failed map lookup. The names in use:
 * `train:step` (after an optimiser step, before the hooks), `checkpoint:weights` (between the
 * weights and the state file), `checkpoint:state` (before `latest.json`), `atomic:rename` (a
 * temporary file written, not yet renamed), `log:row`, `eval:sample`, `eval:metrics` (metrics
 * computed, nothing written), `eval:best` (`best.json` written, the log row not yet).
 */
let target: { name: string; at: number } | null | undefined;
const hits = new Map<string, number>();

function parseTarget(): { name: string; at: number } | null {
  const spec = process.env.C2F_FAULT_AT;
  if (!spec) return null;
  const m = /^(.+)@(\d+)$/.exec(spec);
  if (!m) throw new Error(`C2F_FAULT_AT must be NAME@K (e.g. checkpoint:state@2), got '${spec}'`);
  return { name: m[1], at: Number(m[2]) };
}

/**
 * Kills this process (SIGKILL, no cleanup) when `C2F_FAULT_AT` names this point and hit count
 * (and, with `C2F_FAULT_RANK=R`, only on MPI rank R).
 */
export function faultPoint(name: string): void {
  if (target === undefined) {
    const rank = process.env.C2F_FAULT_RANK;
    target = rank !== undefined && rank !== process.env.OMPI_COMM_WORLD_RANK ? null : parseTarget();
  }
  if (target === null || target.name !== name) return;
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  if (n === target.at) process.kill(process.pid, 'SIGKILL');
}
