/**
 * ONNX protobuf encoding through protobufjs and the official schema (`onnx.proto3`, copied
 * unchanged from github.com/onnx/onnx, Apache-2.0), so the bytes we write are what every ONNX
 * reader parses, not a hand-rolled encoder's idea of them.
 */
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';

/** Numeric `TensorProto.DataType` values we write. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
/** `AttributeProto.AttributeType` values we write. */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

let root: protobuf.Root | null = null;

function schema(): protobuf.Root {
  if (!root) {
    const text = readFileSync(new URL('./onnx.proto3', import.meta.url), 'utf8');
    // keepCase: the field names stay as in the schema (`raw_data`, `data_type`), as in onnx's own tools.
    root = protobuf.parse(text, { keepCase: true }).root;
  }
  return root;
}

/** `onnx.ModelProto` as plain data (field names as in the schema). */
export type ModelProtoData = Record<string, unknown>;

/** Encodes a ModelProto given as plain data. @throws naming the field the schema rejects. */
export function encodeModel(model: ModelProtoData): Uint8Array {
  const type = schema().lookupType('onnx.ModelProto');
  const problem = type.verify(model);
  if (problem) throw new Error(`ONNX model does not match onnx.proto: ${problem}`);
  return type.encode(type.fromObject(model)).finish();
}

/** Decodes ModelProto bytes to plain data (int64 as numbers, bytes as Buffers). */
export function decodeModel(bytes: Uint8Array): ModelProtoData {
  const type = schema().lookupType('onnx.ModelProto');
  return type.toObject(type.decode(bytes), { longs: Number, bytes: Buffer, defaults: false }) as ModelProtoData;
}
