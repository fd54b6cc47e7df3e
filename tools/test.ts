/**
 * Evaluates a trained model (MMDet/MMSeg `tools/test.py`): builds `data.test` (else `data.val`) and
 * the model of CONFIG, loads CHECKPOINT strictly, predicts with the model's `test_cfg` and prints
 * the `val_evaluator`'s metrics (default by the model's task: mIoU table, COCO box/mask AP).
 *
 *   npx tsx tools/test.ts CONFIG CHECKPOINT [--out PATH] [--metrics-out FILE.json] [--aug-test]
 *     [--show-dir DIR] [--show-score-thr 0.3] [--cfg-options k=v ...] [--backend NAME]
 *
 * CHECKPOINT: weights (`iter_<n>.safetensors`, or a .pth/.bin tfjs-readable checkpoint), a pointer
 * JSON written by tools/train.ts (`latest.json`, `best.json`), or such a pointer without its `.json`
 * (`work_dirs/x/latest`).
 * - `--metrics-out`: the evaluator's full result as JSON (segmentation: `{"aAcc", "mIoU", "mAcc",
 *   "per_class": {"IoU", "Acc"}}` as fractions, NaN as null; COCO: stats and per-category AP per
 *   iou type), plus `num_images` (in the split), `num_evaluated`, `num_skipped` and `first_skipped`
 *   (`FILE: cause`, null when none); written atomically. A bad image is skipped, counted and named
 *   (`skipped N of M samples (first: FILE: cause)`); `--strict-data` makes it an error.
 * - `--out`: segmentation: a folder of predicted label maps (8-bit PNGs of class ids, `<stem>.png`);
 *   detection: COCO results `PATH.bbox.json` / `PATH.segm.json`.
 * - `--show-dir`: segmentation: predictions in the dataset's palette blended 50% over the image;
 *   detection: detections scoring at least `--show-score-thr` (translucent masks, boxes,
 *   `class|score` labels) drawn over the image.
 * Detection prints pycocotools' summary block per iou type (bbox, segm) and a per-category AP table.
 * - `--aug-test`: the test-time augmentation of `model.test_cfg.aug` (segmentors: flip + scales
 *   0.5..1.75 by default, softmax probabilities averaged).
 * - `--launcher mpi` (under `mpirun -np N`): each rank predicts its shard of the images, rank 0 prints
 *   and writes the metrics of the union and the COCO results files (gathered in dataset order: the
 *   same bytes as one process's); label maps and overlays are written by the rank that predicted them.
 * - `--engine onnxruntime`: CHECKPOINT is a model exported by `tools/export.ts --format onnx`, run in
 *   onnxruntime-node (optional dependency). Segmentors: slide/whole, TTA and the resizing back to
 *   the original size are shared with the tfjs engine. Detectors: the dense part (backbone, FPN,
 *   RPN head) in onnxruntime, proposals and RoI heads here (`<stem>.roi_head.safetensors` beside the
 *   .onnx). `--threads N` sets onnxruntime's threads.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { initBackend } from '../src/backend.ts';
import { EXPERIMENT_OPEN_PATHS, loadConfig, validateExperimentConfig } from '../src/config/index.ts';
import { buildLoadingDataset } from '../src/datasets/build.ts';
import { evaluateModel } from '../src/engine/evaluate.ts';
import { allGatherJson } from '../src/engine/process_group.ts';
import { resolveWeights } from '../src/engine/checkpointer.ts';
import { buildEvaluator } from '../src/evaluation/build.ts';
import { buildPredictionWriters } from '../src/evaluation/prediction_writers.ts';
import { writeFileAtomic } from '../src/io/atomic_write.ts';
import { buildValidatedModel, validateModelConfig } from '../src/models/build.ts';
import type { Predictor } from '../src/models/model.ts';
import { loadCheckpoint } from '../src/nn/checkpoint.ts';
import { onnxPredictor } from '../src/onnx/runtime.ts';
import { loadMpi } from '../src/dist/mpi.ts';
import { runCli } from './cli.ts';

await runCli(async () => {
  const argv = await yargs(hideBin(process.argv))
    .usage('$0 CONFIG CHECKPOINT [--out PRED_DIR] [--metrics-out FILE.json] [--aug-test] [--show-dir DIR] [--show-score-thr T] [--backend NAME]')
    .option('out', { type: 'string', describe: 'segmentation: folder for predicted label PNGs; detection: COCO results file stem' })
    .option('metrics-out', { type: 'string', describe: 'JSON file for the metrics' })
    .option('aug-test', { type: 'boolean', default: false, describe: 'test-time augmentation of model.test_cfg.aug (flip + scales)' })
    .option('show-dir', { type: 'string', describe: 'folder for the predictions drawn over the images' })
    .option('show-score-thr', { type: 'number', default: 0.3, describe: 'detection --show-dir: draw detections scoring at least this' })
    .option('cfg-options', { type: 'string', array: true, describe: 'overrides a.b.c=value' })
    .option('batch-size', { type: 'number', default: 1, describe: 'images per forward pass' })
    .option('backend', { type: 'string', default: 'auto', describe: 'tfjs backend: auto, tensorflow-gpu, tensorflow, wasm, cpu (auto honours C2F_BACKEND)' })
    .option('strict-data', { type: 'boolean', default: false, describe: 'a bad sample (unreadable image/label) is an error instead of being skipped' })
    .option('engine', { type: 'string', choices: ['tfjs', 'onnxruntime'], default: 'tfjs',
      describe: 'tfjs: CHECKPOINT is trained weights; onnxruntime: CHECKPOINT is a model exported by tools/export.ts --format onnx' })
    .option('threads', { type: 'number', describe: 'onnxruntime: intra-op threads (default: onnxruntime\'s choice)' })
    .option('launcher', { type: 'string', choices: ['none', 'mpi'], default: 'none', describe: 'mpi: each rank evaluates its shard; rank 0 reports the metrics of the union' })
    .demandCommand(2, 'give CONFIG and CHECKPOINT')
    .strict()
    .parse();
  if (argv._.length > 2) throw new Error(`unexpected arguments: ${argv._.slice(2).join(' ')}`);
  const mpi = argv.launcher === 'mpi' ? loadMpi() : null;
  const shard = mpi && mpi.size > 1 ? mpi : undefined;
  const root = !shard || shard.rank === 0;
  const say = (line: string) => { if (root) console.log(line); };
  const cfgPath = String(argv._[0]);
  const ckptArg = String(argv._[1]);
  const raw = loadConfig(cfgPath, { cfgOptions: argv['cfg-options'] ?? [], openPaths: EXPERIMENT_OPEN_PATHS });
  const cfg = validateExperimentConfig(raw, cfgPath);
  const onnx = argv.engine === 'onnxruntime';
  if (onnx && !ckptArg.endsWith('.onnx')) throw new Error(`--engine onnxruntime: CHECKPOINT must be an exported .onnx model (tools/export.ts --format onnx), got ${ckptArg}`);
  const weights = onnx ? ckptArg : await resolveWeights(ckptArg);
  await initBackend(argv.backend);

  const modelBlock = validateModelConfig(cfg.model, cfgPath);

  const split = cfg.data.test ? 'test' : 'val';
  const dataset = await buildLoadingDataset(cfg.data[split], { file: cfgPath, path: `data.${split}` }, cfg.data.num_workers ?? 0,
    argv['strict-data'] ? { on_bad_sample: 'error' } : {});
  // The full checkpoint replaces the backbone's pretrained weights, so don't read those.
  const built = await buildValidatedModel(modelBlock, { file: cfgPath, log: () => undefined, loadCheckpoint: false });
  let model: Predictor = built;
  let release = async (): Promise<void> => undefined;
  if (onnx) {
    // The config still says how to infer (test_cfg) and how many classes; the engine runs the export.
    const predictor = await onnxPredictor(weights, built, { threads: argv.threads, log: say });
    model = predictor;
    release = () => predictor.dispose();
  } else {
    await loadCheckpoint(built, weights, { strict: true });
    say(`loaded ${weights}`);
  }

  const evaluator = buildEvaluator(cfg.val_evaluator, { task: model.task, dataset, numClasses: model.numClasses, file: cfgPath });
  const writers = await buildPredictionWriters({ task: model.task, dataset, numClasses: model.numClasses, out: argv.out, showDir: argv['show-dir'],
    showScoreThr: argv['show-score-thr'] });

  const t0 = performance.now();
  const result = await evaluateModel(model, dataset, evaluator, {
    batchSize: argv['batch-size'],
    augTest: argv['aug-test'],
    onPrediction: writers.length ? async (item, pred) => { for (const w of writers) await w.write(item, pred); } : undefined,
    log: (l) => { if (l.startsWith('warning')) console.warn(shard ? `rank ${shard.rank}: ${l}` : l); },
    shard,
  });
  const skipped = result.skipped ? `; skipped ${result.skipped} of ${dataset.length} samples (first: ${result.firstSkipped}), not scored` : '';
  say(`evaluated ${result.evaluated} of ${dataset.length} images of data.${split}${skipped} in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
    ` (${evaluator.type}${argv['aug-test'] ? ', aug-test' : ''}${onnx ? ', onnxruntime' : ''})`);
  say(result.report);
  if (argv['metrics-out'] && root) {
    await mkdir(path.dirname(path.resolve(argv['metrics-out'])), { recursive: true });
    const json = { ...(result.json as Record<string, unknown>), num_images: dataset.length, num_evaluated: result.evaluated,
      num_skipped: result.skipped, first_skipped: result.firstSkipped };
    await writeFileAtomic(argv['metrics-out'], JSON.stringify(json, null, 2) + '\n');
    say(`metrics written to ${argv['metrics-out']}`);
  }
  for (const w of writers) {
    // A file over every image (COCO results) is written by rank 0 from every rank's part; per-image files by each rank.
    if (shard && w.shardPart) {
      const parts = await allGatherJson(shard, w.shardPart());
      if (!root) continue;
      w.adoptParts!(parts);
    }
    const where = await w.finish();
    if (!shard || w.shardPart) say(where);
    else say(`${where} (each rank its own images)`);
  }
  await dataset.close?.();
  await release();
  await mpi?.finalize();
});
