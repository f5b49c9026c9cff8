/**
 * The scan gate's rules: stable ids, default severities, and which ones mean "something was not examined" (those
 * keep the gate from passing however low their severity, because the scanner could not decide).
 */
import type { Severity } from '../../contract/types';

export interface RuleInfo {
  severity: Severity;
  /** One line for SARIF's rule list and the text report's legend. */
  title: string;
  /** True when the finding means part of the input was not examined: the gate cannot pass while it stands. */
  incomplete?: boolean;
}

/** Every rule the scanner can report. Ids are stable: waivers and SARIF consumers refer to them. */
export const RULES = {
  'pickle.dangerous-global': {
    severity: 'critical',
    title: 'Pickle imports a callable that can run code, reach the shell, the file system or the network',
  },
  'pickle.unknown-global': { severity: 'medium', title: 'Pickle imports a global that is in neither list' },
  'pickle.not-allowlisted': { severity: 'high', title: 'Pickle imports a global outside the allowlist (strict mode)' },
  'pickle.dynamic-import': {
    severity: 'critical',
    title: 'Pickle computes the name of what it imports at load time',
  },
  'pickle.dynamic-call': { severity: 'medium', title: 'Pickle calls a value that is not an imported global' },
  'pickle.extension-code': {
    severity: 'high',
    title: 'Pickle imports through the copyreg extension registry',
  },
  'pickle.parse-error': { severity: 'medium', title: 'Pickle stream is malformed or truncated', incomplete: true },
  'pickle.limit': { severity: 'medium', title: 'Pickle exceeds a scan limit', incomplete: true },
  'pickle.trailing-data': { severity: 'low', title: 'Bytes after the end of the pickle' },
  'torch.torchscript': { severity: 'medium', title: 'TorchScript code runs when the archive is loaded with torch.jit' },
  'npy.invalid-header': { severity: 'medium', title: 'NumPy header is malformed', incomplete: true },
  'npy.object-array': { severity: 'low', title: 'NumPy object array: loading it requires allow_pickle=True' },
  'npy.size-mismatch': { severity: 'medium', title: 'NumPy data size does not match its header' },
  'safetensors.invalid-header': { severity: 'high', title: 'Safetensors header is malformed' },
  'safetensors.invalid-tensor': { severity: 'high', title: 'Safetensors tensor entry is invalid' },
  'safetensors.out-of-bounds': { severity: 'high', title: 'Safetensors tensor data lies outside the file' },
  'safetensors.overlap': { severity: 'high', title: 'Safetensors tensors overlap' },
  'safetensors.gap': { severity: 'medium', title: 'Safetensors data has bytes that belong to no tensor' },
  'archive.path-traversal': { severity: 'high', title: 'Archive entry path escapes the extraction directory' },
  'archive.symlink': { severity: 'high', title: 'Archive contains a symbolic or hard link' },
  'archive.compression-ratio': { severity: 'high', title: 'Archive entry has an absurd compression ratio' },
  'archive.too-large': { severity: 'high', title: 'Archive expands beyond the size limit', incomplete: true },
  'archive.too-many-entries': {
    severity: 'medium',
    title: 'Archive has more entries than the limit',
    incomplete: true,
  },
  'archive.overlapping-entries': { severity: 'high', title: 'Archive entries share their data (overlapping zip bomb)' },
  'archive.invalid': { severity: 'medium', title: 'Archive is malformed', incomplete: true },
  'archive.encrypted': { severity: 'medium', title: 'Archive entry is encrypted', incomplete: true },
  'archive.nested': { severity: 'medium', title: 'Archive inside an archive was not examined', incomplete: true },
  'keras.lambda': { severity: 'critical', title: 'Keras Lambda layer carries Python code' },
  'keras.custom-object': { severity: 'medium', title: 'Keras model needs custom Python objects to load' },
  'keras.invalid-config': { severity: 'medium', title: 'Keras model config is malformed', incomplete: true },
  'hdf5.no-model-config': { severity: 'info', title: 'HDF5 file without a Keras model config (weights only)' },
  'hdf5.invalid': { severity: 'medium', title: 'HDF5 file could not be read', incomplete: true },
  'savedmodel.python-op': { severity: 'critical', title: 'TensorFlow graph runs Python (PyFunc)' },
  'savedmodel.file-op': { severity: 'high', title: 'TensorFlow graph reads or writes files' },
  'savedmodel.invalid': { severity: 'medium', title: 'TensorFlow SavedModel is malformed', incomplete: true },
  'onnx.external-data-escape': { severity: 'high', title: 'ONNX external data path escapes the model directory' },
  'onnx.external-data-missing': { severity: 'medium', title: 'ONNX external data file is not part of the model' },
  'onnx.invalid': { severity: 'medium', title: 'ONNX model is malformed', incomplete: true },
  'tfjs.weights-path-escape': { severity: 'high', title: 'TF.js weight path escapes the model directory' },
  'tfjs.weights-missing': { severity: 'medium', title: 'TF.js weight shard is not part of the model' },
  'tfjs.invalid': { severity: 'medium', title: 'TF.js model.json is malformed', incomplete: true },
  'gguf.invalid-header': { severity: 'medium', title: 'GGUF header is malformed', incomplete: true },
  'gguf.out-of-bounds': { severity: 'high', title: 'GGUF tensor data lies outside the file' },
  'gguf.unknown-tensor-type': { severity: 'medium', title: 'GGUF tensor type unknown: its bounds were not checked' },
  'gguf.chat-template': { severity: 'high', title: 'GGUF chat template reaches Python internals' },
  'code.python-source': { severity: 'medium', title: 'Python source in the model runs with trust_remote_code' },
  'code.remote-code': { severity: 'medium', title: 'Model config asks for custom code (auto_map)' },
  'secrets.token': { severity: 'high', title: 'Credential-shaped token in a text file' },
  'secrets.private-key': { severity: 'high', title: 'Private key in a text file' },
  'format.unknown': { severity: 'medium', title: 'File format not recognised: not examined', incomplete: true },
  'scan.read-error': { severity: 'medium', title: 'File could not be read', incomplete: true },
} as const satisfies Record<string, RuleInfo>;

export type RuleId = keyof typeof RULES;

/** A scanner finding before it becomes a gate Finding (the gate adds its name, waivers and the location string). */
export interface ScanFinding {
  ruleId: RuleId;
  severity: Severity;
  /** The file's path as the user knows it; entries inside archives read `archive!entry`. */
  path: string;
  /** Byte offset inside the file (or inside the archive entry's uncompressed bytes). */
  offset?: number;
  message: string;
}

/** Build a finding with the rule's default severity unless one is given. */
export function finding(
  ruleId: RuleId,
  path: string,
  message: string,
  options: { offset?: number; severity?: Severity } = {},
): ScanFinding {
  const f: ScanFinding = { ruleId, severity: options.severity ?? RULES[ruleId].severity, path, message };
  if (options.offset !== undefined) f.offset = options.offset;
  return f;
}

/** True when the rule means something was not examined. */
export function isIncomplete(ruleId: string): boolean {
  return (RULES as Record<string, RuleInfo>)[ruleId]?.incomplete === true;
}

const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/**
 * A module or global name read from a file, fit for a message: a plain dotted Python identifier as it is, anything
 * else quoted by `printable`. Raw tensor bytes taken for a pickle "import" binary garbage, and a hostile file can put
 * terminal escapes there: neither may reach a report, a log or the workflow history.
 */
export function printableName(name: string): string {
  return PLAIN_NAME.test(name) && name.length <= 80 ? name : printable(name);
}

/**
 * A string read from a file, double-quoted, with every character outside printable ASCII escaped (`\xNN`, `\uNNNN`)
 * and cut to `max` characters: enough to recognise it, too little to carry a payload.
 */
export function printable(text: string, max = 40): string {
  const chars = [...text];
  let out = '';
  for (const c of chars.slice(0, max)) {
    const code = c.codePointAt(0) ?? 0;
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (code >= 0x20 && code <= 0x7e) out += c;
    else if (code <= 0xff) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code <= 0xffff) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\u{${code.toString(16)}}`;
  }
  return `"${out}"${chars.length > max ? '…' : ''}`;
}
