/**
 * ONNX nodes for our layers, NCHW as PyTorch runs them: each emitter takes the module, its dotted
 * PyTorch path (node and initializer names) and the input tensor name, and returns the output
 * name. Weights come from the model's state dict (PyTorch layouts), so the graph is what
 * `torch.onnx.export` of the same PyTorch model would compute.
 */
import { Conv2d } from '../nn/conv2d.ts';
import { GELU, ReLU } from '../nn/activation.ts';
import { BatchNorm2d, GroupNorm, LayerNorm } from '../nn/norm.ts';
import { Sequential } from '../nn/container.ts';
import { ConvModule } from '../nn/conv_module.ts';
import { Linear } from '../nn/linear.ts';
import type { Module } from '../nn/module.ts';
import type { TensorDict } from '../io/tensor_data.ts';
import { float, int, ints, str, type Attr, type OnnxGraph } from './graph.ts';

/** The graph being built and the weights it reads. */
export interface EmitContext {
  g: OnnxGraph;
  /** The whole model's state dict (PyTorch keys and layouts). */
  sd: TensorDict;
}

/** The named child of `m` (a module path segment). @throws naming the path when missing. */
export function child<M extends Module = Module>(m: Module, name: string, path: string): M {
  const c = m.namedChildren().find(([n]) => n === name)?.[1];
  if (!c) throw new Error(`ONNX export: ${path} has no child '${name}'`);
  return c as M;
}

/** Initializer of state-dict key `key` (optionally reshaped, e.g. `[C]` → `[C, 1, 1]`). */
export function weightOf(ctx: EmitContext, key: string, dims?: number[]): string {
  const t = ctx.sd.get(key);
  if (!t) throw new Error(`ONNX export: no weight '${key}' in the state dict`);
  if (!(t.data instanceof Float32Array)) throw new Error(`ONNX export: weight '${key}' is ${t.dtype}, expected a float type`);
  return ctx.g.weight(key, t.data, dims ?? t.shape);
}

/** `Conv` with the module's geometry. */
export function conv(ctx: EmitContext, m: Conv2d, path: string, x: string): string {
  const w = ctx.sd.get(`${path}.weight`);
  if (!w) throw new Error(`ONNX export: no weight '${path}.weight'`);
  const { stride, padding, dilation, groups } = m.geometry;
  const inputs = [weightOf(ctx, `${path}.weight`)];
  if (m.bias) inputs.push(weightOf(ctx, `${path}.bias`));
  return ctx.g.node('Conv', [x, ...inputs], {
    kernel_shape: ints(w.shape.slice(2)),
    strides: ints(stride),
    pads: ints([padding[0][0], padding[1][0], padding[0][1], padding[1][1]]),
    dilations: ints(dilation),
    group: int(groups),
  }, path)[0];
}

/** GELU, erf form `x * 0.5 * (1 + erf(x / sqrt 2))` (what PyTorch exports; onnxruntime fuses it). */
export function gelu(ctx: EmitContext, path: string, x: string): string {
  const { g } = ctx;
  const d = g.node('Div', [x, g.scalar(Math.SQRT2)], {}, `${path}/div`)[0];
  const e = g.node('Erf', [d], {}, `${path}/erf`)[0];
  const a = g.node('Add', [e, g.scalar(1)], {}, `${path}/add`)[0];
  const m = g.node('Mul', [x, a], {}, `${path}/mul`)[0];
  return g.node('Mul', [m, g.scalar(0.5)], {}, path)[0];
}

/** LayerNorm over channels of NCHW: transpose to NHWC, `LayerNormalization` on the last axis, back. */
export function layerNormChannels(ctx: EmitContext, m: LayerNorm, path: string, x: string): string {
  const { g } = ctx;
  const t = g.node('Transpose', [x], { perm: ints([0, 2, 3, 1]) }, `${path}/to_nhwc`)[0];
  const y = g.node('LayerNormalization', [t, weightOf(ctx, `${path}.weight`), weightOf(ctx, `${path}.bias`)], { axis: int(-1), epsilon: float(m.eps) }, path)[0];
  return g.node('Transpose', [y], { perm: ints([0, 3, 1, 2]) }, `${path}/to_nchw`)[0];
}

/** BatchNorm with running statistics (inference). */
export function batchNorm(ctx: EmitContext, m: BatchNorm2d, path: string, x: string): string {
  const w = (k: string) => weightOf(ctx, `${path}.${k}`);
  return ctx.g.node('BatchNormalization', [x, w('weight'), w('bias'), w('running_mean'), w('running_var')], { epsilon: float(m.eps) }, path)[0];
}

/** `Gemm` of a Linear (`[N, in]` → `[N, out]`). */
export function linear(ctx: EmitContext, m: Linear, path: string, x: string): string {
  const inputs = [x, weightOf(ctx, `${path}.weight`)];
  if (m.bias) inputs.push(weightOf(ctx, `${path}.bias`));
  return ctx.g.node('Gemm', inputs, { transB: int(1) }, path)[0];
}

/** mmcv ConvModule: conv, BN (GN is not exported yet), ReLU. */
export function convModule(ctx: EmitContext, m: ConvModule, path: string, x: string): string {
  let y = conv(ctx, m.conv, `${path}.conv`, x);
  if (m.norm instanceof GroupNorm) throw new Error(`ONNX export: ${path} uses GroupNorm, which the exporter does not support yet (BN only)`);
  if (m.norm) y = batchNorm(ctx, m.norm, `${path}.bn`, y);
  return m.act ? ctx.g.node('Relu', [y], {}, `${path}/relu`)[0] : y;
}

/** Any of the layers above, or a Sequential of them (children `path.0`, `path.1`, ...). */
export function layer(ctx: EmitContext, m: Module, path: string, x: string): string {
  if (m instanceof Sequential) return m.layers.reduce((y, l, i) => layer(ctx, l, `${path}.${i}`, y), x);
  if (m instanceof Conv2d) return conv(ctx, m, path, x);
  if (m instanceof GELU) return gelu(ctx, path, x);
  if (m instanceof ReLU) return ctx.g.node('Relu', [x], {}, path)[0];
  if (m instanceof LayerNorm) return layerNormChannels(ctx, m, path, x);
  if (m instanceof BatchNorm2d) return batchNorm(ctx, m, path, x);
  if (m instanceof ConvModule) return convModule(ctx, m, path, x);
  throw new Error(`ONNX export: no ONNX form for ${m.constructor.name} at ${path}`);
}

/** `[N, C, H, W]` → int64 `[H, W]` of `x` (for resizes to a tensor's size). */
export function spatialShape(ctx: EmitContext, x: string, path: string): string {
  const { g } = ctx;
  const shape = g.node('Shape', [x], {}, `${path}/shape`)[0];
  return g.node('Slice', [shape, g.int64([2]), g.int64([4])], {}, `${path}/hw`)[0];
}

/** `Resize` of NCHW `x` to `hw` (int64 `[H, W]`; N and C kept) with `attrs`. */
function resizeTo(ctx: EmitContext, x: string, hw: string, path: string, attrs: Record<string, Attr>): string {
  const { g } = ctx;
  const shape = g.node('Shape', [x], {}, `${path}/in_shape`)[0];
  const nc = g.node('Slice', [shape, g.int64([0]), g.int64([2])], {}, `${path}/nc`)[0];
  const sizes = g.node('Concat', [nc, hw], { axis: int(0) }, `${path}/sizes`)[0];
  return g.node('Resize', [x, '', '', sizes], attrs, path)[0];
}

/** Bilinear resize of NCHW `x` to `hw` (int64 `[H, W]`), PyTorch `align_corners=False`. */
export function resizeBilinear(ctx: EmitContext, x: string, hw: string, path: string): string {
  return resizeTo(ctx, x, hw, path, { mode: str('linear'), coordinate_transformation_mode: str('half_pixel') });
}

/**
 * PyTorch `adaptive_avg_pool2d(x, k)` for any (dynamic) H, W: bin i of an axis of size S covers
 * `[floor(i*S/k), ceil((i+1)*S/k))`; rows are pooled first, then columns, each bin a Slice + ReduceMean.
 */
export function adaptiveAvgPool(ctx: EmitContext, x: string, k: number, path: string): string {
  const { g } = ctx;
  if (k === 1) return g.node('ReduceMean', [x], { axes: ints([2, 3]), keepdims: int(1) }, path)[0];
  const shape = g.node('Shape', [x], {}, `${path}/shape`)[0];
  const pool = (input: string, axis: 2 | 3): string => {
    const size = g.node('Slice', [shape, g.int64([axis]), g.int64([axis + 1])], {}, `${path}/size${axis}`)[0];
    const bins: string[] = [];
    for (let i = 0; i < k; i++) {
      // start = (i*S) div k, end = ((i+1)*S + k-1) div k: integer division of non-negative int64.
      const s0 = g.node('Mul', [size, g.int64([i])], {}, `${path}/a${axis}_${i}_s`)[0];
      const start = g.node('Div', [s0, g.int64([k])], {}, `${path}/a${axis}_${i}_start`)[0];
      const e0 = g.node('Mul', [size, g.int64([i + 1])], {}, `${path}/a${axis}_${i}_e`)[0];
      const e1 = g.node('Add', [e0, g.int64([k - 1])], {}, `${path}/a${axis}_${i}_e1`)[0];
      const end = g.node('Div', [e1, g.int64([k])], {}, `${path}/a${axis}_${i}_end`)[0];
      const slice = g.node('Slice', [input, start, end, g.int64([axis])], {}, `${path}/a${axis}_${i}_slice`)[0];
      bins.push(g.node('ReduceMean', [slice], { axes: ints([axis]), keepdims: int(1) }, `${path}/a${axis}_${i}_mean`)[0]);
    }
    return g.node('Concat', bins, { axis: int(axis) }, `${path}/a${axis}`)[0];
  };
  return pool(pool(x, 2), 3);
}

/** PyTorch `F.interpolate(x, size, mode='nearest')` to `hw`: `src = floor(dst * in / out)`. */
export function resizeNearest(ctx: EmitContext, x: string, hw: string, path: string): string {
  return resizeTo(ctx, x, hw, path, { mode: str('nearest'), coordinate_transformation_mode: str('asymmetric'), nearest_mode: str('floor') });
}
