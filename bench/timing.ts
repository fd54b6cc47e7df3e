/** Timing helpers the benchmark scripts share. */

/** The median of `xs`. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Seconds of each of `iters` runs of `fn`, after one untimed warm-up run. */
export async function timeRuns(fn: () => void | Promise<void>, iters: number): Promise<number[]> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < iters; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return times;
}
