/**
 * Conv2Former (arXiv 2211.11943), exactly as the official code, on NHWC tensors.
 *
 * stem: conv3x3 s2 (dims0/2, no bias) > GELU > BN > conv3x3 > GELU > BN > conv2x2 s2 (dims0, no bias);
 * downsample i>0: channel LayerNorm > conv2x2 s2; block: x + ls1*ConvMod(x); x + ls2*MLP(x).
 * Parameter keys equal the official state-dict keys.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone, FeatureInfo } from './backbone.ts';
import { GELU, gelu } from '../nn/activation.ts';
import { ModuleList, Sequential, type Layer } from '../nn/container.ts';
import { Conv2d } from '../nn/conv2d.ts';
import { DropPath } from '../nn/drop_path.ts';
import type { InitMode } from '../nn/init.ts';
import { Linear } from '../nn/linear.ts';
import { Module, type TensorState } from '../nn/module.ts';
import { recomputeInBackward } from '../nn/recompute.ts';
import { BatchNorm2d, LayerNorm } from '../nn/norm.ts';
import { addSavingNothing } from '../nn/frugal.ts';
import { scaleChannels } from '../kernels/channel.ts';

/** Architecture of one Conv2Former. */
export interface Conv2FormerConfig {
  /** Channels of the four stages. */
  dims: [number, number, number, number];
  /** Blocks per stage. */
  depths: [number, number, number, number];
  /** Kernel of the ConvMod depthwise convolution. */
  kernelSize: number;
  /** MLP hidden width = mlpRatio * dim (4 in every official variant). */
  mlpRatio?: number;
}

export type Conv2FormerVariant = 'n' | 't' | 's' | 'b' | 'l';

/** The official variants (one table; DESIGN.md "Reference numbers"). */
export const CONV2FORMER_VARIANTS: Readonly<Record<Conv2FormerVariant, Conv2FormerConfig>> = {
  // N uses k=7 (its published 14.99M parameters); read k from a checkpoint when there is one.
  n: { dims: [64, 128, 256, 512], depths: [2, 2, 8, 2], kernelSize: 7 },
  t: { dims: [72, 144, 288, 576], depths: [3, 3, 12, 3], kernelSize: 11 },
  s: { dims: [72, 144, 288, 576], depths: [4, 4, 32, 4], kernelSize: 11 },
  b: { dims: [96, 192, 384, 768], depths: [4, 4, 34, 4], kernelSize: 11 },
  l: { dims: [128, 256, 512, 1024], depths: [4, 4, 48, 4], kernelSize: 11 },
};

/** Options for dense-prediction use and for classification. */
export interface Conv2FormerOptions {
  /** Stages whose outputs `forward` returns (default all: 0,1,2,3). */
  outIndices?: number[];
  /** Stochastic depth rate of the last block; linear from 0 over all blocks (default 0). */
  dropPathRate?: number;
  /** Freeze the stem/downsample layers and stages 0..frozenStages (default -1: none). */
  frozenStages?: number;
  /** Add a LayerNorm `norm{i}` on each returned stage (detection/segmentation necks expect it). */
  outNorms?: boolean;
  /** Build the classification head (`head.{0,2}`, `pred`). */
  withHead?: boolean;
  /** Classes of `pred` (default 1000). */
  numClasses?: number;
  /** Initial weights: `random` (official init) or `zeros` (about to load a checkpoint). */
  init?: InitMode;
  /**
   * Recompute each block's activations in the backward pass instead of keeping them (MMDetection's
   * `with_cp`): far less memory in training, one extra forward pass of time. Default false.
   */
  withCp?: boolean;
}

/** The convolutional modulation: proj(dw_kxk(GELU(conv1x1(LN x))) * conv1x1(LN x)). */
class ConvMod extends Module {
  readonly norm: LayerNorm;
  readonly att: Sequential;
  readonly v: Conv2d;
  readonly proj: Conv2d;

  constructor(dim: number, kernelSize: number, init: InitMode) {
    super();
    this.norm = this.addModule('norm', new LayerNorm(dim, 1e-6));
    this.att = this.addModule('att', new Sequential([
      new Conv2d(dim, dim, 1, { init }),
      new GELU(),
      new Conv2d(dim, dim, kernelSize, { padding: Math.floor(kernelSize / 2), groups: dim, init }),
    ]));
    this.v = this.addModule('v', new Conv2d(dim, dim, 1, { init }));
    this.proj = this.addModule('proj', new Conv2d(dim, dim, 1, { init }));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    const h = this.norm.forward(x);
    return this.proj.forward(tf.mul(this.att.forward(h), this.v.forward(h)) as tf.Tensor4D);
  }
}

class Mlp extends Module {
  readonly norm: LayerNorm;
  readonly fc1: Conv2d;
  readonly pos: Conv2d;
  readonly fc2: Conv2d;

  constructor(dim: number, ratio: number, init: InitMode) {
    super();
    const hidden = dim * ratio;
    this.norm = this.addModule('norm', new LayerNorm(dim, 1e-6));
    this.fc1 = this.addModule('fc1', new Conv2d(dim, hidden, 1, { init }));
    this.pos = this.addModule('pos', new Conv2d(hidden, hidden, 3, { padding: 1, groups: hidden, init }));
    this.fc2 = this.addModule('fc2', new Conv2d(hidden, dim, 1, { init }));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    const h = gelu(this.fc1.forward(this.norm.forward(x)));
    return this.fc2.forward(tf.add(h, gelu(this.pos.forward(h))));
  }
}

class Block extends Module {
  readonly layerScale1: TensorState;
  readonly layerScale2: TensorState;
  readonly attn: ConvMod;
  readonly mlp: Mlp;
  readonly dropPath: DropPath;

  /** @param withCp recompute activations in the backward pass (training only) */
  constructor(dim: number, kernelSize: number, mlpRatio: number, dropPath: number, init: InitMode, readonly withCp = false) {
    super();
    this.layerScale1 = this.addParameter('layer_scale_1', tf.fill([dim], 1e-6));
    this.layerScale2 = this.addParameter('layer_scale_2', tf.fill([dim], 1e-6));
    this.attn = this.addModule('attn', new ConvMod(dim, kernelSize, init));
    this.mlp = this.addModule('mlp', new Mlp(dim, mlpRatio, init));
    this.dropPath = new DropPath(dropPath);
    this.addModule('drop_path', this.dropPath);
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    // A tidy per block frees its intermediates at once instead of at the end of the caller's scope
    // (whole-model inference at 800x1333 otherwise holds every block's temporaries: > 4 GB). Under
    // a gradient tape the tensors the backward pass needs are kept by the tape, not by this scope.
    return tf.tidy(() => this.forwardBlock(x));
  }

  private forwardBlock(x: tf.Tensor4D): tf.Tensor4D {
    if (!(this.withCp && this.training)) return this.mlpResidual(this.attnResidual(x));
    // Two checkpoints per block: only one half's activations are alive at a time in the backward pass.
    const y = recomputeInBackward((h) => this.attnResidual(h), x, this.trainable(this.layerScale1, this.attn));
    return recomputeInBackward((h) => this.mlpResidual(h), y, this.trainable(this.layerScale2, this.mlp));
  }

  private attnResidual(x: tf.Tensor4D): tf.Tensor4D {
    return addSavingNothing(x, this.dropPath.forward(scaleChannels(this.attn.forward(x), this.layerScale1.value)));
  }

  private mlpResidual(y: tf.Tensor4D): tf.Tensor4D {
    return addSavingNothing(y, this.dropPath.forward(scaleChannels(this.mlp.forward(y), this.layerScale2.value)));
  }

  /** The trainable variables of a layer scale and a branch. */
  private trainable(scale: TensorState, branch: Module): tf.Variable[] {
    return [...(scale.trainable ? [scale.variable] : []), ...branch.trainableVariables()];
  }
}

/** Stem and downsampling layers, the four stages, optional output norms and classification head. */
export class Conv2Former extends Module implements Backbone {
  readonly config: Required<Conv2FormerConfig>;
  readonly outIndices: number[];
  readonly frozenStages: number;
  /** Recompute activations in the backward pass (blocks and stem) while training. */
  readonly withCp: boolean;
  readonly downsampleLayers: ModuleList<Sequential>;
  readonly stages: ModuleList<Sequential>;
  readonly outNorms: Map<number, LayerNorm> = new Map();
  readonly head?: Sequential;
  readonly pred?: Linear;
  /** Channels and stride of each tensor `forward` returns, in order. */
  readonly featureInfo: FeatureInfo[];

  constructor(config: Conv2FormerConfig, opts: Conv2FormerOptions = {}) {
    super();
    const cfg = { mlpRatio: 4, ...config };
    validateConfig(cfg);
    this.config = cfg;
    const { dims, depths, kernelSize, mlpRatio } = cfg;
    const init = opts.init ?? 'random';
    this.outIndices = opts.outIndices ?? [0, 1, 2, 3];
    if (this.outIndices.some((i) => !Number.isInteger(i) || i < 0 || i > 3)) {
      throw new Error(`Conv2Former: outIndices must be stage indices 0..3, got [${this.outIndices.join(', ')}]`);
    }
    this.frozenStages = opts.frozenStages ?? -1;
    this.withCp = opts.withCp ?? false;

    const half = dims[0] / 2;
    const stem = new Sequential([
      new Conv2d(3, half, 3, { stride: 2, padding: 1, bias: false, init }),
      new GELU(),
      new BatchNorm2d(half),
      new Conv2d(half, half, 3, { padding: 1, bias: false, init }),
      new GELU(),
      new BatchNorm2d(half),
      new Conv2d(half, dims[0], 2, { stride: 2, bias: false, init }),
    ]);
    const downs = [stem];
    for (let i = 0; i < 3; i++) {
      downs.push(new Sequential([new LayerNorm(dims[i], 1e-6), new Conv2d(dims[i], dims[i + 1], 2, { stride: 2, init })]));
    }
    this.downsampleLayers = this.addModule('downsample_layers', new ModuleList(downs));

    const total = depths.reduce((a, b) => a + b, 0);
    const rate = opts.dropPathRate ?? 0;
    let cur = 0;
    const stages: Sequential[] = [];
    for (let i = 0; i < 4; i++) {
      const blocks: Layer[] = [];
      for (let j = 0; j < depths[i]; j++, cur++) {
        const dp = total > 1 ? (rate * cur) / (total - 1) : 0;
        blocks.push(new Block(dims[i], kernelSize, mlpRatio, dp, init, opts.withCp));
      }
      stages.push(new Sequential(blocks));
    }
    this.stages = this.addModule('stages', new ModuleList(stages));

    if (opts.outNorms) {
      for (const i of this.outIndices) this.outNorms.set(i, this.addModule(`norm${i}`, new LayerNorm(dims[i], 1e-6)));
    }
    if (opts.withHead) {
      this.head = this.addModule('head', new Sequential([
        new Conv2d(dims[3], 1280, 1, { init }),
        new GELU(),
        new LayerNorm(1280, 1e-6),
      ]));
      this.pred = this.addModule('pred', new Linear(1280, opts.numClasses ?? 1000, { init }));
    }
    this.featureInfo = this.outIndices.map((i) => ({ channels: dims[i], stride: 4 * 2 ** i }));
    this.applyFreeze();
  }

  /** Frozen parts are not trainable and stay in eval mode (their BN keeps running stats). */
  private applyFreeze(): void {
    for (let i = 0; i <= this.frozenStages && i < 4; i++) {
      for (const m of [this.downsampleLayers.at(i), this.stages.at(i)]) {
        for (const [, p] of m.namedParameters()) p.trainable = false;
        m.eval();
      }
    }
  }

  override train(mode = true): this {
    super.train(mode);
    if (mode) this.applyFreeze();
    return this;
  }

  /**
   * Runs the stages and returns the features of `outIndices` (normed if `outNorms`).
   * @param x `[N, H, W, 3]`, H and W ≥ 32
   * @returns one `[N, H_i, W_i, dims[i]]` per out index, H_i following PyTorch's conv arithmetic.
   */
  forward(x: tf.Tensor4D): tf.Tensor4D[] {
    return this.forwardIntermediates(x).outputs;
  }

  /** Features for `outIndices` plus the raw last-stage output (the head's input). */
  forwardIntermediates(x: tf.Tensor4D): { outputs: tf.Tensor4D[]; last: tf.Tensor4D } {
    if (x.rank !== 4 || x.shape[3] !== 3 || x.shape[1] < 32 || x.shape[2] < 32) {
      throw new Error(`Conv2Former: expected input [N, H>=32, W>=32, 3], got [${x.shape.join(', ')}]`);
    }
    const outputs: tf.Tensor4D[] = [];
    let h = x;
    for (let i = 0; i < 4; i++) {
      h = this.stages.at(i).forward(i === 0 ? this.stemForward(h) : this.downsampleLayers.at(i).forward(h));
      if (this.outIndices.includes(i)) {
        const norm = this.outNorms.get(i);
        outputs.push(norm ? norm.forward(h) : h);
      }
    }
    return { outputs, last: h };
  }

  /**
   * The stem, checkpointed under `withCp` while it trains: its six half-resolution activations
   * (the largest maps of the network) are recomputed in the backward pass instead of kept.
   */
  private stemForward(x: tf.Tensor4D): tf.Tensor4D {
    const stem = this.downsampleLayers.at(0);
    // Only a checkpointed, training stem needs its parameter list (a module walk per forward).
    const params = this.withCp && stem.training ? stem.trainableVariables() : [];
    if (params.length === 0) return stem.forward(x);
    return tf.tidy(() => recomputeInBackward((t) => stem.forward(t), x, params));
  }

  /**
   * Classification logits (requires `withHead`): head conv > GELU > LN > global mean > pred.
   * @param x `[N, H, W, 3]` normalised with ImageNet mean/std
   * @returns `[N, numClasses]`
   */
  forwardLogits(x: tf.Tensor4D): tf.Tensor2D {
    if (!this.head || !this.pred) throw new Error('Conv2Former: built without a classification head (withHead: false)');
    const { last } = this.forwardIntermediates(x);
    const pooled = tf.mean(this.head.forward(last), [1, 2]) as tf.Tensor2D;
    return this.pred.forward(pooled);
  }
}

function validateConfig(cfg: Required<Conv2FormerConfig>): void {
  const ok = (a: unknown) => Array.isArray(a) && a.length === 4 && a.every((v) => Number.isInteger(v) && v > 0);
  if (!ok(cfg.dims) || cfg.dims.some((d) => d % 2 !== 0)) throw new Error(`Conv2Former: dims must be 4 positive even integers, got ${JSON.stringify(cfg.dims)}`);
  if (!ok(cfg.depths)) throw new Error(`Conv2Former: depths must be 4 positive integers, got ${JSON.stringify(cfg.depths)}`);
  if (!Number.isInteger(cfg.kernelSize) || cfg.kernelSize < 1 || cfg.kernelSize % 2 === 0) {
    throw new Error(`Conv2Former: kernelSize must be a positive odd integer, got ${cfg.kernelSize}`);
  }
}

/**
 * Builds a Conv2Former from a variant name (`n`, `t`, `s`, `b`, `l`) or a custom config.
 * `kernelSize` in a custom config overrides the variant's (e.g. read from a checkpoint).
 */
export function createConv2Former(variant: Conv2FormerVariant | Conv2FormerConfig, options: Conv2FormerOptions = {}): Conv2Former {
  if (typeof variant === 'string') {
    const cfg = CONV2FORMER_VARIANTS[variant];
    if (!cfg) throw new Error(`unknown Conv2Former variant '${variant}'; known: ${Object.keys(CONV2FORMER_VARIANTS).join(', ')}`);
    return new Conv2Former(cfg, options);
  }
  return new Conv2Former(variant, options);
}
