/**
 * Containers whose children are keyed by index, like PyTorch's `nn.Sequential` / `nn.ModuleList`.
 */
import type * as tf from '@tensorflow/tfjs';
import { Module } from './module.ts';

/** A module that maps a tensor to a tensor. */
export interface Layer extends Module {
  forward(x: tf.Tensor4D): tf.Tensor4D;
}

/** Children `0..n-1`, applied in order. */
export class Sequential extends Module {
  readonly layers: Layer[];

  constructor(layers: Layer[]) {
    super();
    this.layers = layers;
    layers.forEach((l, i) => this.addModule(String(i), l));
  }

  /**
   * Applies the layers in order. Intermediates are not disposed here: a gradient tape may hold
   * them; callers run this inside `tf.tidy` or a gradient scope.
   */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.layers.reduce((y, l) => l.forward(y), x);
  }
}

/** Children `0..n-1`, held for the caller to use. */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.addModule(String(i), m));
  }

  get length(): number {
    return this.items.length;
  }

  at(i: number): M {
    return this.items[i];
  }
}
