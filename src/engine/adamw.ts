/**
 * AdamW (Loshchilov & Hutter): Adam with weight decay decoupled from the gradient, as
 * `torch.optim.AdamW`. Norm weights, biases and layer scales (every parameter of rank <= 1) get no
 * decay, the rule the Conv2Former/ConvNeXt recipes use.
 */
import * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.ts';

export interface AdamWOptions {
  lr: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
}

/** One optimised variable with its decay (0 for norms/biases/layer scales) and moment buffers. */
interface Slot {
  variable: tf.Variable;
  weightDecay: number;
  m: tf.Variable;
  v: tf.Variable;
}

export class AdamW {
  /** Current learning rate; schedules set it before each step. */
  lr: number;
  readonly weightDecay: number;
  readonly betas: [number, number];
  readonly eps: number;
  /** Steps taken (bias correction uses it). */
  stepCount = 0;
  private readonly slots: Slot[];

  constructor(module: Module, opts: AdamWOptions) {
    this.lr = opts.lr;
    this.weightDecay = opts.weightDecay ?? 0.01;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.slots = module.namedParameters().filter(([, p]) => p.trainable).map(([, p]) => ({
      variable: p.variable,
      weightDecay: p.variable.rank <= 1 ? 0 : this.weightDecay,
      m: tf.variable(tf.zerosLike(p.variable), false),
      v: tf.variable(tf.zerosLike(p.variable), false),
    }));
  }

  /** The variables this optimiser updates (pass to `tf.variableGrads`). */
  get variables(): tf.Variable[] {
    return this.slots.map((s) => s.variable);
  }

  /** One update from gradients keyed by variable name (what `tf.variableGrads` returns). */
  step(grads: Record<string, tf.Tensor>): void {
    this.stepCount += 1;
    const [b1, b2] = this.betas;
    const c1 = 1 - b1 ** this.stepCount;
    const c2 = 1 - b2 ** this.stepCount;
    tf.tidy(() => {
      for (const s of this.slots) {
        const g = grads[s.variable.name];
        if (!g) continue;
        s.m.assign(tf.add(tf.mul(s.m, b1), tf.mul(g, 1 - b1)));
        s.v.assign(tf.add(tf.mul(s.v, b2), tf.mul(tf.square(g), 1 - b2)));
        const update = tf.div(tf.div(s.m, c1), tf.add(tf.sqrt(tf.div(s.v, c2)), this.eps));
        const decayed = s.weightDecay ? tf.mul(s.variable, 1 - this.lr * s.weightDecay) : s.variable;
        s.variable.assign(tf.sub(decayed, tf.mul(update, this.lr)));
      }
    });
  }

  dispose(): void {
    for (const s of this.slots) tf.dispose([s.m, s.v]);
  }
}

/** Linear warmup from 0 then cosine decay to 0 over `total` steps; `step` counts from 1. */
export function warmupCosineLr(baseLr: number, step: number, warmup: number, total: number): number {
  if (step <= warmup) return (baseLr * step) / warmup;
  const t = (step - warmup) / Math.max(1, total - warmup);
  return 0.5 * baseLr * (1 + Math.cos(Math.PI * Math.min(1, t)));
}
