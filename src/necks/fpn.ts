/**
 * MMDetection 2.x `FPN` (Feature Pyramid Network) on NHWC, keys as MMDet's state dict:
 * `lateral_convs.{i}.conv.*` (1x1) and `fpn_convs.{i}.conv.*` (3x3), the extra stride-2 convs
 * continuing the `fpn_convs` numbering. Every conv is a ConvModule without norm or activation, so
 * it has a bias; all are Xavier-uniform initialised with zero bias (MMDet's `init_cfg`).
 *
 * Forward (`inputs` = every backbone output, `L` = levels used from `startLevel` on):
 * 1. `lateral_i = lateral_convs[i](inputs[startLevel + i])`;
 * 2. top-down, `lateral_{i-1} += nearest(lateral_i, size of lateral_{i-1})` (`F.interpolate(size=...)`);
 * 3. `out_i = fpn_convs[i](lateral_i)`;
 * 4. up to `numOuts` levels: without extra convs `max_pool2d(out_last, 1, stride=2)` (ceil(H/2));
 *    with them, `fpn_convs[L]` on the source picked by `addExtraConvs` (the last used input, the last
 *    lateral, or the last output), then `fpn_convs[j](out_last)` (ReLU first with
 *    `reluBeforeExtraConvs`).
 */
import * as tf from '@tensorflow/tfjs';
import type { FeatureInfo } from '../backbone/backbone.ts';
import { ConfigError, where } from '../config/errors.ts';
import { bool, int, list, obj, oneOf, optional, str, type Infer } from '../config/schema.ts';
import { ConvModule } from '../nn/conv_module.ts';
import { ModuleList } from '../nn/container.ts';
import { xavierUniform } from '../nn/init.ts';
import { Module } from '../nn/module.ts';
import { addSavingNothing } from '../nn/frugal.ts';
import { fixCpuResizeNearestGrad } from '../kernels/resize_nearest_grad.ts';

/** Where the first extra conv reads from; `false`: extra levels are max-pooled instead. */
export type ExtraConvSource = false | 'on_input' | 'on_lateral' | 'on_output';

export interface FPNOptions {
  /** Channels of every backbone output (all of them, also those below `startLevel`). */
  inChannels: number[];
  outChannels: number;
  /** Output levels; at least `inChannels.length - startLevel` (the rest are extra levels). */
  numOuts: number;
  /** First backbone output used (default 0). */
  startLevel?: number;
  /** Default false (max-pool extra levels). */
  addExtraConvs?: ExtraConvSource;
  /** ReLU before the second and later extra convs (default false; RetinaNet uses it with 'on_output'). */
  reluBeforeExtraConvs?: boolean;
}

/**
 * PyTorch `F.interpolate(x, size, mode='nearest')` on NHWC: `src = min(floor(dst * in / out), in - 1)`,
 * which is tfjs's resize with alignCorners and halfPixelCenters both false (tested against the
 * formula, forward and gradient, on cpu and wasm, batch > 1; the cpu gradient is ours, see
 * kernels/resize_nearest_grad.ts).
 */
export function resizeNearest(x: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  const [, h, w] = x.shape;
  if (h === size[0] && w === size[1]) return tf.clone(x);
  fixCpuResizeNearestGrad();
  return tf.image.resizeNearestNeighbor(x, size, false, false);
}

export class FPN extends Module {
  readonly inChannels: readonly number[];
  readonly outChannels: number;
  readonly numOuts: number;
  readonly startLevel: number;
  readonly addExtraConvs: ExtraConvSource;
  readonly reluBeforeExtraConvs: boolean;
  readonly lateralConvs: ModuleList<ConvModule>;
  /** The `L` output convs, then the extra stride-2 convs (none without `addExtraConvs`). */
  readonly fpnConvs: ModuleList<ConvModule>;

  constructor(opts: FPNOptions) {
    super();
    const { inChannels, outChannels, numOuts } = opts;
    const startLevel = opts.startLevel ?? 0;
    const positive = (n: number) => Number.isInteger(n) && n >= 1;
    if (!inChannels.length || !inChannels.every(positive)) throw new Error(`FPN: inChannels must be positive integers, got [${inChannels.join(', ')}]`);
    if (!positive(outChannels)) throw new Error(`FPN: outChannels must be a positive integer, got ${outChannels}`);
    if (!Number.isInteger(startLevel) || startLevel < 0 || startLevel >= inChannels.length) {
      throw new Error(`FPN: startLevel must be in [0, ${inChannels.length - 1}] (${inChannels.length} inputs), got ${startLevel}`);
    }
    const used = inChannels.length - startLevel;
    if (!Number.isInteger(numOuts) || numOuts < used) throw new Error(`FPN: numOuts must be an integer >= ${used} (inputs from startLevel ${startLevel} on), got ${numOuts}`);
    this.inChannels = [...inChannels];
    this.outChannels = outChannels;
    this.numOuts = numOuts;
    this.startLevel = startLevel;
    this.addExtraConvs = opts.addExtraConvs ?? false;
    this.reluBeforeExtraConvs = opts.reluBeforeExtraConvs ?? false;

    const plain = { norm: 'none', act: false } as const;
    // Registration (and draw) order as MMDet: every lateral, then every output conv, then the extra ones.
    this.lateralConvs = this.addModule('lateral_convs', new ModuleList(inChannels.slice(startLevel).map((c) => new ConvModule(c, outChannels, 1, plain))));
    const convs = inChannels.slice(startLevel).map(() => new ConvModule(outChannels, outChannels, 3, { padding: 1, ...plain }));
    if (this.addExtraConvs) {
      for (let i = 0; i < numOuts - used; i++) {
        const cin = i === 0 && this.addExtraConvs === 'on_input' ? inChannels[inChannels.length - 1] : outChannels;
        convs.push(new ConvModule(cin, outChannels, 3, { stride: 2, padding: 1, ...plain }));
      }
    }
    this.fpnConvs = this.addModule('fpn_convs', new ModuleList(convs));
    for (const m of [...this.lateralConvs.items, ...this.fpnConvs.items]) xavierUniform(m.conv);
  }

  /** Channels and strides of the `numOuts` outputs, given the backbone's (one entry per input). */
  featureInfo(inputs: readonly FeatureInfo[]): FeatureInfo[] {
    if (inputs.length !== this.inChannels.length) throw new Error(`FPN: ${inputs.length} input levels described, expected ${this.inChannels.length}`);
    const strides = inputs.slice(this.startLevel).map((f) => f.stride);
    while (strides.length < this.numOuts) strides.push(strides[strides.length - 1] * 2);
    return strides.map((stride) => ({ channels: this.outChannels, stride }));
  }

  /**
   * @param inputs every backbone output, `[N, H_i, W_i, inChannels[i]]`, finest first.
   * @returns `numOuts` maps `[N, H'_j, W'_j, outChannels]`: the used input sizes, then each extra
   *   level `ceil(H/2) x ceil(W/2)` of the one before.
   */
  forward(inputs: tf.Tensor4D[]): tf.Tensor4D[] {
    if (inputs.length !== this.inChannels.length) throw new Error(`FPN: ${inputs.length} inputs, expected ${this.inChannels.length}`);
    inputs.forEach((x, i) => {
      if (x.rank !== 4 || x.shape[3] !== this.inChannels[i]) throw new Error(`FPN: input ${i} has shape [${x.shape.join(', ')}], expected [N, H, W, ${this.inChannels[i]}]`);
    });
    return tf.tidy(() => {
      const laterals = this.lateralConvs.items.map((conv, i) => conv.forward(inputs[this.startLevel + i]));
      const used = laterals.length;
      for (let i = used - 1; i > 0; i--) {
        const [, h, w] = laterals[i - 1].shape;
        laterals[i - 1] = addSavingNothing(laterals[i - 1], resizeNearest(laterals[i], [h, w]));
      }
      const outs = laterals.map((l, i) => this.fpnConvs.items[i].forward(l));
      if (!this.addExtraConvs) {
        while (outs.length < this.numOuts) outs.push(tf.maxPool(outs[outs.length - 1], 1, 2, 'valid'));
        return outs;
      }
      if (outs.length < this.numOuts) {
        const source = this.addExtraConvs === 'on_input' ? inputs[inputs.length - 1]
          : this.addExtraConvs === 'on_lateral' ? laterals[used - 1] : outs[used - 1];
        outs.push(this.fpnConvs.items[used].forward(source));
        for (let i = used + 1; i < this.numOuts; i++) {
          const prev = outs[outs.length - 1];
          outs.push(this.fpnConvs.items[i].forward(this.reluBeforeExtraConvs ? tf.relu(prev) : prev));
        }
      }
      return outs;
    });
  }
}

/**
 * `neck: {type: FPN, in_channels?, out_channels, num_outs, start_level?, add_extra_convs?,
 * relu_before_extra_convs?}`. `add_extra_convs: true` means 'on_input', as in MMDet.
 */
export const fpnSchema = obj({
  type: str({ enum: ['FPN'] }),
  in_channels: optional(list(int({ min: 1 }))),
  out_channels: int({ min: 1 }),
  num_outs: int({ min: 1 }),
  start_level: optional(int({ min: 0 }), 0),
  add_extra_convs: optional(oneOf(bool(), str({ enum: ['on_input', 'on_lateral', 'on_output'] })), false),
  relu_before_extra_convs: optional(bool(), false),
});

/** Where a neck block is (`{file, path: 'model.neck'}`), for errors found against the backbone. */
export interface NeckSite {
  file?: string;
  path: string;
}

function neckError(at: NeckSite, key: string, msg: string, value: unknown, allowed?: string): ConfigError {
  const path = `${at.path}.${key}`;
  return new ConfigError(`${where(at.file, path)}: ${msg}`, { file: at.file, path, value, allowed });
}

/**
 * An FPN over every backbone output (`inChannels[i]` = channels of output i, the backbone's
 * `featureInfo`). A given `in_channels` must equal them.
 * @throws ConfigError naming the key (`model.neck.num_outs: ...`).
 */
export function buildFPN(block: Infer<typeof fpnSchema>, inChannels: readonly number[], at: NeckSite): FPN {
  if (block.in_channels !== undefined && block.in_channels.join() !== inChannels.join()) {
    throw neckError(at, 'in_channels', `[${block.in_channels.join(', ')}] does not match the backbone outputs [${inChannels.join(', ')}]`, block.in_channels);
  }
  const start = block.start_level;
  if (start >= inChannels.length) {
    throw neckError(at, 'start_level', `${start} is past the last backbone output (${inChannels.length} outputs)`, start, `0..${inChannels.length - 1}`);
  }
  const used = inChannels.length - start;
  if (block.num_outs < used) {
    throw neckError(at, 'num_outs', `${block.num_outs} is fewer than the ${used} backbone outputs used from start_level ${start}`, block.num_outs, `an integer >= ${used}`);
  }
  const extra = block.add_extra_convs;
  return new FPN({
    inChannels: [...inChannels],
    outChannels: block.out_channels,
    numOuts: block.num_outs,
    startLevel: start,
    addExtraConvs: extra === true ? 'on_input' : extra,
    reluBeforeExtraConvs: block.relu_before_extra_convs,
  });
}
