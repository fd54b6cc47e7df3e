/**
 * `Module`: a tree of named parameters, buffers and children whose dotted names are the PyTorch
 * state-dict keys, so checkpoints move between this project and PyTorch unchanged.
 *
 * Tensors live in tfjs layouts (NHWC-friendly); each state entry knows how to convert itself to and
 * from PyTorch's layout, so `stateDict()`/`loadStateDict()` speak PyTorch.
 */
import * as tf from '@tensorflow/tfjs';
import type { RawTensor, TensorDict } from '../io/tensor_data.ts';
import { numel } from '../io/tensor_data.ts';

/** How a tensor's tfjs layout maps to PyTorch's. */
export type Layout =
  /** Same shape and order in both. */
  | { kind: 'plain' }
  /** tfjs `[kh, kw, in/groups, out]` ↔ PyTorch `[out, in/groups, kh, kw]`. */
  | { kind: 'conv' }
  /** tfjs depthwise `[kh, kw, C, mult]` ↔ PyTorch `[C*mult, 1, kh, kw]`. */
  | { kind: 'depthwise' }
  /** tfjs `[in, out]` ↔ PyTorch `[out, in]`. */
  | { kind: 'linear' };

/** PyTorch shape of a tensor stored with `layout` in tfjs shape `shape`. */
export function torchShape(shape: readonly number[], layout: Layout): number[] {
  switch (layout.kind) {
    case 'plain': return [...shape];
    case 'conv': return [shape[3], shape[2], shape[0], shape[1]];
    case 'depthwise': return [shape[2] * shape[3], 1, shape[0], shape[1]];
    case 'linear': return [shape[1], shape[0]];
  }
}

/** PyTorch-layout values → tfjs-layout tensor of shape `shape`. */
function fromTorchLayout(raw: RawTensor, shape: readonly number[], layout: Layout): tf.Tensor {
  return tf.tidy(() => {
    const t = tf.tensor(raw.data as Float32Array, raw.shape, 'float32');
    switch (layout.kind) {
      case 'plain': return t.reshape(shape as number[]);
      case 'conv': return t.transpose([2, 3, 1, 0]);
      case 'depthwise': return t.reshape([shape[2], shape[3], shape[0], shape[1]]).transpose([2, 3, 0, 1]);
      case 'linear': return t.transpose([1, 0]);
    }
  });
}

/** tfjs-layout tensor → PyTorch-layout float32 values (a copy: callers may keep or change it). */
function toTorchLayout(t: tf.Tensor, layout: Layout): Float32Array {
  if (layout.kind === 'plain') return (t.dataSync() as Float32Array).slice();
  const perm = layout.kind === 'conv' ? [3, 2, 0, 1] : layout.kind === 'depthwise' ? [2, 3, 0, 1] : [1, 0];
  const moved = tf.transpose(t, perm);
  const data = moved.dataSync() as Float32Array;
  moved.dispose();
  return data;
}

/** One entry of a state dict: a parameter, a tensor buffer or an integer counter. */
export interface StateEntry {
  readonly kind: 'parameter' | 'buffer';
  /** PyTorch shape. */
  torchShape(): number[];
  /** Copy out in PyTorch layout. */
  toRaw(): RawTensor;
  /** Copy in from PyTorch layout; `key` names the entry in errors. */
  fromRaw(raw: RawTensor, key: string): void;
  dispose(): void;
}

function assertShape(raw: RawTensor, expected: number[], key: string): void {
  const same = raw.shape.length === expected.length && raw.shape.every((d, i) => d === expected[i]);
  // PyTorch stores 1-element tensors as [] or [1] depending on origin; accept either for scalars.
  const scalarAlias = numel(raw.shape) === 1 && numel(expected) === 1;
  if (!same && !scalarAlias) {
    throw new Error(`shape mismatch for '${key}': checkpoint has [${raw.shape.join(', ')}], model expects [${expected.join(', ')}]`);
  }
}

/** A float tensor held in a `tf.Variable`: a trainable parameter or a running-statistics buffer. */
export class TensorState implements StateEntry {
  readonly variable: tf.Variable;

  constructor(readonly kind: 'parameter' | 'buffer', value: tf.Tensor, readonly layout: Layout = { kind: 'plain' }) {
    this.variable = tf.variable(value, kind === 'parameter');
    value.dispose();
  }

  /** The current value (tfjs layout). */
  get value(): tf.Tensor {
    return this.variable;
  }

  /** Whether the optimiser updates it (false for buffers and frozen parameters). */
  get trainable(): boolean {
    return this.variable.trainable;
  }

  set trainable(on: boolean) {
    if (this.kind === 'parameter') this.variable.trainable = on;
  }

  torchShape(): number[] {
    return torchShape(this.variable.shape, this.layout);
  }

  toRaw(): RawTensor {
    return { dtype: 'float32', shape: this.torchShape(), data: toTorchLayout(this.variable, this.layout) };
  }

  fromRaw(raw: RawTensor, key: string): void {
    assertShape(raw, this.torchShape(), key);
    if (raw.dtype === 'bool') throw new Error(`'${key}': expected a floating-point tensor, checkpoint has ${raw.dtype}`);
    const t = fromTorchLayout(raw, this.variable.shape, this.layout);
    this.variable.assign(t);
    t.dispose();
  }

  dispose(): void {
    this.variable.dispose();
  }
}

/** An integer scalar kept in JS (e.g. BatchNorm's `num_batches_tracked`, int64 in PyTorch). */
export class CounterState implements StateEntry {
  readonly kind = 'buffer' as const;
  value = 0;

  torchShape(): number[] {
    return [];
  }

  toRaw(): RawTensor {
    return { dtype: 'int64', shape: [], data: new Int32Array([this.value]) };
  }

  fromRaw(raw: RawTensor, key: string): void {
    assertShape(raw, [], key);
    this.value = Number(raw.data[0]);
  }

  dispose(): void {}
}

/** Result of `loadStateDict`: keys the model has but the dict lacks, and the reverse. */
export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

/** Base class of every layer and model. */
export class Module {
  /** Train mode (batch statistics, DropPath active) vs eval mode. */
  training = true;
  private readonly entries = new Map<string, StateEntry>();
  private readonly children = new Map<string, Module>();

  /** Registers a parameter (trainable variable) named `name`; returns its state. */
  protected addParameter(name: string, value: tf.Tensor, layout: Layout = { kind: 'plain' }): TensorState {
    const p = new TensorState('parameter', value, layout);
    this.entries.set(name, p);
    return p;
  }

  /** Registers a non-trainable tensor buffer (e.g. running mean). */
  protected addBuffer(name: string, value: tf.Tensor): TensorState {
    const b = new TensorState('buffer', value);
    this.entries.set(name, b);
    return b;
  }

  /** Registers an integer counter buffer. */
  protected addCounter(name: string): CounterState {
    const c = new CounterState();
    this.entries.set(name, c);
    return c;
  }

  /** Registers a child module under `name` (its keys get the prefix `name.`). */
  addModule<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }

  /** Direct children in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** Every state entry of the tree with its full dotted key, in registration order. */
  namedStates(prefix = ''): [string, StateEntry][] {
    const out: [string, StateEntry][] = [];
    for (const [n, e] of this.entries) out.push([prefix + n, e]);
    for (const [n, c] of this.children) out.push(...c.namedStates(`${prefix}${n}.`));
    return out;
  }

  /** Parameters (trainable or frozen) with their keys. */
  namedParameters(prefix = ''): [string, TensorState][] {
    return this.namedStates(prefix).filter((e): e is [string, TensorState] => e[1].kind === 'parameter');
  }

  /** The variables an optimiser should update: trainable parameters only. */
  trainableVariables(): tf.Variable[] {
    return this.namedParameters().filter(([, p]) => p.trainable).map(([, p]) => p.variable);
  }

  /** Total number of parameter elements (PyTorch's `sum(p.numel())`). */
  numParameters(): number {
    return this.namedParameters().reduce((s, [, p]) => s + p.variable.size, 0);
  }

  /** Sets train (`true`) or eval mode on the whole tree. */
  train(mode = true): this {
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }

  /** Eval mode on the whole tree. */
  eval(): this {
    return this.train(false);
  }

  /** Copies every parameter and buffer out in PyTorch layout, keyed by PyTorch names. */
  stateDict(): TensorDict {
    return new Map(this.namedStates().map(([k, e]) => [k, e.toRaw()]));
  }

  /**
   * Loads PyTorch-layout tensors by key. Shape mismatches always throw (naming the key and both
   * shapes); with `strict` (default), missing or unexpected keys throw too.
   */
  loadStateDict(dict: TensorDict, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const own = new Map(this.namedStates());
    const missing = [...own.keys()].filter((k) => !dict.has(k));
    const unexpected = [...dict.keys()].filter((k) => !own.has(k));
    if (strict && (missing.length || unexpected.length)) {
      const show = (ks: string[]) => (ks.length > 8 ? `${ks.slice(0, 8).join(', ')} ... (${ks.length} in all)` : ks.join(', '));
      throw new Error(`state dict does not match the model: missing keys [${show(missing)}], unexpected keys [${show(unexpected)}]`);
    }
    for (const [k, e] of own) {
      const raw = dict.get(k);
      if (raw) e.fromRaw(raw, k);
    }
    return { missing, unexpected };
  }

  /** Frees every variable of the tree. */
  dispose(): void {
    for (const [, e] of this.namedStates()) e.dispose();
  }
}
