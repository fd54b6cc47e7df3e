/**
 * Atomic file writes: the bytes go to a temporary file in the same folder, are fsynced, and the
 * file is renamed over the target, so readers (and a crash) only ever see the old file or the
 * complete new one, never a truncated one.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { faultPoint } from '../util/fault_points.ts';

/** Whether a file name is one of this module's temporaries (`.NAME.PID.HEX.tmp`), left by an interrupted write. */
export function isAtomicTemporary(name: string): boolean {
  return /^\..+\.\d+\.[0-9a-f]{12}\.tmp$/.test(name);
}

/**
 * Writes `data` (a string, bytes, or byte chunks written in order) to `path` atomically.
 * @throws naming `path` when the folder is missing or not writable.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array | readonly Uint8Array[]): Promise<void> {
  const parts = typeof data === 'string' ? [Buffer.from(data, 'utf8')] : data instanceof Uint8Array ? [data] : data;
  const dir = dirname(path);
  // Same folder: rename is only atomic within one filesystem.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`); // see isAtomicTemporary
  try {
    const fh = await open(tmp, 'wx');
    try {
      for (const part of parts) {
        // write() may be partial for huge chunks (Linux caps one write at ~2 GiB), so loop.
        for (let done = 0; done < part.length; ) done += (await fh.write(part, done, part.length - done)).bytesWritten;
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
    faultPoint('atomic:rename');
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new Error(`cannot write ${path}: ${(err as Error).message}`);
  }
  // Persist the rename itself; directories cannot be opened for fsync on every platform, hence best effort.
  try {
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* best effort */
  }
}
