/**
 * Quick-start demo: trains a tiny Conv2Former classifier on built-in synthetic shape tiles (circle,
 * square, triangle, star, ring on the shapes datasets' textured ground) and reports validation
 * accuracy. Runs anywhere, no data needed; the weights load as a backbone checkpoint
 * (`model.backbone.checkpoint`) of a shapes segmentor with the same dims and depths.
 *
 *   npm run demo [-- --iters 150 --batch 16 --backend wasm]
 */
import { mkdirSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { createConv2Former } from '../src/backbone/conv2former.ts';
import { IMAGENET_MEAN, IMAGENET_STD } from '../src/datasets/imagenet_preprocess.ts';
import { SHAPE_CLASSES, makeShapeBatch, type ShapeBatch } from '../src/datasets/shapes_classification.ts';
import { AdamW } from '../src/engine/adamw.ts';
import { warmupCosineLr } from '../src/engine/lr_schedule.ts';
import { saveSafetensors } from '../src/nn/checkpoint.ts';
import { Rng, manualSeed } from '../src/nn/random.ts';
import { runCli } from './cli.ts';

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .option('iters', { type: 'number', default: 1200 })
    .option('batch', { type: 'number', default: 16 })
    .option('size', { type: 'number', default: 64, describe: 'image side (>= 32)' })
    .option('lr', { type: 'number', default: 2e-3 })
    .option('warmup', { type: 'number', default: 30 })
    .option('log-interval', { type: 'number', default: 25 })
    .option('eval-interval', { type: 'number', default: 50 })
    .option('seed', { type: 'number', default: 0 })
    .option('work-dir', { type: 'string', default: 'work_dirs/demo' })
    .option('backend', { type: 'string', default: 'auto' })
    .strict()
    .parse();
  await initBackend(argv.backend);
  manualSeed(argv.seed);
  const rng = new Rng(argv.seed + 1);
  const model = createConv2Former({ dims: [16, 32, 64, 128], depths: [1, 1, 2, 1], kernelSize: 7 },
    { withHead: true, numClasses: SHAPE_CLASSES.length });
  const optimizer = new AdamW(model, { lr: argv.lr, weightDecay: 0.05 });
  const mean = tf.tensor1d([...IMAGENET_MEAN]);
  const std = tf.tensor1d([...IMAGENET_STD]);
  const toInput = (b: ShapeBatch) => tf.div(tf.sub(tf.tensor(b.images, b.shape), mean), std) as tf.Tensor4D;

  const val = makeShapeBatch(256, argv.size, new Rng(argv.seed + 1000));
  const evaluate = (): number => tf.tidy(() => {
    model.eval();
    let correct = 0;
    for (let i = 0; i < val.labels.length; i += 64) {
      const n = Math.min(64, val.labels.length - i);
      const px = argv.size * argv.size * 3;
      const part: ShapeBatch = { images: val.images.subarray(i * px, (i + n) * px), labels: val.labels.subarray(i, i + n), shape: [n, argv.size, argv.size, 3] };
      const pred = tf.argMax(model.forwardLogits(toInput(part)), 1).dataSync();
      pred.forEach((p, j) => { if (p === part.labels[j]) correct++; });
    }
    model.train();
    return correct / val.labels.length;
  });

  console.log(`training a tiny Conv2Former (${(model.numParameters() / 1e6).toFixed(2)}M params) on synthetic shapes: ` +
    `${SHAPE_CLASSES.join(', ')}; ${argv.iters} iterations of ${argv.batch} images ${argv.size}x${argv.size}`);
  model.train();
  const t0 = performance.now();
  let smooth = NaN;
  for (let it = 1; it <= argv.iters; it++) {
    const batch = makeShapeBatch(argv.batch, argv.size, rng);
    optimizer.lr = warmupCosineLr(argv.lr, it, argv.warmup, argv.iters);
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.forwardLogits(toInput(batch));
      return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(batch.labels, 'int32'), SHAPE_CLASSES.length), logits) as tf.Scalar;
    }, optimizer.variables);
    optimizer.step(grads);
    const l = (await value.data())[0];
    tf.dispose([value, ...Object.values(grads)]);
    if (!Number.isFinite(l)) throw new Error(`loss became ${l} at iteration ${it}; lower --lr`);
    smooth = Number.isNaN(smooth) ? l : 0.9 * smooth + 0.1 * l;
    if (it % argv.logInterval === 0 || it === argv.iters) {
      const s = (performance.now() - t0) / 1000 / it;
      console.log(`iter ${it}/${argv.iters}  lr ${optimizer.lr.toExponential(2)}  loss ${smooth.toFixed(4)}  ${s.toFixed(2)} s/iter  ` +
        `ETA ${Math.round(s * (argv.iters - it))} s  tensors ${tf.memory().numTensors}` +
        (it % argv.evalInterval === 0 || it === argv.iters ? `  val acc ${(evaluate() * 100).toFixed(1)}%` : ''));
    }
  }
  mkdirSync(argv.workDir, { recursive: true });
  const out = `${argv.workDir}/shapes_classifier.safetensors`;
  await saveSafetensors(model, out);
  console.log(`final validation accuracy ${(evaluate() * 100).toFixed(1)}% on ${val.labels.length} images; weights: ${out}`);
  tf.dispose([mean, std]);
  optimizer.dispose();
  model.dispose();
});
