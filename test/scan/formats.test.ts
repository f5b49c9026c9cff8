/**
 * Format detection by bytes and each format's checks: safetensors headers, archives, Keras, SavedModel, ONNX, GGUF,
 * TF.js, secrets, and the fail-closed handling of formats the scanner does not know.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ggufFile, makeFixtures, scan } from './fixtures';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-scan-formats-'));
  await makeFixtures(dir);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function put(path: string, data: Buffer | string): Promise<string> {
  await mkdir(dirname(join(dir, path)), { recursive: true });
  await writeFile(join(dir, path), data);
  return path;
}

function safetensors(header: unknown, data: Buffer): Buffer {
  const raw = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(raw.length));
  return Buffer.concat([len, raw, data]);
}

describe('safetensors', () => {
  it('reports each kind of bad header with its rule', async () => {
    const data = Buffer.alloc(48);
    const files = {
      'st/not-json.safetensors': (() => {
        const b = safetensors({}, data);
        b.write('{"a": nope}', 8);
        return b;
      })(),
      'st/bad-dtype.safetensors': safetensors({ w: { dtype: 'F33', shape: [2], data_offsets: [0, 8] } }, data),
      'st/wrong-size.safetensors': safetensors({ w: { dtype: 'F32', shape: [3, 3], data_offsets: [0, 8] } }, data),
      'st/out-of-bounds.safetensors': safetensors({ w: { dtype: 'F32', shape: [100], data_offsets: [0, 400] } }, data),
      'st/overlap.safetensors': safetensors(
        {
          a: { dtype: 'F32', shape: [8], data_offsets: [0, 32] },
          b: { dtype: 'F32', shape: [8], data_offsets: [16, 48] },
        },
        data,
      ),
      'st/huge-header.safetensors': (() => {
        const b = Buffer.alloc(64);
        b.writeBigUInt64LE(40n);
        b.write('{"x": 1}', 8);
        b.writeBigUInt64LE(200_000_000n, 0);
        return b;
      })(),
    };
    for (const [path, bytes] of Object.entries(files)) await put(path, bytes);
    const report = await scan(dir, Object.keys(files));
    expect(report.findings.map((f) => `${f.path} ${f.ruleId}`)).toEqual([
      'st/not-json.safetensors safetensors.invalid-header',
      'st/bad-dtype.safetensors safetensors.invalid-tensor',
      'st/wrong-size.safetensors safetensors.invalid-tensor',
      'st/out-of-bounds.safetensors safetensors.out-of-bounds',
      'st/overlap.safetensors safetensors.overlap',
      'st/huge-header.safetensors safetensors.invalid-header',
    ]);
    expect(report.files.map((f) => f.format)).toEqual([
      'safetensors',
      'safetensors',
      'safetensors',
      'safetensors',
      'safetensors',
      'safetensors',
    ]);
  });
});

describe('archives', () => {
  it('zip slip, symlinks and a zip bomb are findings; the bomb is not inflated', async () => {
    const report = await scan(dir, ['evil/zip-slip.zip', 'evil/zip-bomb.zip']);
    expect(report.findings).toEqual([
      expect.objectContaining({
        ruleId: 'archive.path-traversal',
        path: 'evil/zip-slip.zip!../../../../tmp/evil.sh',
        severity: 'high',
      }),
      expect.objectContaining({ ruleId: 'archive.symlink', path: 'evil/zip-slip.zip!model/weights.bin' }),
      expect.objectContaining({
        ruleId: 'archive.compression-ratio',
        path: 'evil/zip-bomb.zip!weights.bin',
        message: expect.stringMatching(/expand to 104857600 .*not decompressed/),
      }),
    ]);
  });

  it('a gzip-compressed pickle is opened; a truncated zip is malformed, not a crash', async () => {
    const evil = await import('node:fs/promises').then((fs) => fs.readFile(join(dir, 'evil/os-system-p4.pkl')));
    await put('gz/evil.pkl.gz', gzipSync(evil));
    const zip = await import('node:fs/promises').then((fs) => fs.readFile(join(dir, 'benign/torch-zip.pt')));
    await put('gz/cut.pt', zip.subarray(0, zip.length - 40));
    const report = await scan(dir, ['gz/evil.pkl.gz', 'gz/cut.pt']);
    expect(report.findings).toEqual([
      expect.objectContaining({ ruleId: 'pickle.dangerous-global', path: 'gz/evil.pkl.gz!' }),
      expect.objectContaining({ ruleId: 'archive.invalid', path: 'gz/cut.pt' }),
    ]);
    expect(report.incomplete).toBe(true);
  });
});

describe('Keras', () => {
  it('finds Lambda layers and custom objects in .keras and HDF5 models; weights-only HDF5 is data', async () => {
    const report = await scan(dir, ['evil/model.keras', 'evil/model.h5', 'benign/weights.h5']);
    expect(report.findings.map((f) => `${f.path} ${f.ruleId} ${f.severity}`)).toEqual([
      'evil/model.keras!config.json keras.custom-object medium',
      'evil/model.keras!config.json keras.lambda critical',
      'evil/model.h5 keras.lambda critical',
      'benign/weights.h5 hdf5.no-model-config info',
    ]);
    expect(report.files.map((f) => f.format)).toEqual(['keras', 'hdf5', 'hdf5']);
  });
});

const PROTO = `
syntax = "proto3";
message SavedModel { int64 saved_model_schema_version = 1; repeated MetaGraphDef meta_graphs = 2; }
message MetaGraphDef { MetaInfoDef meta_info_def = 1; GraphDef graph_def = 2; }
message MetaInfoDef { string meta_graph_version = 1; repeated string tags = 4; }
message GraphDef { repeated NodeDef node = 1; FunctionDefLibrary library = 2; }
message NodeDef { string name = 1; string op = 2; repeated string input = 3; string device = 4; }
message FunctionDefLibrary { repeated FunctionDef function = 1; }
message FunctionDef { OpDef signature = 1; repeated NodeDef node_def = 3; }
message OpDef { string name = 1; }
message ModelProto { int64 ir_version = 1; string producer_name = 2; GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
message GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; }
message NodeProto { repeated string input = 1; repeated string output = 2; string op_type = 4; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8; bytes raw_data = 9; repeated StringStringEntryProto external_data = 13; int32 data_location = 14; }
message StringStringEntryProto { string key = 1; string value = 2; }
`;
const root = protobuf.parse(PROTO, { keepCase: true }).root;
const encode = (type: string, value: object): Buffer =>
  Buffer.from(root.lookupType(type).encode(root.lookupType(type).fromObject(value)).finish());

describe('TensorFlow SavedModel and ONNX', () => {
  it('SavedModel ops that run Python or touch files are reported; checkpoint ops are not', async () => {
    const graph = (ops: string[]) =>
      encode('SavedModel', {
        saved_model_schema_version: 1,
        meta_graphs: [
          {
            meta_info_def: { tags: ['serve'] },
            graph_def: {
              node: ops.map((op, i) => ({ name: `n${i}`, op })),
              library: {
                function: [{ signature: { name: '__inference_call' }, node_def: [{ name: 'py', op: 'EagerPyFunc' }] }],
              },
            },
          },
        ],
      });
    await put('sm/evil/saved_model.pb', graph(['Placeholder', 'MatMul', 'ReadFile', 'SaveV2', 'RestoreV2']));
    await put('sm/evil/variables/variables.data-00000-of-00001', Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const report = await scan(dir, ['sm/evil/saved_model.pb', 'sm/evil/variables/variables.data-00000-of-00001']);
    expect(report.files.map((f) => f.format)).toEqual(['savedmodel', 'tensor-data']);
    expect(report.findings.map((f) => `${f.ruleId}: ${f.message}`)).toEqual([
      expect.stringMatching(/^savedmodel\.file-op: ReadFile op \(1×, first in graph node "n2"\)/),
      expect.stringMatching(/^savedmodel\.python-op: EagerPyFunc op .*function "__inference_call"/),
    ]);
  });

  it('ONNX external data that escapes the model directory or is missing is reported; present data is recognised', async () => {
    const model = (locations: string[]) =>
      encode('ModelProto', {
        ir_version: 9,
        producer_name: 'pytorch',
        opset_import: [{ domain: '', version: 17 }],
        graph: {
          name: 'g',
          node: [{ input: ['x', 'w0'], output: ['y'], op_type: 'MatMul' }],
          initializer: [
            { name: 'inline', dims: [2], data_type: 1, raw_data: Buffer.alloc(8) },
            ...locations.map((location, i) => ({
              name: `w${i}`,
              dims: [2],
              data_type: 1,
              data_location: 1,
              external_data: [
                { key: 'location', value: location },
                { key: 'offset', value: '0' },
              ],
            })),
          ],
        },
      });
    await put('onnx/model.onnx', model(['weights.bin', '../../../etc/passwd', '/etc/shadow', 'missing.bin']));
    await put('onnx/weights.bin', Buffer.alloc(64, 7));
    const report = await scan(dir, ['onnx/model.onnx', 'onnx/weights.bin']);
    expect(report.files.map((f) => f.format)).toEqual(['onnx', 'tensor-data']);
    expect(report.findings.map((f) => `${f.ruleId} ${f.message}`)).toEqual([
      expect.stringMatching(/^onnx\.external-data-escape .*"\.\.\/\.\.\/\.\.\/etc\/passwd"/),
      expect.stringMatching(/^onnx\.external-data-escape .*"\/etc\/shadow"/),
      expect.stringMatching(/^onnx\.external-data-missing .*"onnx\/missing\.bin"/),
    ]);
  });
});

function gguf(options: { tensorOffset?: bigint; template?: string; dims?: bigint[] }): Buffer {
  return ggufFile({
    metadata: { 'tokenizer.chat_template': options.template ?? '{% for m in messages %}{{ m.content }}{% endfor %}' },
    tensor: 'blk.0.attn.weight',
    dims: options.dims ?? [4n, 4n],
    type: 0, // F32
    offset: options.tensorOffset,
    dataBytes: 64,
  });
}

describe('GGUF', () => {
  it('a well-formed file passes; out-of-bounds tensors and template injection are reported', async () => {
    await put('gguf/ok.gguf', gguf({}));
    await put('gguf/oob.gguf', gguf({ dims: [4096n, 4096n] }));
    await put('gguf/template.gguf', gguf({ template: "{{ ''.__class__.__mro__[1].__subclasses__() }}" }));
    await put('gguf/truncated.gguf', gguf({}).subarray(0, 40));
    const report = await scan(dir, ['gguf/ok.gguf', 'gguf/oob.gguf', 'gguf/template.gguf', 'gguf/truncated.gguf']);
    expect(report.findings.map((f) => `${f.path} ${f.ruleId}`)).toEqual([
      'gguf/oob.gguf gguf.out-of-bounds',
      'gguf/template.gguf gguf.chat-template',
      'gguf/truncated.gguf gguf.invalid-header',
    ]);
  });
});

describe('TF.js, text files and unknown formats', () => {
  it('model.json shard paths must stay inside the model; referenced shards are tensor data', async () => {
    const modelJson = {
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: { layers: [] } },
      weightsManifest: [
        { paths: ['group1-shard1of1.bin'], weights: [] },
        { paths: ['../../secrets/shard.bin', 'https://evil.example/shard.bin', 'gone.bin'], weights: [] },
      ],
    };
    await put('tfjs/model.json', JSON.stringify(modelJson));
    await put('tfjs/group1-shard1of1.bin', Buffer.alloc(32, 3));
    const report = await scan(dir, ['tfjs/model.json', 'tfjs/group1-shard1of1.bin']);
    expect(report.files.map((f) => f.format)).toEqual(['tfjs-model', 'tensor-data']);
    expect(report.findings.map((f) => f.ruleId)).toEqual([
      'tfjs.weights-path-escape',
      'tfjs.weights-path-escape',
      'tfjs.weights-missing',
    ]);
  });

  it('a shard whose first byte reads as a pickle opcode is TF.js weights once model.json declares its size', async () => {
    // float32 bytes that start with 0x63 ("c", GLOBAL) or 0x28 ("(", MARK) and do not walk as a pickle.
    const shard = Buffer.from(Float32Array.from([3.2e21, -1.5, 0.25, 7, 1e-3, 42]).buffer);
    shard[0] = 0x63;
    const marked = Buffer.from(shard);
    marked[0] = 0x28;
    const modelJson = {
      format: 'layers-model',
      modelTopology: { class_name: 'Sequential', config: { layers: [] } },
      weightsManifest: [{ paths: ['a.bin', 'b.bin'], weights: [{ name: 'k', shape: [12], dtype: 'float32' }] }],
    };
    await put('tfjs-sniff/model.json', JSON.stringify(modelJson));
    await put('tfjs-sniff/a.bin', shard);
    await put('tfjs-sniff/b.bin', marked);
    await put('tfjs-sniff/stray.bin', shard);
    const report = await scan(dir, [
      'tfjs-sniff/a.bin',
      'tfjs-sniff/b.bin',
      'tfjs-sniff/model.json',
      'tfjs-sniff/stray.bin',
    ]);
    expect(report.files.map((f) => [f.path, f.format])).toEqual([
      ['tfjs-sniff/a.bin', 'tfjs-weights'],
      ['tfjs-sniff/b.bin', 'tfjs-weights'],
      ['tfjs-sniff/model.json', 'tfjs-model'],
      ['tfjs-sniff/stray.bin', expect.stringMatching(/pickle/)],
    ]);
    // The same bytes that no model file names still count as a malformed pickle.
    expect(report.findings.map((f) => [f.path, f.ruleId])).toEqual([['tfjs-sniff/stray.bin', 'pickle.parse-error']]);
  });

  it('secrets in text files are reported redacted, with their byte offset', async () => {
    const key = ['AKIA', 'Z7Q4EXAMPLE0KEY9'].join('');
    const text = `# notes\nendpoint: https://example.com\naws_key: ${key}\n-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n`;
    await put('repo/notes.md', text);
    const report = await scan(dir, ['repo/notes.md']);
    expect(report.findings).toEqual([
      expect.objectContaining({
        ruleId: 'secrets.token',
        offset: text.indexOf(key),
        message: expect.stringContaining('AWS access key id'),
      }),
      expect.objectContaining({ ruleId: 'secrets.private-key', offset: text.indexOf('-----BEGIN') }),
    ]);
    expect(report.findings[0]?.message).not.toContain(key);
  });

  it('a format it does not know is a finding that keeps the gate from passing; a renamed pickle is still a pickle', async () => {
    await put('odd/weights.msgpack', Buffer.from([0xde, 0x00, 0x02, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x02, 0x00, 0x00]));
    const evil = await import('node:fs/promises').then((fs) => fs.readFile(join(dir, 'evil/os-system-p2.pkl')));
    await put('odd/README.md', evil);
    const report = await scan(dir, ['odd/weights.msgpack', 'odd/README.md']);
    expect(report.files.map((f) => f.format)).toEqual(['unknown', 'pickle']);
    expect(report.findings.map((f) => `${f.path} ${f.ruleId}`)).toEqual([
      'odd/weights.msgpack format.unknown',
      'odd/README.md pickle.dangerous-global',
    ]);
    expect(report.incomplete).toBe(true);
  });
});
