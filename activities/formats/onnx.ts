/**
 * ONNX ModelProto through protobufjs with a minimal schema: only the fields the readers use are declared, so tensor
 * bytes (raw_data, typed data) are skipped by the decoder rather than copied. The reader lists every tensor a model
 * carries — graph initializers (also of subgraphs), sparse initializers, attribute tensors, function bodies — with
 * dtype, dims, byte size and where external data lives.
 */
import protobuf from 'protobufjs';
import { DTYPE_BITS, ONNX_DTYPES, type Dtype } from './dtypes';
import { FormatError } from './errors';
import type { PositionalRead } from './source';

const SCHEMA = `
syntax = "proto3";
message ModelProto { int64 ir_version = 1; GraphProto graph = 7; repeated FunctionProto functions = 25; }
message GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; repeated SparseTensorProto sparse_initializer = 15; }
message NodeProto { string name = 3; string op_type = 4; string domain = 7; repeated AttributeProto attribute = 5; }
message AttributeProto { string name = 1; TensorProto t = 5; GraphProto g = 6; repeated TensorProto tensors = 10; repeated GraphProto graphs = 11; SparseTensorProto sparse_tensor = 22; repeated SparseTensorProto sparse_tensors = 23; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8; repeated StringStringEntryProto external_data = 13; int32 data_location = 14; }
message SparseTensorProto { TensorProto values = 1; TensorProto indices = 2; }
message StringStringEntryProto { string key = 1; string value = 2; }
message FunctionProto { string name = 1; repeated NodeProto node = 7; }
`;

/** Subgraphs (If/Loop bodies) nest; deeper than this is no model a runtime loads. */
const MAX_GRAPH_DEPTH = 64;

let root: protobuf.Root | undefined;
function modelType(): protobuf.Type {
  root ??= protobuf.parse(SCHEMA, { keepCase: true }).root;
  return root.lookupType('ModelProto');
}

export interface OnnxTensor {
  name: string;
  /** TensorProto.DataType id. */
  dataType: number;
  /** Undefined for STRING and ids this table does not know. */
  type: Dtype | undefined;
  dims: number[];
  elements: number;
  /** Bytes of data for fixed-width types (sub-byte types padded to whole bytes, as ONNX packs them). */
  bytes: number | undefined;
  /** A graph initializer (of the main graph or a subgraph), rather than an attribute's or a sparse part. */
  initializer: boolean;
  /**
   * Set when data_location is EXTERNAL or external_data is given; `location` is as written (unresolved). `offset` and
   * `length` are the byte range in that file as written: undefined when absent, NaN when not a decimal count.
   */
  external?: { location: string | undefined; offset?: number; length?: number };
}

export interface OnnxModel {
  irVersion: number;
  tensors: OnnxTensor[];
  /** Elements of the initializers: the model's parameters. */
  parameters: number;
}

interface RawTensor {
  name?: string;
  dims?: (number | { toString(): string })[];
  data_type?: number;
  data_location?: number;
  external_data?: { key?: string; value?: string }[];
}
interface RawSparse {
  values?: RawTensor;
  indices?: RawTensor;
}
interface RawGraph {
  node?: RawNode[];
  initializer?: RawTensor[];
  sparse_initializer?: RawSparse[];
}
interface RawNode {
  attribute?: {
    t?: RawTensor;
    g?: RawGraph;
    tensors?: RawTensor[];
    graphs?: RawGraph[];
    sparse_tensor?: RawSparse;
    sparse_tensors?: RawSparse[];
  }[];
}

/** Decodes an ONNX model's structure from its bytes; throws a FormatError when they are not a ModelProto. */
export function readOnnxModel(bytes: Uint8Array, file: string): OnnxModel {
  let model: { ir_version?: number | { toString(): string }; graph?: RawGraph; functions?: { node?: RawNode[] }[] };
  try {
    model = modelType().decode(bytes) as typeof model;
  } catch (err) {
    // protobufjs names the offset it stopped at; keep that, not the rest of its message.
    const offset = Number(/offset (\d+)/.exec((err as Error).message)?.[1] ?? -1);
    throw new FormatError('onnx', file, offset, 'the ONNX model does not decode as a ModelProto', { cause: err });
  }
  const tensors: OnnxTensor[] = [];
  const tensor = (t: RawTensor | undefined, initializer: boolean): void => {
    if (!t) return;
    const dims = (t.dims ?? []).map((d) => (typeof d === 'number' ? d : Number(d.toString())));
    const elements = dims.reduce((p, d) => p * d, 1);
    const dataType = t.data_type ?? 0;
    const type = ONNX_DTYPES[dataType];
    const external = (t.external_data?.length ?? 0) > 0 || t.data_location === 1;
    const entry = (key: string): string | undefined => t.external_data?.find((e) => e.key === key)?.value;
    const count = (key: 'offset' | 'length'): { offset?: number; length?: number } => {
      const text = entry(key);
      if (text === undefined) return {};
      return { [key]: /^\d{1,15}$/.test(text) ? Number(text) : NaN };
    };
    tensors.push({
      name: t.name ?? '',
      dataType,
      type,
      dims,
      elements,
      bytes: type === undefined ? undefined : Math.ceil((elements * DTYPE_BITS[type]) / 8),
      initializer,
      ...(external ? { external: { location: entry('location'), ...count('offset'), ...count('length') } } : {}),
    });
  };
  const sparse = (s: RawSparse | undefined): void => {
    tensor(s?.values, false);
    tensor(s?.indices, false);
  };
  let depth = 0;
  const graph = (g: RawGraph | undefined): void => {
    if (!g || ++depth > MAX_GRAPH_DEPTH) return;
    for (const t of g.initializer ?? []) tensor(t, true);
    for (const s of g.sparse_initializer ?? []) sparse(s);
    nodes(g.node);
    depth--;
  };
  const nodes = (list: RawNode[] | undefined): void => {
    for (const n of list ?? [])
      for (const a of n.attribute ?? []) {
        tensor(a.t, false);
        for (const t of a.tensors ?? []) tensor(t, false);
        sparse(a.sparse_tensor);
        for (const s of a.sparse_tensors ?? []) sparse(s);
        graph(a.g);
        for (const g of a.graphs ?? []) graph(g);
      }
  };
  graph(model.graph);
  for (const fn of model.functions ?? []) nodes(fn.node);
  const irVersion = typeof model.ir_version === 'number' ? model.ir_version : Number(model.ir_version?.toString() ?? 0);
  const parameters = tensors.filter((t) => t.initializer).reduce((s, t) => s + t.elements, 0);
  return { irVersion, tensors, parameters };
}

/** Top-level fields walked before a file is taken for a ModelProto; a model has a dozen or so. */
const MAX_TOP_LEVEL_FIELDS = 10_000;

/**
 * True when a file's top-level protobuf fields are well formed to its end and are those of a ModelProto: an
 * ir_version varint first (every ONNX writer emits fields in number order) and a graph. ONNX has no magic bytes;
 * this walk reads a few bytes per field and skips the graph, so a multi-gigabyte file of other bytes is turned
 * away without being read.
 */
export async function looksLikeOnnxModel(handle: PositionalRead, size: number): Promise<boolean> {
  const window = Buffer.alloc(20);
  let pos = 0;
  let graph = false;
  for (let fields = 0; pos < size; fields++) {
    if (fields >= MAX_TOP_LEVEL_FIELDS) return false;
    const { bytesRead } = await handle.read(window, 0, window.length, pos);
    const view = window.subarray(0, bytesRead);
    const tag = varint(view, 0);
    if (!tag) return false;
    const field = Number(tag.value >> 3n);
    const wire = Number(tag.value & 7n);
    if (fields === 0 && (field !== 1 || wire !== 0)) return false;
    if (field === 0) return false;
    let next = pos + tag.length;
    if (wire === 0) {
      const v = varint(view, tag.length);
      if (!v) return false;
      next += v.length;
    } else if (wire === 2) {
      const length = varint(view, tag.length);
      if (!length) return false;
      next += length.length + Number(length.value);
      if (field === 7) graph = true;
    } else if (wire === 1) next += 8;
    else if (wire === 5) next += 4;
    else return false;
    if (next > size) return false;
    pos = next;
  }
  return graph;
}

function varint(buf: Buffer, at: number): { value: bigint; length: number } | undefined {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    const byte = buf[at + i];
    if (byte === undefined) return undefined;
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) return { value, length: i + 1 };
  }
  return undefined;
}
