/**
 * Whole-file reading for the checkpoint readers, with uniform error messages.
 *
 * `fs.readFile` refuses files over 2 GiB, which large checkpoints exceed; reading in chunks into one
 * preallocated Buffer lifts that to Node's Buffer limit (4 GiB on Node 20).
 */
import { constants as bufferConstants } from 'node:buffer';
import { open } from 'node:fs/promises';

const CHUNK = 64 * 1024 * 1024;

/**
 * Reads a whole file into memory.
 * @param path the file.
 * @param what how to call the file in errors, e.g. "PyTorch checkpoint".
 * @throws `"<what> not found: <path>"` when it does not exist, or an error naming the path otherwise.
 */
export async function readWholeFile(path: string, what: string): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error(`${what} not found: ${path}`);
    throw new Error(`cannot open ${what} ${path}: ${e.message}`);
  }
  try {
    const { size } = await fh.stat();
    if (size > bufferConstants.MAX_LENGTH) {
      throw new Error(`cannot read ${what} ${path}: it is ${size} bytes, more than the ${bufferConstants.MAX_LENGTH} bytes a Buffer can hold`);
    }
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await fh.read(buf, done, Math.min(CHUNK, size - done), done);
      if (bytesRead === 0) break; // the file shrank while we read it
      done += bytesRead;
    }
    return done === size ? buf : buf.subarray(0, done);
  } catch (err) {
    const msg = (err as Error).message;
    throw new Error(msg.includes(path) ? msg : `cannot read ${what} ${path}: ${msg}`);
  } finally {
    await fh.close();
  }
}
