/**
 * Writes the synthetic shapes datasets: COCO-layout instances and ADE20K-layout semantic maps
 * (see src/datasets/shapes.ts), deterministic by seed.
 *
 *   npx tsx tools/make_shapes.ts --out data/shapes [--seed 0] [--train 200] [--val 50] \
 *     [--min-size 160] [--max-size 320] [--what instances,semantic]
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { generateShapes, type ShapesTask } from '../src/datasets/shapes.ts';
import { runCli } from './cli.ts';

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 --out DIR [--seed 0] [--train 200] [--val 50] [--min-size 160] [--max-size 320] [--what instances,semantic]')
    .option('out', { type: 'string', demandOption: true, describe: 'output folder (coco/ and ade/ are written in it)' })
    .option('seed', { type: 'number', default: 0 })
    .option('train', { type: 'number', default: 200, describe: 'training images per dataset' })
    .option('val', { type: 'number', default: 50, describe: 'validation images per dataset' })
    .option('min-size', { type: 'number', default: 160, describe: 'smallest image side' })
    .option('max-size', { type: 'number', default: 320, describe: 'largest image side' })
    .option('what', { type: 'string', default: 'instances,semantic', describe: 'comma-separated: instances, semantic' })
    .strict()
    .parse();
  const what = argv.what.split(',').map((s) => s.trim()).filter((s) => s !== '') as ShapesTask[];
  await generateShapes({ out: argv.out, seed: argv.seed, train: argv.train, val: argv.val, minSize: argv.minSize, maxSize: argv.maxSize, what });
});
