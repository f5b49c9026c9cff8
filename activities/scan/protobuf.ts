/**
 * Protobuf model formats through protobufjs with minimal schemas: only the fields the checks read are declared, so
 * tensor bytes are skipped by the decoder rather than copied.
 * - SavedModel (saved_model.pb): GraphDef and function-library node ops that run Python or touch files.
 * - keras_metadata.pb: the Keras layer configs of a SavedModel (Lambda, custom objects).
 * - ONNX: external data locations of every initializer, including those in subgraphs and functions (the model is
 *   decoded by the shared ONNX reader).
 */
import protobuf from 'protobufjs';
import { FormatError } from '../formats/errors';
import { readOnnxModel } from '../formats/onnx';
import { resolveInside } from '../formats/paths';
import { finding, type ScanFinding } from './findings';
import { kerasConfigFindings } from './keras';

const SCHEMA = `
syntax = "proto3";
message SavedModel { int64 saved_model_schema_version = 1; repeated MetaGraphDef meta_graphs = 2; }
message MetaGraphDef { MetaInfoDef meta_info_def = 1; GraphDef graph_def = 2; }
message MetaInfoDef { repeated string tags = 4; }
message GraphDef { repeated NodeDef node = 1; FunctionDefLibrary library = 2; }
message NodeDef { string name = 1; string op = 2; }
message FunctionDefLibrary { repeated FunctionDef function = 1; }
message FunctionDef { OpDef signature = 1; repeated NodeDef node_def = 3; }
message OpDef { string name = 1; }

message SavedMetadata { repeated SavedObject nodes = 1; }
message SavedObject { int32 node_id = 2; string node_path = 3; string identifier = 4; string metadata = 5; }
`;

let root: protobuf.Root | undefined;
function types(): protobuf.Root {
  root ??= protobuf.parse(SCHEMA, { keepCase: true }).root;
  return root;
}

/** Ops that run Python in the loading process. */
const PYTHON_OPS = new Set(['PyFunc', 'PyFuncStateless', 'EagerPyFunc']);
/**
 * Ops that read or write arbitrary files. Checkpoint ops (SaveV2, RestoreV2, MergeV2Checkpoints) are in every
 * SavedModel's saver graph and address only the model's own variables, so they are not reported.
 */
const FILE_OPS = new Set([
  'ReadFile',
  'WriteFile',
  'MatchingFiles',
  'ImmutableConst',
  'TextLineDataset',
  'TFRecordDataset',
  'FixedLengthRecordDataset',
  'FixedLengthRecordDatasetV2',
  'CreateSummaryFileWriter',
  'CreateSummaryDbWriter',
  'WriteRawProtoSummary',
  'Save',
  'SaveSlices',
  'Restore',
  'RestoreSlice',
  'DebugIdentityV2',
  'DebugIdentityV3',
  'LoadAndRemapMatrix',
  'ExperimentalSaveDataset',
  'SaveDataset',
  'SaveDatasetV2',
  'LoadDataset',
]);

interface NodeDef {
  name?: string;
  op?: string;
}

/** Findings for a SavedModel's graph and function library. */
export function scanSavedModel(bytes: Buffer, path: string): ScanFinding[] {
  let model: {
    meta_graphs?: {
      graph_def?: {
        node?: NodeDef[];
        library?: { function?: { signature?: { name?: string }; node_def?: NodeDef[] }[] };
      };
    }[];
  };
  try {
    model = types().lookupType('SavedModel').decode(bytes) as typeof model;
  } catch (err) {
    return [finding('savedmodel.invalid', path, `saved_model.pb does not decode: ${(err as Error).message}`)];
  }
  const counts = new Map<string, { count: number; where: string }>();
  const visit = (nodes: NodeDef[] | undefined, where: string): void => {
    for (const node of nodes ?? []) {
      const op = node.op ?? '';
      if (!PYTHON_OPS.has(op) && !FILE_OPS.has(op)) continue;
      const seen = counts.get(op);
      if (seen) seen.count++;
      else counts.set(op, { count: 1, where: `${where} node ${JSON.stringify(node.name ?? '?')}` });
    }
  };
  for (const graph of model.meta_graphs ?? []) {
    visit(graph.graph_def?.node, 'graph');
    for (const fn of graph.graph_def?.library?.function ?? [])
      visit(fn.node_def, `function ${JSON.stringify(fn.signature?.name ?? '?')}`);
  }
  return [...counts].map(([op, { count, where }]) =>
    finding(
      PYTHON_OPS.has(op) ? 'savedmodel.python-op' : 'savedmodel.file-op',
      path,
      `${op} op (${count}×, first in ${where}) ${PYTHON_OPS.has(op) ? 'runs Python code' : 'reads or writes files'} when the graph runs`,
    ),
  );
}

/** Findings for keras_metadata.pb: every node's metadata is a Keras layer config in JSON. */
export function scanKerasMetadata(bytes: Buffer, path: string): ScanFinding[] {
  let meta: { nodes?: { node_path?: string; metadata?: string }[] };
  try {
    meta = types().lookupType('SavedMetadata').decode(bytes) as typeof meta;
  } catch (err) {
    return [finding('keras.invalid-config', path, `keras_metadata.pb does not decode: ${(err as Error).message}`)];
  }
  const out: ScanFinding[] = [];
  for (const node of meta.nodes ?? []) {
    if (!node.metadata) continue;
    try {
      out.push(...kerasConfigFindings(JSON.parse(node.metadata), path));
    } catch {
      out.push(finding('keras.invalid-config', path, `metadata of ${node.node_path ?? '?'} is not JSON`));
    }
  }
  return out;
}

/**
 * Findings for an ONNX model's external data. Returns the model-relative paths it references, so the scanner can
 * recognise those files as tensor data rather than an unknown format.
 */
export function scanOnnx(
  bytes: Buffer,
  path: string,
  modelFiles: ReadonlySet<string>,
): { findings: ScanFinding[]; references: string[] } {
  let model;
  try {
    model = readOnnxModel(bytes, path);
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    return { findings: [finding('onnx.invalid', path, err.reason)], references: [] };
  }
  const findings: ScanFinding[] = [];
  const references = new Set<string>();
  const reported = new Set<string>();
  for (const t of model.tensors) {
    if (!t.external) continue;
    const location = t.external.location;
    if (location === undefined) {
      findings.push(
        finding('onnx.invalid', path, `tensor ${JSON.stringify(t.name || '?')} is external but names no location`),
      );
      continue;
    }
    const resolved = resolveInside(path, location);
    if (!resolved) {
      if (!reported.has(location)) {
        reported.add(location);
        findings.push(
          finding(
            'onnx.external-data-escape',
            path,
            `tensor ${JSON.stringify(t.name || '?')} reads external data from ${JSON.stringify(location)}, outside the model directory`,
          ),
        );
      }
      continue;
    }
    references.add(resolved);
    if (!modelFiles.has(resolved) && !reported.has(resolved)) {
      reported.add(resolved);
      findings.push(
        finding(
          'onnx.external-data-missing',
          path,
          `external data file ${JSON.stringify(resolved)} is not part of the model`,
        ),
      );
    }
  }
  return { findings, references: [...references] };
}
