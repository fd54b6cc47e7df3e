/**
 * The data-loading worker thread (see parallel_dataset.ts): builds the dataset from the config block
 * it is given and answers sample requests in order of arrival, several in flight at once (image
 * decoding runs in libuv threads).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Rng } from '../nn/random.ts';
import { buildDataset } from './build.ts';
import type { DataWorkerInit, DataWorkerReply, SampleRequest } from './parallel_dataset.ts';

const init = workerData as DataWorkerInit;
const port = parentPort!;
const post = (r: DataWorkerReply): void => port.postMessage(r);

const dataset = await buildDataset(init.block, init.at, init.overrides);
port.on('message', (req: SampleRequest) => {
  const rng = new Rng(0);
  rng.setState(req.rng);
  let p: Promise<Awaited<ReturnType<typeof dataset.getSample>>>;
  try {
    p = dataset.getSample(req.index, rng);
  } catch (e) {
    p = Promise.reject(e);
  }
  p.then(
    (sample) => post({ type: 'sample', id: req.id, index: req.index, sample, bad: sample === null ? dataset.badSampleOf?.(req.index) ?? null : null }),
    (e: unknown) => post({ type: 'error', id: req.id, message: e instanceof Error ? e.message : String(e) }),
  );
});
post({ type: 'ready', length: dataset.length });
