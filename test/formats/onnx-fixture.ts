/**
 * ONNX models written here (the venv has no onnx package): a ModelProto encoded by protobufjs from the fields of
 * onnx.proto that the readers and their tests use, with field numbers as onnx.proto has them, so the bytes are those
 * onnx.save writes for the same model.
 */
import protobuf from 'protobufjs';

const SCHEMA = `
syntax = "proto3";
message ModelProto { int64 ir_version = 1; string producer_name = 2; GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; }
message NodeProto { repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4; repeated AttributeProto attribute = 5; }
message AttributeProto { string name = 1; TensorProto t = 5; int32 type = 20; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8; bytes raw_data = 9; repeated StringStringEntryProto external_data = 13; int32 data_location = 14; }
message StringStringEntryProto { string key = 1; string value = 2; }
`;

let modelType: protobuf.Type | undefined;

/** Encodes a ModelProto from a plain object (protobufjs field names, as in onnx.proto). */
export function onnxModel(value: object): Buffer {
  modelType ??= protobuf.parse(SCHEMA, { keepCase: true }).root.lookupType('ModelProto');
  return Buffer.from(modelType.encode(modelType.fromObject(value)).finish());
}

/** TensorProto.DataType ids the tests use. */
export const ONNX = { FLOAT: 1, UINT8: 2, INT8: 3, INT64: 7, STRING: 8, FLOAT16: 10, BFLOAT16: 16, INT4: 22 } as const;

/** An initializer whose data lives in `location` (relative to the model), at `offset`, as onnx writes it. */
export function externalTensor(
  name: string,
  dims: number[],
  dataType: number,
  location: string,
  range: { offset?: number; length?: number } = {},
): object {
  return {
    name,
    dims,
    data_type: dataType,
    data_location: 1,
    external_data: [
      { key: 'location', value: location },
      ...(range.offset === undefined ? [] : [{ key: 'offset', value: String(range.offset) }]),
      ...(range.length === undefined ? [] : [{ key: 'length', value: String(range.length) }]),
    ],
  };
}
