/**
 * Training checkpoints: writing them, the pointer files that name them, and reading them back.
 *
 * A checkpoint is `workDir/iter_<n>.safetensors` (model weights with PyTorch keys) plus
 * `workDir/iter_<n>_state.safetensors` (optimizer buffers, e.g. AdamW moments keyed
 * `exp_avg.<param>`/`exp_avg_sq.<param>`, with the trainer state — iteration, step count,
 * `globalRng` state, data-loader state, seed — as JSON in the metadata entry `trainer_state`). Both
 * are written atomically, then `latest.json` naming them is written atomically, so `latest.json`
 * always points at complete files. `best.json` (written by `EvalHook`) has the same shape plus the
 * metric and its value.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadCheckpoint } from '../nn/checkpoint.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { writeFileAtomic } from '../io/atomic_write.ts';
import { globalRng, type RngState } from '../nn/random.ts';
import type { DataLoader, DataLoaderState } from '../datasets/loader.ts';
import type { Module } from '../nn/module.ts';
import type { Optimizer } from './optimizer.ts';

/** What `latest.json` / `best.json` hold. */
export interface CheckpointPointer {
  iter: number;
  weights: string;
  state: string;
  metric?: string;
  value?: number;
}

/** The JSON stored in the state file's `trainer_state` metadata. */
export interface TrainerState {
  iter: number;
  stepCount: number;
  rng: RngState;
  loader: DataLoaderState;
  seed: number;
}

/** `iter_5.safetensors` -> `iter_5_state.safetensors`. */
export function stateFileOf(weights: string): string {
  return weights.replace(/\.safetensors$/, '') + '_state.safetensors';
}

/**
 * Reads a checkpoint pointer (`latest.json`, `best.json`) and returns the absolute paths of the
 * weights and state files it names. Errors name the pointer and what is wrong with it.
 */
export function readCheckpointPointer(pointerPath: string): CheckpointPointer & { weightsPath: string; statePath: string } {
  let ptr: CheckpointPointer;
  try {
    ptr = JSON.parse(readFileSync(pointerPath, 'utf8')) as CheckpointPointer;
  } catch (e) {
    throw new Error(`checkpoint pointer ${pointerPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof ptr?.weights !== 'string') throw new Error(`checkpoint pointer ${pointerPath} has no 'weights' file name`);
  const weightsPath = resolve(dirname(pointerPath), ptr.weights);
  if (!existsSync(weightsPath)) throw new Error(`checkpoint pointer ${pointerPath} names ${weightsPath}, which does not exist`);
  const statePath = resolve(dirname(pointerPath), typeof ptr.state === 'string' ? ptr.state : stateFileOf(ptr.weights));
  return { ...ptr, weightsPath, statePath };
}

/** What a checkpoint covers: the model, the optimizer, the loader position, and the run's seed. */
export interface CheckpointParts {
  model: Module;
  optimizer: Optimizer;
  loader: DataLoader;
  seed: number;
}

/** Writes and restores the checkpoints of one work dir; remembers the last one. */
export class Checkpointer {
  /** File name (in workDir) of the last checkpoint written or resumed from. */
  lastCheckpoint: string | null = null;
  /** Iteration of {@link lastCheckpoint} (-1: none). */
  lastCheckpointIter = -1;

  constructor(readonly workDir: string, private readonly parts: CheckpointParts) {}

  /** Writes `iter_<iter>.safetensors`, `iter_<iter>_state.safetensors`, then `latest.json`; returns the weights path. */
  async save(iter: number): Promise<string> {
    const { model, optimizer, loader, seed } = this.parts;
    const weights = `iter_${iter}.safetensors`;
    const state = stateFileOf(weights);
    await writeSafetensors(join(this.workDir, weights), model.stateDict(), { iter: String(iter) });
    const opt = optimizer.state();
    const ts: TrainerState = { iter, stepCount: opt.stepCount, rng: globalRng.getState(), loader: loader.state(), seed };
    await writeSafetensors(join(this.workDir, state), opt.tensors, { trainer_state: JSON.stringify(ts) });
    const ptr: CheckpointPointer = { iter, weights, state };
    await writeFileAtomic(join(this.workDir, 'latest.json'), JSON.stringify(ptr, null, 2) + '\n');
    this.lastCheckpoint = weights;
    this.lastCheckpointIter = iter;
    return join(this.workDir, weights);
  }

  /**
   * Restores weights, optimizer state, `globalRng` and loader state; returns the checkpoint's
   * iteration and the `best.json` beside its weights file (null when there is none).
   * @param path `latest.json`/`best.json`-style pointer, or an `iter_<n>.safetensors` weights file
   *   (its `_state` file beside it); default `workDir/latest.json`.
   */
  async resume(path?: string): Promise<{ iter: number; best: CheckpointPointer | null }> {
    const { model, optimizer, loader } = this.parts;
    path ??= join(this.workDir, 'latest.json');
    if (!existsSync(path)) throw new Error(`cannot resume: ${path} does not exist`);
    let weightsPath: string, statePath: string;
    if (path.endsWith('.json')) {
      ({ weightsPath, statePath } = readCheckpointPointer(path));
    } else {
      weightsPath = path;
      statePath = join(dirname(path), stateFileOf(basename(path)));
    }
    await loadCheckpoint(model, weightsPath);
    const st = await readSafetensors(statePath);
    const raw = st.metadata.trainer_state;
    if (!raw) throw new Error(`cannot resume: ${statePath} has no trainer_state metadata`);
    const ts = JSON.parse(raw) as TrainerState;
    optimizer.loadState({ stepCount: ts.stepCount, tensors: st.tensors });
    globalRng.setState(ts.rng);
    loader.restore(ts.loader);
    this.lastCheckpoint = basename(weightsPath);
    this.lastCheckpointIter = ts.iter;
    const bestPath = join(dirname(weightsPath), 'best.json');
    const best = existsSync(bestPath) ? JSON.parse(readFileSync(bestPath, 'utf8')) as CheckpointPointer : null;
    return { iter: ts.iter, best };
  }
}
