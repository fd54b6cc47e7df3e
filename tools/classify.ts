/**
 * Prints the top-5 ImageNet classes of images, to check that downloaded official weights load and
 * work: resize shorter side to 256, centre-crop 224, ImageNet mean/std.
 *
 *   npx tsx tools/classify.ts --variant n --checkpoint conv2former_n.pth cat.jpg dog.png
 *   npx tsx tools/classify.ts --engine onnxruntime --checkpoint c2f_n_cls.onnx cat.jpg
 *       (a classifier exported by tools/export.ts --format onnx --with-head)
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/backend.ts';
import { CONV2FORMER_VARIANTS, createConv2Former, type Conv2FormerVariant } from '../src/backbone/conv2former.ts';
import { assertVariant, inferConv2FormerConfig } from '../src/backbone/conv2former_checkpoint.ts';
import { IMAGENET_CLASSES } from '../src/datasets/imagenet_classes.ts';
import { loadClassificationInput } from '../src/datasets/imagenet_preprocess.ts';
import { readCheckpointFile } from '../src/nn/checkpoint.ts';
import { createSession, runOnImages } from '../src/onnx/runtime.ts';
import { runCli } from './cli.ts';

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 --checkpoint CKPT [--variant n|t|s|b|l] IMAGE...')
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'official ImageNet checkpoint (.pth/.pth.tar/.safetensors)' })
    .option('variant', { type: 'string', choices: Object.keys(CONV2FORMER_VARIANTS), describe: 'expected variant; checked against the checkpoint' })
    .option('key', { type: 'string', describe: 'checkpoint entry holding the weights' })
    .option('top', { type: 'number', default: 5 })
    .option('backend', { type: 'string', default: 'auto' })
    .option('engine', { type: 'string', choices: ['tfjs', 'onnxruntime'], default: 'tfjs', describe: 'onnxruntime: --checkpoint is an exported classifier .onnx' })
    .option('threads', { type: 'number', describe: 'onnxruntime: intra-op threads' })
    .demandCommand(1, 'give at least one image')
    .strict()
    .parse();
  await initBackend(argv.backend);
  const print = (image: string, probs: ArrayLike<number>) => {
    const top = [...Array.from(probs).keys()].sort((a, b) => probs[b] - probs[a]).slice(0, argv.top);
    console.log(image);
    for (const i of top) console.log(`  ${(probs[i] * 100).toFixed(2).padStart(6)}%  ${String(i).padStart(4)}  ${IMAGENET_CLASSES[i] ?? `class ${i}`}`);
  };
  if (argv.engine === 'onnxruntime') {
    if (!argv.checkpoint.endsWith('.onnx')) throw new Error(`--engine onnxruntime: --checkpoint must be an exported classifier .onnx (tools/export.ts --format onnx --with-head), got ${argv.checkpoint}`);
    const session = await createSession(argv.checkpoint, { threads: argv.threads });
    for (const image of argv._.map(String)) {
      const input = await loadClassificationInput(image);
      const x = tf.tensor(input.data, input.shape) as tf.Tensor4D;
      const out = (await runOnImages(session, x))[session.outputNames[0]];
      x.dispose();
      print(image, tf.tidy(() => tf.softmax(tf.tensor2d(out.data as Float32Array, out.dims as [number, number])).dataSync()));
      out.dispose();
    }
    await session.release();
    return;
  }
  const dict = await readCheckpointFile(argv.checkpoint, { key: argv.key });
  const cfg = inferConv2FormerConfig(dict, argv.checkpoint);
  if (argv.variant) assertVariant(cfg, argv.variant as Conv2FormerVariant, argv.checkpoint);
  const predShape = dict.get('pred.weight')?.shape;
  if (!predShape) throw new Error(`${argv.checkpoint} has no classifier ('pred.weight'); it is a backbone-only file`);
  const model = createConv2Former(cfg, { withHead: true, numClasses: predShape[0], init: 'zeros' });
  try {
    model.loadStateDict(dict);
  } catch (err) {
    throw new Error(`cannot load checkpoint ${argv.checkpoint}: ${(err as Error).message}`);
  }
  model.eval();
  for (const image of argv._.map(String)) {
    const input = await loadClassificationInput(image);
    print(image, tf.tidy(() => tf.softmax(model.forwardLogits(tf.tensor(input.data, input.shape) as tf.Tensor4D)).dataSync()));
  }
  model.dispose();
});
