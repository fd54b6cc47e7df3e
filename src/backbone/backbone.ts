/**
 * What necks, decode heads and detectors see of a backbone (detectron2 `Backbone.output_shape`,
 * timm `feature_info`): feature maps and their channels/strides, never the concrete class.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Module } from '../nn/module.ts';

/** Channels and stride (w.r.t. the input) of one returned feature map. */
export interface FeatureInfo {
  channels: number;
  stride: number;
}

export interface Backbone extends Module {
  /** One entry per tensor `forward` returns, in order. */
  readonly featureInfo: readonly FeatureInfo[];
  /** `[N, H, W, 3]` images → feature maps `[N, H/stride_i, W/stride_i, channels_i]`. */
  forward(x: tf.Tensor4D): tf.Tensor4D[];
}
