/**
 * Backbone speed: seconds per image for a forward pass and for forward+backward (a training step
 * without the optimiser), Conv2Former-T at 224 and the tiny test size, on cpu and wasm.
 *
 *   npm run bench:backbone [-- --backends wasm --iters 3 --sizes t:224,tiny:64x96]
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { median, timeRuns } from './timing.ts';
import { createConv2Former, type Conv2FormerConfig, type Conv2FormerVariant } from '../src/backbone/conv2former.ts';

const TINY: Conv2FormerConfig = { dims: [16, 32, 64, 128], depths: [1, 1, 2, 1], kernelSize: 11 };

const argv = await yargs(hideBin(process.argv))
  .option('backends', { type: 'string', default: 'cpu,wasm', describe: 'comma-separated backends' })
  .option('sizes', { type: 'string', default: 't:224,tiny:64x96', describe: 'model:HxW list (model: n,t,s,b,l,tiny)' })
  .option('iters', { type: 'number', default: 3, describe: 'timed iterations (after one warm-up)' })
  .option('batch', { type: 'number', default: 1 })
  .strict()
  .parse();

for (const backend of argv.backends.split(',')) {
  await initBackend(backend, { quiet: true });
  for (const spec of argv.sizes.split(',')) {
    const [model, size] = spec.split(':');
    const [h, w] = size.includes('x') ? size.split('x').map(Number) : [Number(size), Number(size)];
    const net = createConv2Former(model === 'tiny' ? TINY : (model as Conv2FormerVariant));
    net.train();
    const x = tf.randomNormal([argv.batch, h, w, 3]) as tf.Tensor4D;
    const vars = net.trainableVariables();
    const forward = async () => {
      const outs = tf.tidy(() => { net.eval(); const o = net.forward(x); net.train(); return o; });
      await outs[outs.length - 1].data();
      tf.dispose(outs);
    };
    const trainStep = async () => {
      const { value, grads } = tf.variableGrads(() => tf.addN(net.forward(x).map((o) => tf.mean(tf.square(o)))) as tf.Scalar, vars);
      await Promise.all(Object.values(grads).map((g) => g.data()));
      tf.dispose([value, ...Object.values(grads)]);
    };
    const fwd = median(await timeRuns(forward, argv.iters)) / argv.batch;
    const step = median(await timeRuns(trainStep, argv.iters)) / argv.batch;
    const line = `${backend.padEnd(5)} ${model.padEnd(5)} ${String(h + 'x' + w).padEnd(8)} batch ${argv.batch}  forward ${fwd.toFixed(3)} s/img  forward+backward ${step.toFixed(3)} s/img`;
    console.log(line);
    x.dispose();
    net.dispose();
  }
}
console.log('\nReference (DESIGN.md): PyTorch 1.13 CPU, 2 threads, Conv2Former-T at 224: forward 0.20 s, training step 0.66 s.');
