/**
 * A data-parallel worker thread (see `data_parallel.ts`): builds a replica of the model, then per
 * request loads the sent weights, seeds `globalRng` and returns the gradients of its batch slice.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend.ts';
import { unpackBatch } from '../datasets/batch_transfer.ts';
import { buildModel } from '../models/build.ts';
import { manualSeed } from '../nn/random.ts';
import type { GradRequest, WorkerInit, WorkerReply } from './data_parallel.ts';
import { batchGradients } from './gradients.ts';

const port = parentPort!;
const init = workerData as WorkerInit;
const send = (r: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(r, transfer);

try {
  await initBackend(init.backend, { quiet: true, wasmThreads: 1 });
  const model = await buildModel(init.modelConfig, { file: init.file, log: () => {} });
  model.train();
  const params = model.namedParameters();
  const trainable = params.filter(([, p]) => p.trainable);
  const vars = trainable.map(([, p]) => p.variable);
  const total = vars.reduce((s, v) => s + v.size, 0);

  port.on('message', (req: GradRequest) => {
    try {
      let off = 0;
      for (const [, p] of params) {
        const v = p.variable;
        tf.tidy(() => v.assign(tf.tensor(req.weights.subarray(off, off + v.size), v.shape, 'float32')));
        off += v.size;
      }
      manualSeed(req.seed);
      const batch = unpackBatch(req.batch);
      let r;
      try {
        r = batchGradients(model, batch, vars);
      } finally {
        batch.dispose();
      }
      const flat = new Float32Array(total);
      const present: boolean[] = [];
      off = 0;
      for (const v of vars) {
        const g = r.grads[v.name];
        present.push(g !== undefined);
        if (g) flat.set(g.dataSync() as Float32Array, off);
        off += v.size;
      }
      tf.dispose(r.grads);
      send({ type: 'grads', grads: flat, present, parts: r.parts, total: r.total, numTensors: tf.memory().numTensors }, [flat.buffer as ArrayBuffer]);
    } catch (e) {
      send({ type: 'error', message: (e as Error).message });
    }
  });
  send({ type: 'ready', params: params.map(([k, p]) => [k, p.variable.size]), trainable: trainable.map(([k]) => k) });
} catch (e) {
  send({ type: 'error', message: (e as Error).message });
}
