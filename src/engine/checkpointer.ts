/**
 * Training checkpoints: writing them, the pointer files that name them, and reading them back.
 *
 * A checkpoint is `workDir/iter_<n>.safetensors` (model weights with PyTorch keys; metadata `iter`)
 * plus `workDir/iter_<n>_state.safetensors` (optimizer buffers, e.g. AdamW moments
 * keyed `exp_avg.<param>`/`exp_avg_sq.<param>`, with the trainer state as JSON in the metadata entry
 * `trainer_state`: iteration, step count, `globalRng` and data-loader state, seed, the hooks' state,
 * the run id, the model config, and the weights file's name and SHA-256). Both are written
 * atomically, then `latest.json` naming them is written atomically, so `latest.json` always points
 * at complete files. `best.json` (written by `EvalHook`) has the same shape plus the metric and its
 * value.
 *
 * The two files are one unit: names like `iter_3.safetensors` repeat from run to run and a crash can
 * fall between the two writes, so resuming checks that the state names the weights' digest (and the
 * pointer the state's run and iteration) and refuses a mixed pair, naming both files; it also
 * checks the seed and model config against the checkpoint's and says what differs.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { loadCheckpoint } from '../nn/checkpoint.ts';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import { writeFileAtomic } from '../io/atomic_write.ts';
import { readJsonFileSync, sha256File } from '../io/json_file.ts';
import { faultPoint } from '../util/fault_points.ts';
import { globalRng, type RngState } from '../nn/random.ts';
import type { DataLoader, DataLoaderState } from '../datasets/loader.ts';
import type { Module } from '../nn/module.ts';
import type { Optimizer } from './optimizer.ts';
import { allGatherJson, type ProcessGroup } from './process_group.ts';

/** What `latest.json` / `best.json` hold. */
export interface CheckpointPointer {
  iter: number;
  weights: string;
  state: string;
  /** The run that wrote the files (absent in pointers of older versions). */
  run_id?: string;
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
  /** Random id of the training run (kept across resumes). */
  runId?: string;
  /** Weights file name and the SHA-256 of its bytes: the pair's seal. */
  weights?: string;
  weightsSha256?: string;
  /** The model config the run was started with (compared on resume). */
  model?: unknown;
  /** Hook state by hook class name (e.g. the logger's averaging window). */
  hooks?: Record<string, unknown>;
  /** Distributed runs: every rank's data-loader state, by rank (`loader` is rank 0's). */
  loaderShards?: DataLoaderState[];
}

/** `iter_5.safetensors` -> `iter_5_state.safetensors`. */
export function stateFileOf(weights: string): string {
  return weights.replace(/\.safetensors$/, '') + '_state.safetensors';
}

/** A fresh random run id (12 hex digits). */
export function newRunId(): string {
  return randomBytes(6).toString('hex');
}

/**
 * Reads a checkpoint pointer (`latest.json`, `best.json`) and returns the absolute paths of the
 * weights and state files it names. Errors name the pointer and what is wrong with it.
 */
export function readCheckpointPointer(pointerPath: string): CheckpointPointer & { weightsPath: string; statePath: string } {
  const ptr = readJsonFileSync(pointerPath, 'checkpoint pointer') as Partial<CheckpointPointer> | null;
  if (typeof ptr !== 'object' || ptr === null || typeof ptr.weights !== 'string') throw new Error(`checkpoint pointer ${pointerPath} has no 'weights' file name`);
  if (!Number.isInteger(ptr.iter)) throw new Error(`checkpoint pointer ${pointerPath} has no integer 'iter'`);
  const weightsPath = resolve(dirname(pointerPath), ptr.weights);
  if (!existsSync(weightsPath)) throw new Error(`checkpoint pointer ${pointerPath} names ${weightsPath}, which does not exist`);
  const statePath = resolve(dirname(pointerPath), typeof ptr.state === 'string' ? ptr.state : stateFileOf(ptr.weights));
  return { ...(ptr as CheckpointPointer), weightsPath, statePath };
}

/**
 * Resolves what a user gives as a checkpoint to a weights file: a weights file, a pointer JSON
 * (`latest.json`, `best.json`), such a pointer without `.json` (`work_dirs/x/latest`), or a work
 * dir (its `latest.json`). Errors name the argument.
 */
export async function resolveWeights(arg: string): Promise<string> {
  let p = arg;
  if (!existsSync(p) && existsSync(`${p}.json`)) p = `${p}.json`;
  const st = await stat(p).catch(() => null);
  if (!st) throw new Error(`checkpoint ${arg} does not exist`);
  if (st.isDirectory()) {
    const latest = join(p, 'latest.json');
    if (!existsSync(latest)) throw new Error(`checkpoint ${arg} is a folder without latest.json`);
    p = latest;
  }
  return p.endsWith('.json') ? readCheckpointPointer(p).weightsPath : p;
}

/**
 * Moves `dir/name` (e.g. `log.jsonl`) aside to `dir/<stem>.<its mtime>.<ext>` so a new run starts
 * its own; returns the new name, or null when there was no such file.
 */
export function moveAside(dir: string, name: string): string | null {
  const path = join(dir, name);
  if (!existsSync(path)) return null;
  const dot = name.lastIndexOf('.');
  const stamp = statSync(path).mtime.toISOString().replace(/[:.]/g, '-');
  const aside = `${name.slice(0, dot)}.${stamp}${name.slice(dot)}`;
  renameSync(path, join(dir, aside));
  return aside;
}

/** Model keys that may change between a checkpoint and its resume: test-time settings, initialisation. */
const RESUMABLE_KEYS = new Set(['test_cfg', 'init_cfg', 'pretrained']);

/**
 * Paths (config-file style, `model.backbone.depths`) where the model configs `a` (checkpoint) and
 * `b` (config) differ, at most `max`; `test_cfg`, `init_cfg` and `pretrained` are not compared.
 */
export function configDifferences(a: unknown, b: unknown, at = 'model', max = 5, out: string[] = []): string[] {
  if (out.length >= max) return out;
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (!RESUMABLE_KEYS.has(k)) configDifferences(a[k], b[k], `${at}.${k}`, max, out);
    }
  } else if (JSON.stringify(a) !== JSON.stringify(b)) {
    out.push(`${at}: checkpoint ${JSON.stringify(a) ?? 'absent'}, config ${JSON.stringify(b) ?? 'absent'}`);
  }
  return out;
}

/** What a checkpoint covers: the model, the optimizer, the loader position, and the run's identity. */
export interface CheckpointParts {
  model: Module;
  optimizer: Optimizer;
  loader: DataLoader;
  seed: number;
  /** The model config block, stored in the state and compared on resume (omit: not checked). */
  modelConfig?: unknown;
  /** Distributed runs: saving gathers every rank's loader state and rank 0 alone writes. */
  dist?: ProcessGroup;
}

/** What `Checkpointer.resume` restored beyond the model, optimizer, Rng and loader. */
export interface ResumedCheckpoint {
  iter: number;
  /** `best.json` beside the weights when it names an iteration up to this one (else null). */
  best: CheckpointPointer | null;
  hooks: Record<string, unknown>;
}

/** Writes and restores the checkpoints of one work dir; remembers the last one. */
export class Checkpointer {
  /** File name (in workDir) of the last checkpoint written or resumed from. */
  lastCheckpoint: string | null = null;
  /** Iteration of {@link lastCheckpoint} (-1: none). */
  lastCheckpointIter = -1;
  /** This training run's id: new for a fresh run, the checkpoint's after `resume`. */
  runId = newRunId();

  constructor(readonly workDir: string, private readonly parts: CheckpointParts) {}

  /**
   * A fresh run starts without pointers: an earlier run's `latest.json`/`best.json` are moved aside
   * (`latest.<mtime>.json`), so `--resume` after a crash before the first checkpoint cannot pick up
   * the earlier run's files, nor its best metric.
   */
  startFresh(log: (line: string) => void): void {
    for (const name of ['latest.json', 'best.json']) {
      const aside = moveAside(this.workDir, name);
      if (aside) log(`moved the previous run's ${name} aside to ${aside}`);
    }
  }

  /**
   * Writes `iter_<iter>.safetensors`, `iter_<iter>_state.safetensors` (sealed with the weights'
   * digest), then `latest.json`; returns the weights path.
   * @param hooks the hooks' state to restore on resume.
   */
  async save(iter: number, hooks: Record<string, unknown> = {}): Promise<string> {
    const { model, optimizer, loader, seed, modelConfig, dist } = this.parts;
    const weights = `iter_${iter}.safetensors`;
    const state = stateFileOf(weights);
    const loaderShards = dist && dist.size > 1 ? await allGatherJson(dist, loader.state()) : undefined;
    if (dist && dist.rank !== 0) {
      this.lastCheckpoint = weights;
      this.lastCheckpointIter = iter;
      return join(this.workDir, weights);
    }
    // The weights carry no run id: the same training gives the same bytes, resumed or not.
    const weightsSha256 = await writeSafetensors(join(this.workDir, weights), model.stateDict(), { iter: String(iter) });
    faultPoint('checkpoint:weights');
    const opt = optimizer.state();
    const ts: TrainerState = {
      iter, stepCount: opt.stepCount, rng: globalRng.getState(), loader: loader.state(), seed,
      runId: this.runId, weights, weightsSha256, model: modelConfig, hooks, ...(loaderShards ? { loaderShards } : {}),
    };
    await writeSafetensors(join(this.workDir, state), opt.tensors, { trainer_state: JSON.stringify(ts) });
    faultPoint('checkpoint:state');
    const ptr: CheckpointPointer = { iter, weights, state, run_id: this.runId };
    await writeFileAtomic(join(this.workDir, 'latest.json'), JSON.stringify(ptr, null, 2) + '\n');
    this.lastCheckpoint = weights;
    this.lastCheckpointIter = iter;
    return join(this.workDir, weights);
  }

  /**
   * Restores weights, optimizer state, `globalRng` and loader state after checking that the weights
   * and state files are one checkpoint and that seed and model config match it.
   * @param path `latest.json`/`best.json`-style pointer, or an `iter_<n>.safetensors` weights file
   *   (its `_state` file beside it); default `workDir/latest.json`.
   * @throws naming both files when they are not a pair, and listing what differs from the config.
   */
  async resume(path?: string): Promise<ResumedCheckpoint> {
    const { model, optimizer, loader, seed, modelConfig } = this.parts;
    path ??= join(this.workDir, 'latest.json');
    if (!existsSync(path)) throw new Error(`cannot resume: ${path} does not exist`);
    let weightsPath: string, statePath: string;
    let ptr: CheckpointPointer | null = null;
    if (path.endsWith('.json')) {
      const p = readCheckpointPointer(path);
      ({ weightsPath, statePath } = p);
      ptr = p;
    } else {
      weightsPath = path;
      statePath = join(dirname(path), stateFileOf(basename(path)));
    }
    if (!existsSync(statePath)) throw new Error(`cannot resume from ${weightsPath}: its optimizer/trainer state ${statePath} does not exist`);
    const st = await readSafetensors(statePath);
    const raw = st.metadata.trainer_state;
    if (!raw) throw new Error(`cannot resume: ${statePath} has no trainer_state metadata`);
    let ts: TrainerState;
    try {
      ts = JSON.parse(raw) as TrainerState;
    } catch (e) {
      throw new Error(`cannot resume: the trainer_state metadata of ${statePath} is not valid JSON: ${(e as Error).message}`);
    }
    await this.checkPair(weightsPath, statePath, ts, ptr ? { path, ptr } : null);
    const problems: string[] = [];
    if (ts.seed !== seed) problems.push(`train.seed: checkpoint ${ts.seed}, config ${seed}`);
    if (ts.model !== undefined && modelConfig !== undefined) problems.push(...configDifferences(ts.model, JSON.parse(JSON.stringify(modelConfig))));
    if (problems.length) throw new Error(`cannot resume from ${statePath}: the config differs from the checkpoint's: ${problems.join('; ')}`);
    await loadCheckpoint(model, weightsPath);
    const size = this.parts.dist?.size ?? 1;
    const written = ts.loaderShards?.length ?? 1;
    if (written !== size) {
      throw new Error(`cannot resume from ${statePath}: it was written by a run of ${written} process(es), this one has ${size}; ` +
        `resume with the same number (mpirun -np ${written}) to continue exactly`);
    }
    optimizer.loadState({ stepCount: ts.stepCount, tensors: st.tensors });
    globalRng.setState(ts.rng);
    loader.restore(ts.loaderShards ? ts.loaderShards[this.parts.dist?.rank ?? 0] : ts.loader);
    if (ts.runId) this.runId = ts.runId;
    this.lastCheckpoint = basename(weightsPath);
    this.lastCheckpointIter = ts.iter;
    const bestPath = join(dirname(weightsPath), 'best.json');
    let best = existsSync(bestPath) ? readJsonFileSync(bestPath, 'best-checkpoint pointer') as CheckpointPointer : null;
    if (best !== null && !(Number.isInteger(best.iter) && typeof best.value === 'number')) {
      throw new Error(`cannot resume: ${bestPath} is damaged (expected {iter, weights, state, metric, value}); repair or remove it (the best checkpoint is then tracked afresh)`);
    }
    // A best.json from beyond this checkpoint (resuming an older one) is not this run's history.
    if (best !== null && best.iter > ts.iter) best = null;
    return { iter: ts.iter, best, hooks: ts.hooks ?? {} };
  }

  /** Refuses weights and state files that were not written together (and a pointer naming another run's). */
  private async checkPair(weightsPath: string, statePath: string, ts: TrainerState, pointer: { path: string; ptr: CheckpointPointer } | null): Promise<void> {
    if (pointer && pointer.ptr.iter !== ts.iter) {
      throw new Error(`cannot resume: ${pointer.path} names iteration ${pointer.ptr.iter}, but its state file ${statePath} is of iteration ${ts.iter}`);
    }
    if (pointer?.ptr.run_id && ts.runId && pointer.ptr.run_id !== ts.runId) {
      throw new Error(`cannot resume: ${pointer.path} is of run ${pointer.ptr.run_id}, but ${statePath} was written by run ${ts.runId}`);
    }
    if (!ts.weightsSha256) return; // a checkpoint of an older version: nothing to check against
    const digest = await sha256File(weightsPath);
    if (digest !== ts.weightsSha256) {
      throw new Error(`cannot resume: ${weightsPath} and ${statePath} are not one checkpoint: the state (iteration ${ts.iter}, run ${ts.runId}) ` +
        `was written with weights of SHA-256 ${ts.weightsSha256.slice(0, 16)}..., the weights file has ${digest.slice(0, 16)}... ` +
        '(a crash between the two writes, or files of different runs)');
    }
  }
}
