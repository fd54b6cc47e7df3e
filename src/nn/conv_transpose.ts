/**
 * `ConvTranspose2d` with kernel == stride (PyTorch `nn.ConvTranspose2d(in, out, k, stride=k)`, the
 * mask head's 2x upsampling deconv). Non-overlapping windows make it one matmul and a
 * depth-to-space shuffle, so the gradients are those of matmul/reshape/transpose (every backend).
 */
import * as tf from '@tensorflow/tfjs';
import { kaimingFanOut } from './init.ts';
import { matMul } from './matmul.ts';
import { Module, type TensorState } from './module.ts';

/** Weight key `weight` (PyTorch `[in, out, k, k]`, stored as is), bias key `bias`. */
export class ConvTranspose2d extends Module {
  readonly weight: TensorState;
  readonly bias?: TensorState;

  constructor(readonly inChannels: number, readonly outChannels: number, readonly kernelSize: number, opts: { bias?: boolean } = {}) {
    super();
    const k = kernelSize;
    this.weight = this.addParameter('weight', tf.zeros([inChannels, outChannels, k, k]));
    if (opts.bias ?? true) this.bias = this.addParameter('bias', tf.zeros([outChannels]));
    // mmcv `kaiming_init(mode='fan_out')`; PyTorch's fan_out of `[in, out, k, k]` is in·k·k.
    kaimingFanOut(this);
  }

  /** `[N, H, W, in]` → `[N, H*k, W*k, out]`. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const k = this.kernelSize;
      const o = this.outChannels;
      // [in, out, kh, kw] → [in, kh, kw, out]: each input pixel writes a k x k x out block.
      const wm = tf.transpose(this.weight.value, [0, 2, 3, 1]).reshape([c, k * k * o]) as tf.Tensor2D;
      const y = matMul(x.reshape([n * h * w, c]), wm); // [(n h w), (kh kw o)]
      // (n h) w kh (kw o) → (n h) kh w (kw o) → [n, h*k, w*k, o]
      const shuffled = tf.transpose(y.reshape([n * h, w, k, k * o]), [0, 2, 1, 3]).reshape([n, h * k, w * k, o]) as tf.Tensor4D;
      return this.bias ? tf.add(shuffled, this.bias.value) : shuffled;
    });
  }
}
