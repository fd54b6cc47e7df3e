/**
 * AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, as
 * `torch.optim.AdamW`. Norm weights, biases and layer scales (every parameter of rank <= 1, and
 * names ending in `layer_scale_1`/`layer_scale_2`) get no decay, the rule the Conv2Former/ConvNeXt
 * recipes use.
 *
 * Parameter groups (`paramGroups`, see {@link buildParamGroups}): each group has an `lrScale` and a
 * `weightDecay`; `opt.lr` stays the base lr and a parameter of the group moves with
 * `lr * lrScale`, decayed by `lr * lrScale * weightDecay` (torch AdamW per group, with MMSeg's
 * `lr_scale` folded into the group lr).
 */
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.ts';
import type { TensorDict } from '../io/tensor_data.ts';
import type { Optimizer, OptimizerState } from './optimizer.ts';
import { nativeAddon } from '../kernels/native.ts';
import { emptyFloat32, float32Buffer } from '../kernels/host.ts';

/** One optimiser parameter group: parameter keys (PyTorch names) with their lr scale and decay. */
export interface ParamGroup {
  name: string;
  params: string[];
  lrScale: number;
  weightDecay: number;
}

export interface AdamWOptions {
  lr: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /**
   * Explicit groups. Every trainable parameter must be in exactly one group. Without groups: one
   * decay group (lrScale 1) plus the no-decay rule above.
   */
  paramGroups?: ParamGroup[];
  /**
   * One loop over the memory of each small parameter tensor instead of a chain of tensor kernels,
   * where the backend allows it (cpu, wasm), like `torch.optim.AdamW(fused=True)`; bit-identical.
   * Default true.
   */
  fused?: boolean;
}

/** Whether a parameter gets no weight decay: rank <= 1 (norms, biases, layer scales) or `.bias`/`layer_scale_*`. */
export function isNoDecay(name: string, rank: number): boolean {
  return rank <= 1 || name.endsWith('.bias') || /(^|\.)layer_scale_[12]$/.test(name) ||
    ['pos_embed', 'cls_token', 'backbone.pos_embed', 'backbone.cls_token'].includes(name);
}

/**
 * Tensors up to this size take the one-pass update. JavaScript's float32-rounded loop costs ~20-30
 * ns per element (its divisions and square root in double precision); the kernel chain ~20 kernel
 * launches of ~25 µs each plus ~10 ns per element: the loop wins below ~16k elements.
 */
const FUSED_MAX_SIZE = 16384;

/** One optimised variable with its decay (0 for norms/biases/layer scales) and moment buffers. */
interface Slot {
  name: string;
  variable: tf.Variable;
  weightDecay: number;
  lrScale: number;
  m: tf.Variable;
  v: tf.Variable;
}

/** Serialisable AdamW state: moments keyed `exp_avg.<param>` / `exp_avg_sq.<param>` (tfjs layout). */
export type AdamWState = OptimizerState;

/** A zero moment buffer shaped like `v` (the zeros tensor is released: the variable holds its own reference). */
function zeroMoment(v: tf.Variable): tf.Variable {
  const z = tf.zerosLike(v);
  const m = tf.variable(z, false);
  z.dispose();
  return m;
}

export class AdamW implements Optimizer {
  /** Current (base) learning rate; schedules set it before each step. */
  lr: number;
  readonly weightDecay: number;
  readonly betas: [number, number];
  readonly eps: number;
  /** Steps taken (bias correction uses it). */
  stepCount = 0;
  readonly fused: boolean;
  private readonly slots: Slot[];

  constructor(module: Module, opts: AdamWOptions) {
    this.lr = opts.lr;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.fused = opts.fused ?? true;
    const byName = new Map<string, { lrScale: number; weightDecay: number }>();
    for (const g of opts.paramGroups ?? []) {
      for (const p of g.params) {
        if (byName.has(p)) throw new Error(`AdamW: parameter '${p}' is in more than one group`);
        byName.set(p, { lrScale: g.lrScale, weightDecay: g.weightDecay });
      }
    }
    this.slots = module.namedParameters().filter(([, p]) => p.trainable).map(([name, p]) => {
      let cfg = byName.get(name);
      if (!cfg) {
        if (opts.paramGroups) throw new Error(`AdamW: trainable parameter '${name}' is in no parameter group`);
        cfg = { lrScale: 1, weightDecay: isNoDecay(name, p.variable.rank) ? 0 : this.weightDecay };
      }
      return {
        name,
        variable: p.variable,
        weightDecay: cfg.weightDecay,
        lrScale: cfg.lrScale,
        m: zeroMoment(p.variable),
        v: zeroMoment(p.variable),
      };
    });
  }

  /** The variables this optimiser updates (pass to `tf.variableGrads`). */
  get variables(): tf.Variable[] {
    return this.slots.map((s) => s.variable);
  }

  /** `[paramName, lrScale, weightDecay]` per optimised parameter. */
  paramSettings(): { name: string; lrScale: number; weightDecay: number }[] {
    return this.slots.map((s) => ({ name: s.name, lrScale: s.lrScale, weightDecay: s.weightDecay }));
  }

  /** One update from gradients keyed by variable name (what `tf.variableGrads` returns). */
  step(grads: Record<string, tf.Tensor>): void {
    this.stepCount += 1;
    const [b1, b2] = this.betas;
    const c1 = 1 - b1 ** this.stepCount;
    const c2 = 1 - b2 ** this.stepCount;
    for (const s of this.slots) {
      const g = grads[s.variable.name];
      if (!g) continue;
      const lr = this.lr * s.lrScale;
      if (this.fused && (g.size <= FUSED_MAX_SIZE || nativeAddon()) && this.updateInOnePass(s, g, lr, c1, c2)) continue;
      // One tidy per parameter: one tidy around all of them kept every temporary of every
      // parameter (~12 per weight, 2 GB for Mask R-CNN T) alive until the last update.
      tf.tidy(() => {
        s.m.assign(tf.add(tf.mul(s.m, b1), tf.mul(g, 1 - b1)));
        s.v.assign(tf.add(tf.mul(s.v, b2), tf.mul(tf.square(g), 1 - b2)));
        const update = tf.div(tf.div(s.m, c1), tf.add(tf.sqrt(tf.div(s.v, c2)), this.eps));
        const decayed = s.weightDecay ? tf.mul(s.variable, 1 - lr * s.weightDecay) : s.variable;
        s.variable.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    }
  }

  /**
   * The update of the kernel chain in {@link step} as one loop over the memory (cpu and wasm): the
   * chain's ~20 kernels per parameter tensor cost more than their arithmetic for all but the
   * largest tensors. Every operation is rounded to float32 as its kernel rounds it, so the result
   * is bit-identical. The moments are updated in place; the parameter gets a new buffer, because
   * the wasm backend caches packed copies of conv and matmul weights by buffer. False (nothing
   * done) where the buffers cannot be reached.
   */
  private updateInOnePass(s: Slot, g: tf.Tensor, lr: number, c1: number, c2: number): boolean {
    if (float32Buffer(g, false) === null || float32Buffer(s.m, true) === null || float32Buffer(s.v, true) === null) return false;
    const next = emptyFloat32(s.variable.shape); // every element written below
    // Views only after the last allocation: allocating may move the wasm heap.
    const [out, p, m, v, gr] = [float32Buffer(next, true), float32Buffer(s.variable, false), float32Buffer(s.m, true), float32Buffer(s.v, true), float32Buffer(g, false)];
    if (!out || !p || !m || !v || !gr) {
      next.dispose();
      return false;
    }
    const f = Math.fround;
    const [b1, b2] = this.betas;
    const B1 = f(b1), OB1 = f(1 - b1), B2 = f(b2), OB2 = f(1 - b2);
    const C1 = f(c1), C2 = f(c2), EPS = f(this.eps), LR = f(lr);
    const decay = s.weightDecay ? f(1 - lr * s.weightDecay) : 1;
    const lib = nativeAddon();
    if (lib) {
      // The same float32 steps, compiled (any size; see native/src/kernels.c).
      lib.adamw(p, m, v, gr, out, Float32Array.of(B1, OB1, B2, OB2, C1, C2, EPS, LR, decay, s.weightDecay ? 1 : 0));
      s.variable.assign(next);
      next.dispose();
      return true;
    }
    for (let i = 0; i < out.length; i++) {
      const gi = gr[i];
      const mi = f(f(m[i] * B1) + f(gi * OB1));
      const vi = f(f(v[i] * B2) + f(f(gi * gi) * OB2));
      m[i] = mi;
      v[i] = vi;
      const update = f(f(mi / C1) / f(f(Math.sqrt(f(vi / C2))) + EPS));
      const decayed = s.weightDecay ? f(p[i] * decay) : p[i];
      out[i] = f(decayed - f(update * LR));
    }
    s.variable.assign(next);
    next.dispose();
    return true;
  }

  /** Copies the moments out (keyed by parameter name) with the step count. */
  state(): AdamWState {
    const tensors: TensorDict = new Map();
    for (const s of this.slots) {
      tensors.set(`exp_avg.${s.name}`, { dtype: 'float32', shape: [...s.m.shape], data: s.m.dataSync() as Float32Array });
      tensors.set(`exp_avg_sq.${s.name}`, { dtype: 'float32', shape: [...s.v.shape], data: s.v.dataSync() as Float32Array });
    }
    return { stepCount: this.stepCount, tensors };
  }

  /** Restores what {@link state} returned; throws naming a missing or mis-shaped moment. */
  loadState(st: AdamWState): void {
    for (const s of this.slots) {
      for (const [prefix, buf] of [['exp_avg', s.m], ['exp_avg_sq', s.v]] as const) {
        const key = `${prefix}.${s.name}`;
        const raw = st.tensors.get(key);
        if (!raw) throw new Error(`optimizer state lacks '${key}'`);
        if (raw.shape.length !== buf.shape.length || raw.shape.some((d, i) => d !== buf.shape[i])) {
          throw new Error(`optimizer state '${key}' has shape [${raw.shape}], expected [${buf.shape}]`);
        }
        const t = tf.tensor(raw.data as Float32Array, buf.shape, 'float32');
        buf.assign(t);
        t.dispose();
      }
    }
    this.stepCount = st.stepCount;
  }

  dispose(): void {
    for (const s of this.slots) tf.dispose([s.m, s.v]);
  }
}

