/**
 * Reading a Conv2Former's architecture off its official state dict, so that a checkpoint decides
 * the kernel size (and, for custom sizes, dims and depths) instead of the user guessing them.
 */
import type { TensorDict } from '../io/tensor_data.ts';
import { CONV2FORMER_VARIANTS, type Conv2FormerConfig, type Conv2FormerVariant } from './conv2former.ts';

function shapeOf(dict: TensorDict, key: string, source: string): number[] {
  const t = dict.get(key);
  if (!t) throw new Error(`${source}: not a Conv2Former checkpoint, key '${key}' is missing`);
  return t.shape;
}

/**
 * Infers dims, depths and kernel size from official keys:
 * `downsample_layers.0.6.weight` `[dims0, ...]`, `downsample_layers.i.1.weight` `[dims_i, ...]`,
 * the count of `stages.i.j.*` blocks, and `stages.0.0.attn.att.2.weight` `[C, 1, k, k]`.
 * @param source the file name, for error messages
 */
export function inferConv2FormerConfig(dict: TensorDict, source: string): Conv2FormerConfig {
  const dims = [shapeOf(dict, 'downsample_layers.0.6.weight', source)[0]];
  for (let i = 1; i < 4; i++) dims.push(shapeOf(dict, `downsample_layers.${i}.1.weight`, source)[0]);
  const depths = [0, 0, 0, 0];
  for (const key of dict.keys()) {
    const m = /^stages\.(\d)\.(\d+)\./.exec(key);
    if (m) depths[+m[1]] = Math.max(depths[+m[1]], +m[2] + 1);
  }
  if (depths.some((d) => d === 0)) throw new Error(`${source}: not a Conv2Former checkpoint, found blocks per stage [${depths.join(', ')}]`);
  return {
    dims: dims as Conv2FormerConfig['dims'],
    depths: depths as Conv2FormerConfig['depths'],
    kernelSize: kernelSizeFromStateDict(dict, source),
  };
}

/** Kernel size of the ConvMod depthwise conv: `stages.0.0.attn.att.2.weight` is `[C, 1, k, k]`. */
export function kernelSizeFromStateDict(dict: TensorDict, source: string): number {
  const shape = shapeOf(dict, 'stages.0.0.attn.att.2.weight', source);
  if (shape.length !== 4 || shape[2] !== shape[3]) {
    throw new Error(`${source}: 'stages.0.0.attn.att.2.weight' should be [C, 1, k, k], got [${shape.join(', ')}]`);
  }
  return shape[2];
}

/** Throws unless `cfg` (read from `source`) has the dims and depths of the official `variant`. */
export function assertVariant(cfg: Conv2FormerConfig, variant: Conv2FormerVariant, source: string): void {
  const want = CONV2FORMER_VARIANTS[variant];
  if (want.dims.join() !== cfg.dims.join() || want.depths.join() !== cfg.depths.join()) {
    throw new Error(`${source} is not Conv2Former-${variant.toUpperCase()}: it has dims [${cfg.dims}] depths [${cfg.depths}], ` +
      `the variant has dims [${want.dims}] depths [${want.depths}]`);
  }
}
