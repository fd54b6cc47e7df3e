/**
 * ONNX export of the Conv2Former backbone (four stage outputs, or ImageNet logits with the head)
 * and of UperNet segmentors (logits at stride 4, or resized to the input as mmseg's
 * `encode_decode`). Opset 17; input `input` NCHW float32 `[batch, 3, height, width]` normalised
 * like the training data; batch, height and width are dynamic. Nodes and initializers are named
 * after the PyTorch module paths (`backbone.stages.0.1.attn.att.2`); LayerNorm is
 * `LayerNormalization`, GELU the erf form.
 */
import { unlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { Conv2Former } from '../backbone/conv2former.ts';
import { writeFileAtomic } from '../io/atomic_write.ts';
import type { LayerNorm } from '../nn/norm.ts';
import type { Module } from '../nn/module.ts';
import { EncoderDecoder } from '../models/encoder_decoder.ts';
import { UPerHead } from '../heads/seg/uper_head.ts';
import type { ConvModule } from '../nn/conv_module.ts';
import { FPN } from '../necks/fpn.ts';
import type { RPNHead } from '../heads/rpn/rpn_head.ts';
import { MaskRCNN } from '../models/mask_rcnn.ts';
import { OnnxGraph } from './graph.ts';
import { encodeModel } from './proto.ts';
import { adaptiveAvgPool, child, conv, convModule, gelu, layer, layerNormChannels, linear, resizeBilinear, resizeNearest, spatialShape, weightOf, type EmitContext } from './layers.ts';

export const ONNX_OPSET = 17;
/** Above this many weight bytes the initializers go to an external data file (protobuf's 2 GB cap, with room for the graph). */
export const EXTERNAL_DATA_THRESHOLD = 1.8 * 2 ** 30;

/** Conv2Former blocks: `x + ls1 * attn(x)`, then `+ ls2 * mlp(.)`. Returns the stage outputs of `outIndices`. */
function emitConv2Former(ctx: EmitContext, bb: Conv2Former, prefix: string, x: string): { outs: string[]; last: string } {
  const { g } = ctx;
  const outs: string[] = [];
  let h = x;
  for (let i = 0; i < 4; i++) {
    h = layer(ctx, bb.downsampleLayers.at(i), `${prefix}downsample_layers.${i}`, h);
    bb.stages.at(i).layers.forEach((block, j) => {
      const p = `${prefix}stages.${i}.${j}`;
      const dim = bb.config.dims[i];
      const attn = child(block, 'attn', p);
      const n = layer(ctx, child(attn, 'norm', `${p}.attn`), `${p}.attn.norm`, h);
      const a = layer(ctx, child(attn, 'att', `${p}.attn`), `${p}.attn.att`, n);
      const v = layer(ctx, child(attn, 'v', `${p}.attn`), `${p}.attn.v`, n);
      const av = g.node('Mul', [a, v], {}, `${p}.attn/mul`)[0];
      const o1 = layer(ctx, child(attn, 'proj', `${p}.attn`), `${p}.attn.proj`, av);
      const s1 = g.node('Mul', [o1, weightOf(ctx, `${p}.layer_scale_1`, [dim, 1, 1])], {}, `${p}/scale_1`)[0];
      h = g.node('Add', [h, s1], {}, `${p}/add_1`)[0];
      const mlp = child(block, 'mlp', p);
      const m0 = layer(ctx, child(mlp, 'norm', `${p}.mlp`), `${p}.mlp.norm`, h);
      const f1 = gelu(ctx, `${p}.mlp.act`, layer(ctx, child(mlp, 'fc1', `${p}.mlp`), `${p}.mlp.fc1`, m0));
      const pos = gelu(ctx, `${p}.mlp.act_pos`, layer(ctx, child(mlp, 'pos', `${p}.mlp`), `${p}.mlp.pos`, f1));
      const sum = g.node('Add', [f1, pos], {}, `${p}.mlp/add`)[0];
      const o2 = layer(ctx, child(mlp, 'fc2', `${p}.mlp`), `${p}.mlp.fc2`, sum);
      const s2 = g.node('Mul', [o2, weightOf(ctx, `${p}.layer_scale_2`, [dim, 1, 1])], {}, `${p}/scale_2`)[0];
      h = g.node('Add', [h, s2], {}, `${p}/add_2`)[0];
    });
    if (bb.outIndices.includes(i)) {
      const norm = bb.outNorms.get(i);
      outs.push(norm ? layerNormChannels(ctx, norm as LayerNorm, `${prefix}norm${i}`, h) : h);
    }
  }
  return { outs, last: h };
}

/** mmseg UPerHead (PPM on the last level + FPN), logits `[N, K, H/4, W/4]`. */
function emitUPerHead(ctx: EmitContext, head: UPerHead, prefix: string, inputs: string[]): string {
  const { g } = ctx;
  const n = inputs.length;
  const laterals = head.lateralConvs.items.map((m, i) => convModule(ctx, m, `${prefix}lateral_convs.${i}`, inputs[i]));
  // PPM: [x, up(conv(pool_k(x))) for k in pool scales] → bottleneck.
  const last = inputs[n - 1];
  const lastHw = spatialShape(ctx, last, `${prefix}psp_modules`);
  const branches = head.pspModules.items.map((branch, i) => {
    const p = `${prefix}psp_modules.${i}`;
    const pooled = adaptiveAvgPool(ctx, last, branch.scale, `${p}.0`);
    const c = convModule(ctx, branch.conv, `${p}.1`, pooled);
    return resizeBilinear(ctx, c, lastHw, `${p}/resize`);
  });
  const cat = g.node('Concat', [last, ...branches], { axis: { i: 1 } }, `${prefix}psp_modules/concat`)[0];
  laterals.push(convModule(ctx, head.bottleneck, `${prefix}bottleneck`, cat));
  for (let i = n - 1; i > 0; i--) {
    const up = resizeBilinear(ctx, laterals[i], spatialShape(ctx, laterals[i - 1], `${prefix}top_down.${i}`), `${prefix}top_down.${i}/resize`);
    laterals[i - 1] = g.node('Add', [laterals[i - 1], up], {}, `${prefix}top_down.${i}/add`)[0];
  }
  const fpnOuts = head.fpnConvs.items.map((m: ConvModule, i) => convModule(ctx, m, `${prefix}fpn_convs.${i}`, laterals[i]));
  fpnOuts.push(laterals[n - 1]);
  const hw0 = spatialShape(ctx, fpnOuts[0], `${prefix}fpn_outs`);
  for (let i = n - 1; i > 0; i--) fpnOuts[i] = resizeBilinear(ctx, fpnOuts[i], hw0, `${prefix}fpn_outs.${i}/resize`);
  const feat = convModule(ctx, head.fpnBottleneck, `${prefix}fpn_bottleneck`, g.node('Concat', fpnOuts, { axis: { i: 1 } }, `${prefix}fpn_outs/concat`)[0]);
  return conv(ctx, head.convSeg, `${prefix}conv_seg`, feat);
}

/** MMDetection FPN: laterals, top-down nearest upsampling, output convs, extra levels (max-pool or convs). */
function emitFPN(ctx: EmitContext, fpn: FPN, prefix: string, inputs: string[]): string[] {
  const { g } = ctx;
  const laterals = fpn.lateralConvs.items.map((m, i) => convModule(ctx, m, `${prefix}lateral_convs.${i}`, inputs[fpn.startLevel + i]));
  const used = laterals.length;
  for (let i = used - 1; i > 0; i--) {
    const up = resizeNearest(ctx, laterals[i], spatialShape(ctx, laterals[i - 1], `${prefix}top_down.${i}`), `${prefix}top_down.${i}/upsample`);
    laterals[i - 1] = g.node('Add', [laterals[i - 1], up], {}, `${prefix}top_down.${i}/add`)[0];
  }
  const outs = laterals.map((l, i) => convModule(ctx, fpn.fpnConvs.items[i], `${prefix}fpn_convs.${i}`, l));
  if (!fpn.addExtraConvs) {
    while (outs.length < fpn.numOuts) {
      outs.push(g.node('MaxPool', [outs[outs.length - 1]], { kernel_shape: { ints: [1, 1] }, strides: { ints: [2, 2] } }, `${prefix}extra.${outs.length}`)[0]);
    }
    return outs;
  }
  const source = fpn.addExtraConvs === 'on_input' ? inputs[inputs.length - 1] : fpn.addExtraConvs === 'on_lateral' ? laterals[used - 1] : outs[used - 1];
  for (let i = used; i < fpn.numOuts; i++) {
    let x = i === used ? source : outs[outs.length - 1];
    if (i > used && fpn.reluBeforeExtraConvs) x = g.node('Relu', [x], {}, `${prefix}fpn_convs.${i}/relu_in`)[0];
    outs.push(convModule(ctx, fpn.fpnConvs.items[i], `${prefix}fpn_convs.${i}`, x));
  }
  return outs;
}

/** RPN head on every level: shared 3x3 conv + ReLU, objectness `[N, A, H, W]` and deltas `[N, 4A, H, W]`. */
function emitRPNHead(ctx: EmitContext, head: RPNHead, prefix: string, feats: string[]): { cls: string[]; reg: string[] } {
  const cls: string[] = [];
  const reg: string[] = [];
  feats.forEach((f, l) => {
    const h = ctx.g.node('Relu', [conv(ctx, head.rpnConv, `${prefix}rpn_conv`, f)], {}, `${prefix}rpn_conv/relu.${l}`)[0];
    cls.push(conv(ctx, head.rpnCls, `${prefix}rpn_cls`, h));
    reg.push(conv(ctx, head.rpnReg, `${prefix}rpn_reg`, h));
  });
  return { cls, reg };
}

/** What to export. */
export type OnnxExportKind =
  /** A Conv2Former: `stage{i+1}` outputs of its out indices, `[batch, dims[i], height/2^(i+2), width/2^(i+2)]`. */
  | { kind: 'backbone' }
  /** A Conv2Former with its ImageNet head: `logits` `[batch, classes]`. */
  | { kind: 'classifier' }
  /** An UperNet EncoderDecoder: `logits` `[batch, classes, height/4, width/4]`, or at the input size with `resize`. */
  | { kind: 'segmentor'; resize: boolean }
  /**
   * The dense part of a Mask R-CNN / Cascade Mask R-CNN: backbone, FPN and RPN head. Outputs per FPN
   * level l: `feat{l}` `[batch, C, h_l, w_l]`, `rpn_cls{l}` `[batch, A, h_l, w_l]`, `rpn_reg{l}` `[batch, 4A, h_l, w_l]`.
   */
  | { kind: 'detector' };

/** An exported model: its bytes and, above {@link EXTERNAL_DATA_THRESHOLD}, the external data chunks. */
export interface OnnxExport {
  model: Uint8Array;
  external: Uint8Array[];
  externalName: string | null;
  inputs: string[];
  outputs: string[];
}

/**
 * Builds the ONNX model of `model` (in eval mode semantics: BN running statistics, no drop path).
 * @param fileName the file the model will be written to (names its external data file).
 * @param opts.externalThreshold weight bytes above which the initializers go to `<file>.data`.
 */
export function exportOnnx(model: Module, what: OnnxExportKind, fileName: string, opts: { externalThreshold?: number; producer?: string } = {}): OnnxExport {
  const g = new OnnxGraph();
  const ctx: EmitContext = { g, sd: model.stateDict() };
  const x = g.input('input', ['batch', 3, 'height', 'width']);
  const outputs: string[] = [];
  let name: string;
  if (what.kind === 'segmentor') {
    if (!(model instanceof EncoderDecoder)) throw new Error(`ONNX export: 'segmentor' needs an EncoderDecoder, got ${model.constructor.name}`);
    if (!(model.backbone instanceof Conv2Former)) throw new Error('ONNX export: only Conv2Former backbones are exported');
    if (!(model.decodeHead instanceof UPerHead)) throw new Error(`ONNX export: only UPerHead decode heads are exported, got ${model.decodeHead.constructor.name}`);
    const { outs } = emitConv2Former(ctx, model.backbone, 'backbone.', x);
    let logits = emitUPerHead(ctx, model.decodeHead, 'decode_head.', outs);
    if (what.resize) logits = resizeBilinear(ctx, logits, spatialShape(ctx, x, 'input'), 'resize_to_input');
    const div = what.resize ? 1 : 4;
    g.output(logits, 'logits', ['batch', model.numClasses, div === 1 ? 'height' : 'height_4', div === 1 ? 'width' : 'width_4']);
    outputs.push('logits');
    name = 'upernet_conv2former';
  } else if (what.kind === 'detector') {
    if (!(model instanceof MaskRCNN)) throw new Error(`ONNX export: 'detector' needs a MaskRCNN or CascadeMaskRCNN, got ${model.constructor.name}`);
    if (!(model.backbone instanceof Conv2Former)) throw new Error('ONNX export: only Conv2Former backbones are exported');
    const { outs } = emitConv2Former(ctx, model.backbone, 'backbone.', x);
    const feats = emitFPN(ctx, model.neck, 'neck.', outs);
    const { cls, reg } = emitRPNHead(ctx, model.rpnHead, 'rpn_head.', feats);
    const a = model.rpnHead.numAnchors;
    const c = model.neck.outChannels;
    feats.forEach((f, l) => {
      const hw = [`height_l${l}`, `width_l${l}`];
      g.output(f, `feat${l}`, ['batch', c, ...hw]);
      g.output(cls[l], `rpn_cls${l}`, ['batch', a, ...hw]);
      g.output(reg[l], `rpn_reg${l}`, ['batch', 4 * a, ...hw]);
      outputs.push(`feat${l}`, `rpn_cls${l}`, `rpn_reg${l}`);
    });
    name = 'mask_rcnn_dense';
  } else {
    if (!(model instanceof Conv2Former)) throw new Error(`ONNX export: '${what.kind}' needs a Conv2Former, got ${model.constructor.name}`);
    const { outs, last } = emitConv2Former(ctx, model, '', x);
    if (what.kind === 'classifier') {
      if (!model.head || !model.pred) throw new Error("ONNX export: 'classifier' needs a Conv2Former built with its head (withHead)");
      const h = layer(ctx, model.head, 'head', last);
      const pooled = g.node('ReduceMean', [h], { axes: { ints: [2, 3] }, keepdims: { i: 0 } }, 'head/mean')[0];
      g.output(linear(ctx, model.pred, 'pred', pooled), 'logits', ['batch', model.pred.outFeatures]);
      outputs.push('logits');
    } else {
      model.outIndices.forEach((stage, k) => {
        const stride = 2 ** (stage + 2);
        g.output(outs[k], `stage${stage + 1}`, ['batch', model.config.dims[stage], `height_${stride}`, `width_${stride}`]);
        outputs.push(`stage${stage + 1}`);
      });
    }
    name = 'conv2former';
  }
  const external = g.weightBytes > (opts.externalThreshold ?? EXTERNAL_DATA_THRESHOLD);
  const externalName = external ? `${basename(fileName)}.data` : null;
  const { model: proto, external: chunks } = g.toModel({
    name, opset: ONNX_OPSET, producer: opts.producer ?? 'conv2former-dense', externalData: externalName ?? undefined,
    docString: 'input: NCHW float32 RGB, (pixel - mean) / std as in the training config',
  });
  return { model: encodeModel(proto), external: chunks, externalName, inputs: ['input'], outputs };
}

/** `det.onnx` → `det.roi_head.safetensors`: the RoI heads' weights of an exported detector. */
export function roiWeightsOf(onnxFile: string): string {
  return onnxFile.replace(/\.onnx$/, '') + '.roi_head.safetensors';
}

/** Writes an export: the model atomically, and its external data file (first) when there is one. */
export async function writeOnnx(exp: OnnxExport, file: string): Promise<void> {
  if (exp.externalName) await writeFileAtomic(`${file}.data`, exp.external);
  else await unlink(`${file}.data`).catch(() => undefined);
  await writeFileAtomic(file, exp.model);
}
