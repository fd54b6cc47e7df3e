/**
 * Up-front data checks, so that a broken split is found before training rather than at the first
 * evaluation hours later: every source file of the split must exist (a few missing ones are
 * counted and reported; with `strict`, or when none is readable, it is an error), and one sample
 * must load through the whole pipeline.
 */
import { accessSync, constants } from 'node:fs';
import type { Dataset } from './dataset.ts';
import { sampleRng } from './loader.ts';

export interface CheckDatasetOptions {
  /** How the split is named in messages, e.g. `data.val of configs/x.yaml`. */
  name: string;
  /** A missing file is an error (`--strict-data`). */
  strict?: boolean;
  /** Also load samples until one loads (at most `maxLoads`, default 8); 0: only the file checks. */
  maxLoads?: number;
  log?: (line: string) => void;
}

/**
 * Checks that `ds`'s files are readable and that one sample loads.
 * @throws naming the split and the first failing file when nothing (or, with `strict`, something) is unreadable.
 */
export async function checkDataset(ds: Dataset, opts: CheckDatasetOptions): Promise<void> {
  const log = opts.log ?? (() => undefined);
  const n = ds.length;
  if (n === 0) throw new Error(`${opts.name}: the dataset has no samples`);
  if (ds.sourceFiles) {
    let missing = 0;
    let first = '';
    let files = 0;
    for (let i = 0; i < n; i++) {
      for (const f of ds.sourceFiles(i)) {
        files++;
        try {
          accessSync(f, constants.R_OK);
        } catch (e) {
          if (missing++ === 0) first = `${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
        }
      }
    }
    if (missing > 0 && (opts.strict || missing === files)) {
      throw new Error(`${opts.name}: ${missing} of ${files} files cannot be read (first: ${first})${opts.strict ? ' (--strict-data)' : ''}`);
    }
    if (missing > 0) log(`warning: ${opts.name}: ${missing} of ${files} files cannot be read (first: ${first}); those samples will be skipped`);
  }
  const maxLoads = Math.min(n, opts.maxLoads ?? 8);
  for (let i = 0; i < maxLoads; i++) {
    const s = await ds.getSample(i, sampleRng(0, i));
    if (s !== null) return;
  }
  if (maxLoads > 0) throw new Error(`${opts.name}: none of the first ${maxLoads} samples could be loaded (first: ${ds.firstBadSample ?? 'dropped by the pipeline'})`);
}
