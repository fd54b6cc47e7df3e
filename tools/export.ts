/**
 * Exports a model for reuse.
 *
 * safetensors (default): a Conv2Former backbone (no classifier) from an official checkpoint, with
 * PyTorch key names, plus a JSON sidecar describing it:
 *
 *   npx tsx tools/export.ts --variant t --checkpoint conv2former_t.pth --out backbone.safetensors
 *
 * ONNX (opset 17; input `input` NCHW float32 [batch, 3, height, width], all three dynamic), with a
 * JSON sidecar (`<out>.json`: outputs, preprocessing mean/std, classes and palette):
 *
 *   npx tsx tools/export.ts --format onnx --checkpoint conv2former_t.pth --out c2f_t.onnx [--with-head]
 *       backbone: outputs stage1..stage4 [batch, C_i, H/4..H/32, ...]; --with-head: ImageNet `logits`
 *   npx tsx tools/export.ts --format onnx --config configs/upernet_c2f_shapes.yaml \
 *       --checkpoint work_dirs/upernet_c2f_shapes/latest --out seg.onnx [--no-resize]
 *       UperNet segmentor: `logits` [batch, K, height, width] (resized to the input as mmseg's
 *       encode_decode; --no-resize: at stride 4). With a Mask R-CNN / Cascade Mask R-CNN config: the
 *       dense part (backbone + FPN + RPN head; outputs feat{l}, rpn_cls{l}, rpn_reg{l} per FPN level)
 *       and the RoI heads' weights in `<out stem>.roi_head.safetensors` for tools/test.ts --engine onnxruntime
 *
 * CHECKPOINT for --config: weights, a pointer JSON written by tools/train.ts, or such a pointer
 * without `.json` (as tools/test.ts).
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/backend.ts';
import { CONV2FORMER_VARIANTS, createConv2Former, type Conv2FormerVariant } from '../src/backbone/conv2former.ts';
import { assertVariant, inferConv2FormerConfig } from '../src/backbone/conv2former_checkpoint.ts';
import { EXPERIMENT_OPEN_PATHS, loadConfig, validateExperimentConfig } from '../src/config/index.ts';
import { buildDataset } from '../src/datasets/build.ts';
import { IMAGENET_MEAN, IMAGENET_STD } from '../src/datasets/imagenet_preprocess.ts';
import { resolveWeights } from '../src/engine/checkpointer.ts';
import { writeFileAtomic } from '../src/io/atomic_write.ts';
import { buildValidatedModel, validateModelConfig } from '../src/models/build.ts';
import { loadCheckpoint, readCheckpointFile, saveSafetensors } from '../src/nn/checkpoint.ts';
import { exportOnnx, roiWeightsOf, writeOnnx, type OnnxExportKind } from '../src/onnx/export.ts';
import { writeSafetensors } from '../src/io/safetensors.ts';
import { runCli } from './cli.ts';

/** The step of `type` in a config pipeline (undefined when there is none). */
function pipelineStep<T>(pipeline: unknown, type: string): Partial<T> | undefined {
  return Array.isArray(pipeline) ? pipeline.find((s) => (s as { type?: string })?.type === type) as Partial<T> | undefined : undefined;
}

/** The test pipeline's keep-ratio `Resize` (what a user must do before the model), if any. */
function resizeOf(pipeline: unknown): { scale: unknown; keep_ratio: boolean } | null {
  const step = pipelineStep<{ scale: unknown; keep_ratio: boolean }>(pipeline, 'Resize');
  return step?.scale !== undefined ? { scale: step.scale, keep_ratio: step.keep_ratio ?? true } : null;
}

/** The `Normalize` step of a pipeline (mean/std in 0..255), if any. */
function normalizeOf(pipeline: unknown): { mean: number[]; std: number[] } | null {
  const step = pipelineStep<{ mean: number[]; std: number[] }>(pipeline, 'Normalize');
  return step?.mean && step.std ? { mean: step.mean, std: step.std } : null;
}

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 --checkpoint IN --out OUT [--format safetensors|onnx] [--variant n|t|s|b|l] [--config CFG] [--with-head] [--no-resize]')
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'official .pth/.pth.tar or .safetensors; with --config: trained weights or a pointer JSON' })
    .option('out', { type: 'string', demandOption: true, describe: 'output file (.safetensors or .onnx; a .json sidecar is written beside it)' })
    .option('format', { type: 'string', choices: ['safetensors', 'onnx'], default: 'safetensors' })
    .option('config', { type: 'string', describe: 'onnx: export the model of this training config (UperNet segmentor)' })
    .option('variant', { type: 'string', choices: Object.keys(CONV2FORMER_VARIANTS), describe: 'expected variant; checked against the checkpoint' })
    .option('with-head', { type: 'boolean', default: false, describe: 'onnx backbone: keep the ImageNet head (logits output)' })
    .option('resize', { type: 'boolean', default: true, describe: 'onnx segmentor: logits resized to the input size (--no-resize: stride 4)' })
    .option('key', { type: 'string', describe: 'checkpoint entry holding the weights (default: state_dict, state_dict_ema, model, or the file itself)' })
    .option('backend', { type: 'string', default: 'auto' })
    .strict()
    .parse();
  const ext = argv.format === 'onnx' ? '.onnx' : '.safetensors';
  if (!argv.out.endsWith(ext)) throw new Error(`--out must end with ${ext} for --format ${argv.format}, got ${argv.out}`);
  if (argv.config && argv.format !== 'onnx') throw new Error('--config is for --format onnx (the safetensors export takes an official backbone checkpoint)');
  await initBackend(argv.backend);
  await mkdir(path.dirname(path.resolve(argv.out)), { recursive: true });
  const sidecar = argv.out.replace(/\.(safetensors|onnx)$/, '.json');

  if (argv.config) {
    const cfgPath = argv.config;
    const cfg = validateExperimentConfig(loadConfig(cfgPath, { openPaths: EXPERIMENT_OPEN_PATHS }), cfgPath);
    const model = await buildValidatedModel(validateModelConfig(cfg.model, cfgPath), { file: cfgPath, log: () => undefined, loadCheckpoint: false });
    const weights = await resolveWeights(argv.checkpoint);
    await loadCheckpoint(model, weights, { strict: true });
    model.eval();
    const detector = model.task === 'detection';
    const exp = exportOnnx(model, detector ? { kind: 'detector' } : { kind: 'segmentor', resize: argv.resize }, argv.out);
    await writeOnnx(exp, argv.out);
    if (detector) {
      // The RoI stages run in TypeScript (tools/test.ts --engine onnxruntime): their weights go beside the model.
      const roi = new Map([...model.stateDict()].filter(([k]) => k.startsWith('roi_head.')));
      await writeSafetensors(roiWeightsOf(argv.out), roi, { format: 'pt' });
    }
    const split = cfg.data.test ? 'test' : 'val';
    const block = cfg.data[split] as { pipeline?: unknown };
    const ds = await buildDataset(cfg.data[split], { file: cfgPath, path: `data.${split}` }).catch(() => null);
    const info = {
      model: detector ? `${cfg.model.type} dense part (backbone + FPN + RPN head)` : 'UperNet + Conv2Former', config: path.basename(cfgPath), checkpoint: path.basename(weights),
      input: { name: 'input', layout: 'NCHW float32 RGB', dims: ['batch', 3, 'height', 'width'], resize: resizeOf(block.pipeline), normalize: normalizeOf(block.pipeline) },
      outputs: detector ? exp.outputs.map((name) => ({ name }))
        : [{ name: 'logits', dims: ['batch', model.numClasses, argv.resize ? 'height' : 'height/4', argv.resize ? 'width' : 'width/4'] }],
      ...(detector ? { roi_head_weights: path.basename(roiWeightsOf(argv.out)) } : {}),
      classes: ds?.classes ?? null, palette: ds?.palette ?? null, opset: 17,
    };
    await ds?.close?.();
    await writeFileAtomic(sidecar, JSON.stringify(info, null, 2) + '\n');
    console.log(`wrote ${argv.out} (${(exp.model.length / 2 ** 20).toFixed(1)} MiB${exp.externalName ? ` + ${exp.externalName}` : ''})` +
      `${detector ? `, ${roiWeightsOf(argv.out)}` : ''} and ${sidecar}`);
    model.dispose();
    return;
  }

  const dict = await readCheckpointFile(argv.checkpoint, { key: argv.key });
  const cfg = inferConv2FormerConfig(dict, argv.checkpoint);
  if (argv.variant) assertVariant(cfg, argv.variant as Conv2FormerVariant, argv.checkpoint);
  const withHead = argv.format === 'onnx' && argv['with-head'];
  const backbone = createConv2Former(cfg, { init: 'zeros', withHead });
  const { missing, unexpected } = backbone.loadStateDict(dict, { strict: false });
  if (missing.length) throw new Error(`${argv.checkpoint} lacks ${withHead ? 'backbone/head' : 'backbone'} weights: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`);
  const dropped = unexpected.filter((k) => withHead || !/^(head|pred)\./.test(k));
  if (dropped.length) console.warn(`warning: ignoring ${dropped.length} keys that are not part of the ${withHead ? 'model' : 'backbone'}: ${dropped.slice(0, 5).join(', ')}`);

  const info = {
    architecture: 'Conv2Former',
    variant: argv.variant ?? null,
    dims: cfg.dims,
    depths: cfg.depths,
    kernel_size: cfg.kernelSize,
    mlp_ratio: 4,
    out_channels: cfg.dims,
    out_strides: [4, 8, 16, 32],
    layout: argv.format === 'onnx' ? 'ONNX, input NCHW float32' : 'PyTorch (NCHW conv weights [out, in/groups, kh, kw])',
    input: { mean: IMAGENET_MEAN, std: IMAGENET_STD, range: '0..1 RGB' },
    ...(argv.format === 'onnx' ? { outputs: withHead ? ['logits'] : ['stage1', 'stage2', 'stage3', 'stage4'], opset: 17 } : {}),
    source: path.basename(argv.checkpoint),
  };
  if (argv.format === 'onnx') {
    backbone.eval();
    const what: OnnxExportKind = { kind: withHead ? 'classifier' : 'backbone' };
    const exp = exportOnnx(backbone, what, argv.out);
    await writeOnnx(exp, argv.out);
    await writeFileAtomic(sidecar, JSON.stringify(info, null, 2) + '\n');
    console.log(`wrote ${argv.out} (${(exp.model.length / 2 ** 20).toFixed(1)} MiB${exp.externalName ? ` + ${exp.externalName}` : ''}; outputs ${exp.outputs.join(', ')}) and ${sidecar}`);
  } else {
    await saveSafetensors(backbone, argv.out, { format: 'pt', conv2former: JSON.stringify(info) });
    await writeFileAtomic(sidecar, JSON.stringify(info, null, 2) + '\n');
    const params = (backbone.numParameters() / 1e6).toFixed(2);
    console.log(`wrote ${argv.out} (${backbone.namedStates().length} tensors, ${params}M parameters, k=${cfg.kernelSize}) and ${sidecar}`);
  }
  backbone.dispose();
});
