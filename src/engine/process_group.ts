/**
 * The processes of a distributed run as the engine sees them (an MPI job is one: src/dist/): this
 * process's rank among `size` and an all-gather of bytes. Training (the trainer and its
 * checkpoints) and sharded evaluation take it; single-process code passes none.
 */
import { fromJsonBytes, jsonBytes } from '../io/json_file.ts';

export interface ProcessGroup {
  rank: number;
  size: number;
  /** Every process's bytes, indexed by rank. */
  allGather(bytes: Uint8Array): Promise<Uint8Array[]>;
}

/** Every process's `value` (JSON-serialisable), indexed by rank. */
export async function allGatherJson<T>(group: ProcessGroup, value: T): Promise<T[]> {
  return (await group.allGather(jsonBytes(value))).map((b) => fromJsonBytes<T>(b));
}
