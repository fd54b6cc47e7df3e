/**
 * Exports a Conv2Former backbone (no classifier) from an official checkpoint to safetensors with
 * PyTorch key names, plus a JSON sidecar describing it.
 *
 *   npx tsx tools/export.ts --variant t --checkpoint conv2former_t.pth --out backbone.safetensors
 */
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/backend.ts';
import { CONV2FORMER_VARIANTS, createConv2Former, type Conv2FormerVariant } from '../src/backbone/conv2former.ts';
import { assertVariant, inferConv2FormerConfig } from '../src/backbone/conv2former_checkpoint.ts';
import { IMAGENET_MEAN, IMAGENET_STD } from '../src/datasets/imagenet_preprocess.ts';
import { writeFileAtomic } from '../src/io/atomic_write.ts';
import { readCheckpointFile, saveSafetensors } from '../src/nn/checkpoint.ts';
import { runCli } from './cli.ts';

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 --checkpoint IN --out OUT.safetensors [--variant n|t|s|b|l]')
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'official .pth/.pth.tar or .safetensors' })
    .option('out', { type: 'string', demandOption: true, describe: 'output .safetensors (a .json sidecar is written beside it)' })
    .option('variant', { type: 'string', choices: Object.keys(CONV2FORMER_VARIANTS), describe: 'expected variant; checked against the checkpoint' })
    .option('key', { type: 'string', describe: 'checkpoint entry holding the weights (default: state_dict, state_dict_ema, model, or the file itself)' })
    .option('backend', { type: 'string', default: 'auto' })
    .strict()
    .parse();
  if (!argv.out.endsWith('.safetensors')) throw new Error(`--out must end with .safetensors, got ${argv.out}`);
  await initBackend(argv.backend);

  const dict = await readCheckpointFile(argv.checkpoint, { key: argv.key });
  const cfg = inferConv2FormerConfig(dict, argv.checkpoint);
  if (argv.variant) assertVariant(cfg, argv.variant as Conv2FormerVariant, argv.checkpoint);
  const backbone = createConv2Former(cfg, { init: 'zeros' });
  const { missing, unexpected } = backbone.loadStateDict(dict, { strict: false });
  if (missing.length) throw new Error(`${argv.checkpoint} lacks backbone weights: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
  const dropped = unexpected.filter((k) => !/^(head|pred)\./.test(k));
  if (dropped.length) console.warn(`warning: ignoring ${dropped.length} keys that are not part of the backbone: ${dropped.slice(0, 5).join(', ')}`);

  const info = {
    architecture: 'Conv2Former',
    variant: argv.variant ?? null,
    dims: cfg.dims,
    depths: cfg.depths,
    kernel_size: cfg.kernelSize,
    mlp_ratio: 4,
    out_channels: cfg.dims,
    out_strides: [4, 8, 16, 32],
    layout: 'PyTorch (NCHW conv weights [out, in/groups, kh, kw])',
    input: { mean: IMAGENET_MEAN, std: IMAGENET_STD, range: '0..1 RGB' },
    source: path.basename(argv.checkpoint),
  };
  await saveSafetensors(backbone, argv.out, { format: 'pt', conv2former: JSON.stringify(info) });
  const sidecar = argv.out.replace(/\.safetensors$/, '.json');
  await writeFileAtomic(sidecar, JSON.stringify(info, null, 2) + '\n');
  const params = (backbone.numParameters() / 1e6).toFixed(2);
  console.log(`wrote ${argv.out} (${backbone.namedStates().length} tensors, ${params}M parameters, k=${cfg.kernelSize}) and ${sidecar}`);
  backbone.dispose();
});
