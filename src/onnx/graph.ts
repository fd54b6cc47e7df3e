/**
 * A small ONNX graph builder: nodes, initializers and graph inputs/outputs with symbolic dims,
 * turned into a `ModelProto` (see proto.ts). Weights are raw little-endian initializers; above a
 * size limit they go to an external data file beside the model (the ONNX external-data format, as
 * `onnx.save(..., save_as_external_data=True)` writes it), since a protobuf message cannot exceed 2 GB.
 */
import { AttributeType, DataType, type ModelProtoData } from './proto.ts';

/** A node attribute: an int, a float, a string, or lists of ints / floats. */
export type Attr = { i: number } | { f: number } | { s: string } | { ints: readonly number[] } | { floats: readonly number[] };
export const int = (i: number): Attr => ({ i });
export const float = (f: number): Attr => ({ f });
export const str = (s: string): Attr => ({ s });
export const ints = (v: readonly number[]): Attr => ({ ints: v });

/** A graph input/output dimension: a fixed size or a symbolic name (dynamic). */
export type Dim = number | string;

interface Initializer {
  name: string;
  dims: number[];
  dataType: number;
  bytes: Uint8Array;
}

function attrProto(name: string, a: Attr): Record<string, unknown> {
  if ('i' in a) return { name, type: AttributeType.INT, i: a.i };
  if ('f' in a) return { name, type: AttributeType.FLOAT, f: a.f };
  if ('s' in a) return { name, type: AttributeType.STRING, s: Buffer.from(a.s, 'utf8') };
  if ('ints' in a) return { name, type: AttributeType.INTS, ints: [...a.ints] };
  return { name, type: AttributeType.FLOATS, floats: [...a.floats] };
}

function valueInfo(name: string, dims: readonly Dim[]): Record<string, unknown> {
  return {
    name,
    type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  };
}

/** Builds one graph; every tensor name is unique (node outputs get the node's name + a suffix). */
export class OnnxGraph {
  private readonly nodes: Record<string, unknown>[] = [];
  private readonly inits: Initializer[] = [];
  private readonly inputs: Record<string, unknown>[] = [];
  private readonly outputs: Record<string, unknown>[] = [];
  private readonly names = new Set<string>();
  private readonly constants = new Map<string, string>();

  private claim(name: string): string {
    let n = name;
    for (let k = 1; this.names.has(n); k++) n = `${name}_${k}`;
    this.names.add(n);
    return n;
  }

  /** A float32 graph input `[dims]`; returns its name. */
  input(name: string, dims: readonly Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), dims));
    return name;
  }

  /** Marks `value` as a graph output named `name` (an Identity when the names differ). */
  output(value: string, name: string, dims: readonly Dim[]): void {
    const out = value === name ? value : this.node('Identity', [value], {}, name)[0];
    this.outputs.push(valueInfo(out, dims));
  }

  /**
   * A float32 initializer named `name` (a state-dict key); the same name and dims again (a module
   * applied at several places, as the RPN head on each FPN level) reuse the first. Returns its name.
   */
  weight(name: string, data: Float32Array, dims: readonly number[]): string {
    const key = `w:${name}:${dims.join('x')}`;
    const seen = this.constants.get(key);
    if (seen) return seen;
    const n = this.claim(name);
    this.constants.set(key, n);
    const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    this.inits.push({ name: n, dims: [...dims], dataType: DataType.FLOAT, bytes });
    return n;
  }

  /** A shared int64 constant (e.g. axes, shape slices). */
  int64(values: readonly number[]): string {
    const key = `i64:${values.join(',')}`;
    let n = this.constants.get(key);
    if (!n) {
      n = this.claim(`const_i64_${values.join('_').replace(/-/g, 'm') || 'empty'}`);
      const data = new BigInt64Array(values.map((v) => BigInt(v)));
      this.inits.push({ name: n, dims: [values.length], dataType: DataType.INT64, bytes: new Uint8Array(data.buffer) });
      this.constants.set(key, n);
    }
    return n;
  }

  /** A shared float32 scalar constant. */
  scalar(value: number): string {
    const key = `f32:${value}`;
    let n = this.constants.get(key);
    if (!n) {
      n = this.claim(`const_f32_${String(value).replace(/[^0-9a-z]/gi, '_')}`);
      this.inits.push({ name: n, dims: [], dataType: DataType.FLOAT, bytes: new Uint8Array(new Float32Array([value]).buffer) });
      this.constants.set(key, n);
    }
    return n;
  }

  /**
   * Adds a node named `name` (its outputs `name`, `name:1`, ...); '' in `inputs` skips an
   * optional input. Returns the output names.
   */
  node(opType: string, inputs: readonly string[], attrs: Record<string, Attr>, name: string, numOutputs = 1): string[] {
    const nodeName = this.claim(name);
    const outs = Array.from({ length: numOutputs }, (_, k) => (k === 0 ? nodeName : this.claim(`${nodeName}:${k}`)));
    this.nodes.push({
      name: nodeName,
      op_type: opType,
      input: [...inputs],
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attrProto(k, v)),
    });
    return outs;
  }

  /** Total bytes of the initializers. */
  get weightBytes(): number {
    return this.inits.reduce((s, t) => s + t.bytes.length, 0);
  }

  /**
   * The ModelProto. With `externalData`, initializers of at least 1 KiB are stored in that file
   * (`location` relative to the model) and their bytes returned in `external`, in file order.
   */
  toModel(opts: { name: string; opset: number; producer: string; docString?: string; externalData?: string }): { model: ModelProtoData; external: Uint8Array[] } {
    const external: Uint8Array[] = [];
    let offset = 0;
    const initializer = this.inits.map((t) => {
      const base = { name: t.name, dims: t.dims, data_type: t.dataType };
      if (!opts.externalData || t.bytes.length < 1024) return { ...base, raw_data: t.bytes };
      // Entries start 4 KiB-aligned, as onnx's writer does (mmap-friendly).
      const pad = (4096 - (offset % 4096)) % 4096;
      if (pad) external.push(new Uint8Array(pad));
      offset += pad;
      external.push(t.bytes);
      const entry = { ...base, data_location: 1, external_data: [
        { key: 'location', value: opts.externalData },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(t.bytes.length) },
      ] };
      offset += t.bytes.length;
      return entry;
    });
    return {
      model: {
        ir_version: 8,
        producer_name: opts.producer,
        doc_string: opts.docString ?? '',
        opset_import: [{ domain: '', version: opts.opset }],
        graph: { name: opts.name, node: this.nodes, initializer, input: this.inputs, output: this.outputs },
      },
      external,
    };
  }
}
