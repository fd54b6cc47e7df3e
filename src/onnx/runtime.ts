/**
 * The onnxruntime engine: exported models run in onnxruntime-node (an optional dependency), with
 * the rest of inference (slide windows, test-time augmentation, resizing to the original image,
 * argmax) shared with the tfjs segmentors (models/seg_inference.ts), so both engines score alike.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../datasets/collate.ts';
import type { ModelPredictOptions, Predictor } from '../models/model.ts';
import { predictSegmentation, type SegTestCfg } from '../models/seg_inference.ts';
import { EncoderDecoder } from '../models/encoder_decoder.ts';
import { MaskRCNN } from '../models/mask_rcnn.ts';
import type { Model } from '../models/model.ts';
import { loadCheckpoint } from '../nn/checkpoint.ts';
import { roiWeightsOf } from './export.ts';
import type { Prediction } from '../structures/prediction.ts';
import { resizeBilinear } from '../ops/resize.ts';

/** The parts of onnxruntime-node we use. */
export type Ort = typeof import('onnxruntime-node');
export type OrtSession = import('onnxruntime-node').InferenceSession;

let ort: Ort | null = null;

/** onnxruntime-node, or an error saying how to install it. */
export async function loadOnnxRuntime(): Promise<Ort> {
  if (ort) return ort;
  try {
    ort = (await import('onnxruntime-node')) as Ort;
  } catch (e) {
    throw new Error('the onnxruntime engine needs the optional package onnxruntime-node, which is not installed: ' +
      `npm install onnxruntime-node (CPU binaries included; .npmrc skips the CUDA download) (${(e as Error).message.split('\n')[0]})`);
  }
  return ort;
}

/** Session options: all graph optimisations, `threads` intra-op threads (default: onnxruntime's choice). */
export async function createSession(model: string | Uint8Array, opts: { threads?: number } = {}): Promise<OrtSession> {
  const rt = await loadOnnxRuntime();
  try {
    return await rt.InferenceSession.create(model as string, {
      graphOptimizationLevel: 'all',
      ...(opts.threads ? { intraOpNumThreads: opts.threads, interOpNumThreads: 1 } : {}),
    });
  } catch (e) {
    throw new Error(`cannot load ONNX model ${typeof model === 'string' ? model : '(bytes)'}: ${(e as Error).message}`);
  }
}

/** An onnxruntime output tensor. */
export type OrtTensor = import('onnxruntime-node').Tensor;

/** One run of `session` on NHWC images `[N, H, W, C]` (fed as NCHW to its first input); its outputs by name. */
export async function runOnImages(session: OrtSession, imgs: tf.Tensor4D): Promise<Record<string, OrtTensor>> {
  const rt = await loadOnnxRuntime();
  const nchw = tf.transpose(imgs, [0, 3, 1, 2]);
  let input: OrtTensor;
  try {
    input = new rt.Tensor('float32', nchw.dataSync() as Float32Array, nchw.shape);
  } finally {
    nchw.dispose();
  }
  return session.run({ [session.inputNames[0]]: input });
}

/** An NCHW output `[N, C, h, w]` as an NHWC tfjs tensor `[N, h, w, C]`; releases the output. */
export function outputToNhwc(t: OrtTensor | undefined, name: string): tf.Tensor4D {
  if (!t) throw new Error(`the ONNX model has no output '${name}' (export it with tools/export.ts --format onnx)`);
  const nchw = tf.tensor4d(t.data as Float32Array, t.dims as [number, number, number, number]);
  try {
    return tf.transpose(nchw, [0, 2, 3, 1]);
  } finally {
    nchw.dispose();
    t.dispose();
  }
}

/**
 * An exported UperNet segmentor in onnxruntime, as a {@link Predictor} for `evaluateModel`: the
 * config's `test_cfg` (whole/slide, TTA views) applies as with the tfjs model. A model exported
 * with `--no-resize` (logits at stride 4) is resized to the input here, as `encode_decode` does.
 */
export class OnnxSegmentor implements Predictor {
  readonly task = 'segmentation' as const;
  readonly training = false;

  constructor(readonly session: OrtSession, readonly numClasses: number, readonly testCfg: SegTestCfg) {}

  /** Loads `file` and checks its output has `numClasses` channels when the file says. */
  static async load(file: string, numClasses: number, testCfg: SegTestCfg, opts: { threads?: number } = {}): Promise<OnnxSegmentor> {
    const session = await createSession(file, opts);
    const meta = session.outputMetadata[0] as { shape?: (number | string)[] } | undefined;
    const k = meta?.shape?.[1];
    if (typeof k === 'number' && k !== numClasses) throw new Error(`${file}: the model predicts ${k} classes, the config ${numClasses}`);
    return new OnnxSegmentor(session, numClasses, testCfg);
  }

  train(): this {
    return this;
  }

  eval(): this {
    return this;
  }

  /** Logits `[N, h, w, K]` at the input's size. */
  private async encodeDecode(imgs: tf.Tensor4D): Promise<tf.Tensor4D> {
    const name = this.session.outputNames[0];
    const logits = outputToNhwc((await runOnImages(this.session, imgs))[name], name);
    const [, h, w] = imgs.shape;
    if (logits.shape[1] === h && logits.shape[2] === w) return logits;
    try {
      return resizeBilinear(logits, [h, w]);
    } finally {
      logits.dispose();
    }
  }

  predict(batch: Batch, opts: ModelPredictOptions = {}): Promise<Prediction[]> {
    return predictSegmentation((x) => this.encodeDecode(x), batch.imgs, batch.metas, this.numClasses, this.testCfg, opts);
  }

  dispose(): Promise<void> {
    return this.session.release();
  }
}

/**
 * An exported detector's dense part (backbone + FPN + RPN head) in onnxruntime, and its RoI stages
 * (proposals, box/mask heads, cascade stages) in TypeScript: `model` is the config's detector with
 * its RoI head weights loaded (tools/export.ts writes them beside the .onnx).
 */
export class OnnxDetector implements Predictor {
  readonly task = 'detection' as const;
  readonly training = false;

  constructor(readonly session: OrtSession, readonly model: MaskRCNN) {}

  get numClasses(): number {
    return this.model.numClasses;
  }

  train(): this {
    return this;
  }

  eval(): this {
    return this;
  }

  async predict(batch: Batch, opts: ModelPredictOptions = {}): Promise<Prediction[]> {
    if (opts.augTest) throw new Error('detectors: test-time augmentation (--aug-test) is not implemented');
    const out = await runOnImages(this.session, batch.imgs);
    const levels = this.session.outputNames.filter((n) => n.startsWith('feat')).length;
    const nhwc = (name: string): tf.Tensor4D => outputToNhwc(out[name], name);
    const range = Array.from({ length: levels }, (_, l) => l);
    const feats = range.map((l) => nhwc(`feat${l}`));
    const rpnOut = { cls: range.map((l) => nhwc(`rpn_cls${l}`)), reg: range.map((l) => nhwc(`rpn_reg${l}`)) };
    try {
      return this.model.predictFromDense(feats, rpnOut, batch.metas);
    } finally {
      tf.dispose([...feats, ...rpnOut.cls, ...rpnOut.reg]);
    }
  }

  dispose(): Promise<void> {
    this.model.dispose();
    return this.session.release();
  }
}

/**
 * The onnxruntime predictor for an exported `file` of the config's `model` (built, weights not
 * needed): segmentors run wholly in onnxruntime (the tfjs model is disposed), detectors keep their
 * RoI heads here, loaded from `<stem>.roi_head.safetensors` beside the export. Call `dispose()` when done.
 */
export async function onnxPredictor(file: string, model: Model, opts: { threads?: number; log?: (line: string) => void } = {}): Promise<Predictor & { dispose(): Promise<void> }> {
  const log = opts.log ?? (() => undefined);
  if (model instanceof MaskRCNN) {
    const roi = roiWeightsOf(file);
    const { missing } = await loadCheckpoint(model, roi, { strict: false });
    const lacking = missing.filter((k) => k.startsWith('roi_head.'));
    if (lacking.length) throw new Error(`${roi} lacks RoI head weights: ${lacking.slice(0, 3).join(', ')}`);
    model.eval();
    const predictor = new OnnxDetector(await createSession(file, { threads: opts.threads }), model);
    log(`loaded ${file} (onnxruntime) and ${roi}`);
    return predictor;
  }
  if (model instanceof EncoderDecoder) {
    const predictor = await OnnxSegmentor.load(file, model.numClasses, model.testCfg, { threads: opts.threads });
    model.dispose();
    log(`loaded ${file} (onnxruntime)`);
    return predictor;
  }
  throw new Error(`--engine onnxruntime: no ONNX form for ${model.constructor.name}`);
}
