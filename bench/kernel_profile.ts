/**
 * Per-kernel wall-clock profile for the benchmark scripts: every kernel tfjs runs is timed
 * (exclusive of the kernels it runs inside itself, e.g. a custom gradient's ops), tagged with the
 * phase the caller has set. The cpu and wasm backends run kernels synchronously, so the wall time
 * around a kernel is its cost. What the kernels do not account for of a phase's wall time is the
 * JavaScript between them (tape bookkeeping, closures, tidy scopes, data pipeline code).
 *
 * Hooks `tf.engine().runKernelFunc`, an engine internal; only benchmarks use this.
 */
import * as tf from '@tensorflow/tfjs';

/** Time and count of one kernel name within one phase. */
export interface KernelStat {
  ms: number;
  count: number;
}

/** Collected kernel times: `byPhase[phase][kernel]`, and the phases' wall times. */
export interface KernelProfile {
  byPhase: Map<string, Map<string, KernelStat>>;
  wallMs: Map<string, number>;
}

interface EngineInternals {
  runKernelFunc(args: { kernelName?: string }): unknown;
}

/** Times every kernel until `stop()`; `phase(name, fn)` runs `fn` with its kernels tagged `name`. */
export class KernelProfiler {
  readonly profile: KernelProfile = { byPhase: new Map(), wallMs: new Map() };
  private current = 'other';
  private readonly childMs: number[] = [];
  private readonly engine = tf.engine() as unknown as EngineInternals;
  private readonly original = this.engine.runKernelFunc;

  constructor() {
    const original = this.original;
    this.engine.runKernelFunc = (args) => {
      this.childMs.push(0);
      const t0 = performance.now();
      try {
        return original.call(this.engine, args);
      } finally {
        const total = performance.now() - t0;
        const inner = this.childMs.pop()!;
        if (this.childMs.length > 0) this.childMs[this.childMs.length - 1] += total;
        this.add(args.kernelName ?? 'customGrad', total - inner);
      }
    };
  }

  /** Runs `fn` as phase `name` (nested phases are not supported: the inner one wins). */
  phase<T>(name: string, fn: () => T): T {
    const prev = this.current;
    this.current = name;
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.profile.wallMs.set(name, (this.profile.wallMs.get(name) ?? 0) + performance.now() - t0);
      this.current = prev;
    }
  }

  /** Restores the engine. */
  stop(): KernelProfile {
    this.engine.runKernelFunc = this.original;
    return this.profile;
  }

  private add(kernel: string, ms: number): void {
    let phase = this.profile.byPhase.get(this.current);
    if (!phase) this.profile.byPhase.set(this.current, (phase = new Map()));
    const s = phase.get(kernel) ?? { ms: 0, count: 0 };
    s.ms += ms;
    s.count += 1;
    phase.set(kernel, s);
  }
}

/** Kernel time and count summed over phases, per kernel name, largest first. */
export function kernelTotals(p: KernelProfile): [string, KernelStat][] {
  const all = new Map<string, KernelStat>();
  for (const phase of p.byPhase.values()) {
    for (const [k, s] of phase) {
      const a = all.get(k) ?? { ms: 0, count: 0 };
      a.ms += s.ms;
      a.count += s.count;
      all.set(k, a);
    }
  }
  return [...all.entries()].sort((a, b) => b[1].ms - a[1].ms);
}

/** Kernel time and count of one phase. */
export function phaseTotals(p: KernelProfile, phase: string): KernelStat {
  let ms = 0, count = 0;
  for (const s of p.byPhase.get(phase)?.values() ?? []) {
    ms += s.ms;
    count += s.count;
  }
  return { ms, count };
}
