/**
 * `Linear`: PyTorch's `nn.Linear` over the last axis.
 */
import * as tf from '@tensorflow/tfjs';
import { truncNormal, type InitMode } from './init.ts';
import { matMul } from './matmul.ts';
import { Module, type TensorState } from './module.ts';
import { addSavingNothing } from './frugal.ts';

/** Fully connected layer; weight key `weight` (PyTorch `[out, in]`), bias key `bias`. */
export class Linear extends Module {
  readonly weight: TensorState;
  readonly bias?: TensorState;

  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean; init?: InitMode } = {}) {
    super();
    this.weight = this.addParameter('weight', truncNormal([inFeatures, outFeatures], 0.02, opts.init), { kind: 'linear' });
    if (opts.bias ?? true) this.bias = this.addParameter('bias', tf.zeros([outFeatures]));
  }

  /** `[..., in]` → `[..., out]`. */
  forward<T extends tf.Tensor>(x: T): T {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const y = matMul(x.reshape([-1, this.inFeatures]), this.weight.value as tf.Tensor2D);
      const yb = this.bias ? addSavingNothing(y, this.bias.value) : y;
      return yb.reshape([...lead, this.outFeatures]) as T;
    });
  }
}
