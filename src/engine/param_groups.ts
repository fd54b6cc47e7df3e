/**
 * Layer-wise / stage-wise learning-rate decay, as MMSeg's `LearningRateDecayOptimizerConstructor`
 * (mmseg/engine/optimizers/layer_decay_optimizer_constructor.py) for ConvNeXt-style keys, which
 * Conv2Former shares (`backbone.downsample_layers.i.*`, `backbone.stages.i.j.*`).
 *
 * With `numLayers` = paramwise_cfg.num_layers, MMSeg uses `N = numLayers + 2` and
 * `lr_scale = rate ** (N - layer_id - 1) = rate ** (numLayers + 1 - layer_id)`.
 *
 * - stage_wise (`get_stage_id_for_convnext(name, N)`): every `downsample_layers.*` (stem included)
 *   -> 0; `stages.i.*` -> i + 1; anything else (heads, necks, out norms) -> N - 1 = numLayers + 1
 *   (scale 1).
 * - layer_wise (`get_layer_id_for_convnext(name, numLayers)`): downsample_layers 0/1/2/3 ->
 *   0/2/3/numLayers; stages 0 -> 1, 1 -> 2, 2 -> 3 + block // 3, 3 -> numLayers; else numLayers + 1.
 *
 * No decay (MMSeg rule plus layer scales): rank-1 params, `.bias`, pos_embed/cls_token,
 * `layer_scale_1/2`.
 */
import type { Module } from '../nn/module.ts';
import { isNoDecay, type ParamGroup } from './adamw.ts';

export interface ParamGroupOptions {
  weightDecay: number;
  /** Decay rate (MMSeg `decay_rate`); 1 or undefined: no lr decay. */
  layerDecayRate?: number;
  decayType?: 'stage_wise' | 'layer_wise';
  /** MMSeg `num_layers` (12 in the ConvNeXt/Conv2Former recipes; 6 for stage-wise toy tests). */
  numLayers?: number;
}

function isEmbed(name: string): boolean {
  return name === 'backbone.cls_token' || name === 'backbone.mask_token' || name === 'backbone.pos_embed';
}

/** MMSeg `get_stage_id_for_convnext(var_name, max_stage_id)` with `max_stage_id = numLayers + 2`. */
export function stageIdForConvNeXt(name: string, maxStageId: number): number {
  if (isEmbed(name)) return 0;
  if (name.startsWith('backbone.downsample_layers')) return 0;
  if (name.startsWith('backbone.stages')) return Number(name.split('.')[2]) + 1;
  return maxStageId - 1;
}

/** MMSeg `get_layer_id_for_convnext(var_name, max_layer_id)` with `max_layer_id = numLayers`. */
export function layerIdForConvNeXt(name: string, maxLayerId: number): number {
  if (isEmbed(name)) return 0;
  if (name.startsWith('backbone.downsample_layers')) {
    const stage = Number(name.split('.')[2]);
    return [0, 2, 3][stage] ?? maxLayerId;
  }
  if (name.startsWith('backbone.stages')) {
    const parts = name.split('.');
    const stage = Number(parts[2]);
    const block = Number(parts[3]);
    if (stage === 0) return 1;
    if (stage === 1) return 2;
    if (stage === 2) return 3 + Math.floor(block / 3);
    return maxLayerId;
  }
  return maxLayerId + 1;
}

/** The lr scale and layer id of one parameter key. */
export function lrScaleFor(name: string, opts: ParamGroupOptions): { layerId: number; lrScale: number } {
  const rate = opts.layerDecayRate ?? 1;
  const numLayers = opts.numLayers ?? 12;
  const layerId = (opts.decayType ?? 'stage_wise') === 'stage_wise'
    ? stageIdForConvNeXt(name, numLayers + 2)
    : layerIdForConvNeXt(name, numLayers);
  return { layerId, lrScale: rate ** (numLayers + 1 - layerId) };
}

/** Groups `layer_<id>_decay` / `layer_<id>_no_decay` of the module's trainable parameters. */
export function buildParamGroups(module: Module, opts: ParamGroupOptions): ParamGroup[] {
  const groups = new Map<string, ParamGroup>();
  const decayOn = opts.layerDecayRate !== undefined && opts.layerDecayRate !== 1;
  for (const [name, p] of module.namedParameters()) {
    if (!p.trainable) continue;
    const noDecay = isNoDecay(name, p.variable.rank);
    const { layerId, lrScale } = decayOn ? lrScaleFor(name, opts) : { layerId: 0, lrScale: 1 };
    const gname = `layer_${layerId}_${noDecay ? 'no_decay' : 'decay'}`;
    let g = groups.get(gname);
    if (!g) groups.set(gname, (g = { name: gname, params: [], lrScale, weightDecay: noDecay ? 0 : opts.weightDecay }));
    g.params.push(name);
  }
  return [...groups.values()];
}
