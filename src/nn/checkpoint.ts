/**
 * Loading and saving a Module's weights: `.pth`/`.pth.tar` (PyTorch zip format) and `.safetensors`,
 * always with PyTorch key names and layouts.
 */
import { existsSync, openSync, readSync, closeSync } from 'node:fs';
import { readSafetensors, writeSafetensors } from '../io/safetensors.ts';
import type { TensorDict } from '../io/tensor_data.ts';
import { readTorchCheckpoint } from '../io/torch_checkpoint.ts';
import type { LoadResult, Module } from './module.ts';

/** Whether a file starts with a ZIP local-file header (what `torch.save` writes). */
function looksLikeZip(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(4);
    return readSync(fd, head, 0, 4, 0) === 4 && head.readUInt32LE(0) === 0x04034b50;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads every tensor of a checkpoint file in PyTorch layout. `.safetensors` by extension, anything
 * else as a PyTorch file (unwrapping `state_dict`/`state_dict_ema`/`model` and `module.`).
 * @throws naming the path when it is missing, corrupt or of an unsupported format.
 */
export async function readCheckpointFile(path: string, opts: { key?: string } = {}): Promise<TensorDict> {
  if (!existsSync(path)) throw new Error(`checkpoint not found: ${path}`);
  const torchLike = looksLikeZip(path) || /\.(pth|pt|tar|bin|ckpt)$/.test(path);
  if (path.endsWith('.safetensors') || !torchLike) return (await readSafetensors(path)).tensors;
  // The torch reader also explains legacy (pre-1.6, non-zip) files and corrupt archives.
  return readTorchCheckpoint(path, opts);
}

/**
 * Loads a checkpoint into `module`. Shape mismatches always fail, naming the file, key and both
 * shapes; with `strict` (default true) missing or unexpected keys fail too.
 * @returns the keys the module has but the file lacks (`missing`) and the reverse (`unexpected`).
 */
export async function loadCheckpoint(module: Module, path: string, opts: { strict?: boolean; key?: string } = {}): Promise<LoadResult> {
  const dict = await readCheckpointFile(path, { key: opts.key });
  try {
    return module.loadStateDict(dict, { strict: opts.strict });
  } catch (err) {
    throw new Error(`cannot load checkpoint ${path}: ${(err as Error).message}`);
  }
}

/** Writes the module's state dict (PyTorch names and layouts) as safetensors, atomically. */
export async function saveSafetensors(module: Module, path: string, metadata?: Record<string, string>): Promise<void> {
  await writeSafetensors(path, module.stateDict(), metadata);
}
