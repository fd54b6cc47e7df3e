/**
 * Reverse-mode gradients that free memory as the backward pass goes.
 *
 * `tf.grads`/`tf.variableGrads` keep every gradient they compute, and every tensor the forward pass
 * saved for the backward pass, until the whole backward pass ends: a training step's peak memory is
 * then the forward's saved tensors PLUS all intermediate gradients (2.8 GB for Conv2Former-T at
 * 224x224). Here the same tape and the same per-kernel gradient functions are walked in the same
 * order, so the results are the same numbers, but an output's gradient is released once its
 * producer has used it, and a node's saved tensors once its gradient is known (PyTorch's autograd
 * frees both the same way).
 *
 * Uses the engine's tape slot (`tf.engine().state`), the one piece of tfjs internals touched here.
 */
import * as tf from '@tensorflow/tfjs';

/** One recorded kernel call (tfjs-core's `TapeNode`, which the package does not export). */
interface TapeNode {
  id: number;
  kernelName: string;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface TapeState {
  activeTape: TapeNode[] | null;
  gradientDepth: number;
  kernelDepth: number;
}

/** Input names (customGrad: '0', '1', ...) of the node whose gradient is being computed, if known. */
let neededInputs: Set<string> | null = null;

/**
 * Whether input `index` of the custom-gradient op whose gradient function is running needs its
 * gradient: false for inputs no trained variable depends on (the image into the first conv), whose
 * gradient the backward pass would compute and throw away. True where unknown (tfjs's own
 * `tf.grad`). A gradient function may return any float32 tensor of the input's shape for those.
 */
export function inputNeedsGradient(index: number): boolean {
  return neededInputs === null || neededInputs.has(String(index));
}

/**
 * The nodes on a path from any of `xs` to `y`, in tape order, each with only the inputs that
 * depend on `xs` (the inputs whose gradients are needed).
 */
function nodesFromXsToY(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodeFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      nodeFromX.add(node.id);
      for (const o of node.outputs) fromX.add(o.id);
    }
  }
  const toY = new Set([y.id]);
  const nodeToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      nodeToY.add(node.id);
      for (const t of Object.values(node.inputs)) toY.add(t.id);
    }
  }
  return tape
    .filter((n) => nodeFromX.has(n.id) && nodeToY.has(n.id))
    .map((n) => ({ ...n, inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))) }));
}

/**
 * Gradients of `f()` with respect to `xs`, like `tf.engine().gradients`, with the memory freed
 * as described above. Falls back to tfjs's own pass when called under a recording tape
 * (higher-order gradients).
 * @param f returns the tensor to differentiate (any shape; `dy` gives its upstream gradient)
 * @param xs tensors or variables `f` reads
 * @param dy upstream gradient of `f()`'s shape (default ones); not disposed
 * @returns `value`: `f()`; `grads[i]`: the gradient of `xs[i]`, or null where `f` does not depend on it
 */
export function gradientsFreeing(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor): { value: tf.Tensor; grads: (tf.Tensor | null)[] } {
  const engine = tf.engine();
  const state = engine.state as unknown as TapeState;
  if (state.gradientDepth > 0 || state.kernelDepth > 0) {
    // Nested in a gradient function (a checkpointed re-run): tfjs's backprop, which does not say
    // which inputs it needs.
    const outer = neededInputs;
    neededInputs = null;
    try {
      const { value, grads } = engine.gradients(f, xs, dy, true);
      return { value, grads };
    } finally {
      neededInputs = outer;
    }
  }
  const outerTape = state.activeTape;
  state.activeTape = [];
  state.gradientDepth = 1;
  let tape: TapeNode[];
  let value: tf.Tensor;
  try {
    value = engine.tidy('forward', f);
  } finally {
    state.gradientDepth = 0;
    tape = state.activeTape ?? [];
    state.activeTape = outerTape;
  }
  try {
    // tidy walks arrays skipping nulls; its TensorContainer type just does not list null.
    const grads = tf.tidy(() => backward(nodesFromXsToY(tape, xs, value), xs, value, dy) as unknown as tf.TensorContainer) as unknown as (tf.Tensor | null)[];
    return { value, grads };
  } finally {
    for (const node of tape) for (const t of node.saved ?? []) t.dispose();
  }
}

/** The backward walk; runs inside a tidy that frees whatever it does not return. */
function backward(nodes: TapeNode[], xs: tf.Tensor[], y: tf.Tensor, dy: tf.Tensor | undefined): (tf.Tensor | null)[] {
  // Accumulated gradient per tensor id, and how many entries hold each gradient tensor (a kernel's
  // gradient may hand back the very tensor it was given): what is held is never disposed.
  const acc = new Map<number, tf.Tensor>();
  const holders = new Map<tf.Tensor, number>();
  const hold = (id: number, t: tf.Tensor) => {
    acc.set(id, t);
    holders.set(t, (holders.get(t) ?? 0) + 1);
  };
  const release = (id: number) => {
    const t = acc.get(id)!;
    acc.delete(id);
    const n = holders.get(t)! - 1;
    if (n > 0) holders.set(t, n);
    else holders.delete(t);
    return t;
  };
  const inUse = (t: tf.Tensor) => t === dy || holders.has(t);
  hold(y.id, dy ?? tf.onesLike(y));
  const wanted = new Set(xs.map((x) => x.id));
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    if (!node.gradient) throw new Error(`gradientsFreeing: no gradient registered for kernel ${node.kernelName}`);
    const entries = Object.entries(node.inputs);
    // One tidy around the gradient function AND its per-input closures: a custom gradient
    // (customGrad) computes everything when called, and its temporaries must not outlive this node.
    const dxs = tf.tidy(() => {
      neededInputs = new Set(entries.map(([name]) => name));
      let inputGrads: Record<string, () => tf.Tensor>;
      try {
        inputGrads = node.gradient!(node.outputs.map((o) => acc.get(o.id) ?? null));
      } finally {
        neededInputs = null;
      }
      return entries.map(([name]) => {
        if (!(name in inputGrads)) throw new Error(`gradientsFreeing: kernel ${node.kernelName} gives no gradient for input '${name}'`);
        return inputGrads[name]();
      });
    });
    for (const [k, [name, x]] of entries.entries()) {
      const dx = dxs[k];
      if (dx.dtype !== 'float32') throw new Error(`gradientsFreeing: gradient of ${node.kernelName} input '${name}' is ${dx.dtype}, expected float32`);
      if (!tf.util.arraysEqual(dx.shape, x.shape)) {
        throw new Error(`gradientsFreeing: gradient of ${node.kernelName} input '${name}' has shape [${dx.shape}], input [${x.shape}]`);
      }
      if (!acc.has(x.id)) {
        hold(x.id, dx);
        continue;
      }
      const prev = release(x.id);
      hold(x.id, tf.add(prev, dx));
      if (!inUse(prev)) prev.dispose();
      if (!inUse(dx)) dx.dispose();
    }
    // This node was the only producer of its outputs: their gradients are complete and used.
    for (const o of node.outputs) {
      if (!acc.has(o.id) || wanted.has(o.id)) continue;
      const g = release(o.id);
      if (!inUse(g)) g.dispose();
    }
    for (const t of node.saved ?? []) if (!inUse(t)) t.dispose();
  }
  return xs.map((x) => acc.get(x.id) ?? null);
}

/**
 * `tf.variableGrads` through {@link gradientsFreeing}: the gradients of the scalar `f()` with
 * respect to `vars` (default: every trainable variable), keyed by variable name; variables `f`
 * does not reach get no entry.
 */
export function variableGradsFreeing(f: () => tf.Scalar, vars: tf.Variable[]): { value: tf.Scalar; grads: Record<string, tf.Tensor> } {
  const list = vars.filter((v) => v.trainable);
  if (list.length === 0) throw new Error('variableGradsFreeing: no trainable variables given');
  const { value, grads } = gradientsFreeing(() => {
    const y = f();
    if (y.rank !== 0) throw new Error(`variableGradsFreeing: f() must return a scalar, got shape [${y.shape}]`);
    return y;
  }, list);
  if (grads.every((g) => g == null)) {
    value.dispose();
    throw new Error('variableGradsFreeing: none of the variables contributes to the loss');
  }
  const named: Record<string, tf.Tensor> = {};
  list.forEach((v, i) => {
    const g = grads[i];
    if (g) named[v.name] = g;
  });
  return { value: value as tf.Scalar, grads: named };
}
