/**
 * The one ggml type table, checked against the gguf Python library's, and used alike by the cost footprint and the
 * scanner on a Q8_1 tensor (the type the two used to size differently).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFootprint } from '../../activities/cost/footprint';
import { GGML_TYPES, ggmlType } from '../../activities/formats/gguf-types';
import { scanGguf } from '../../activities/scan/gguf';
import { ByteReader, bufferChunks } from '../../activities/scan/reader';
import { ggufFile } from '../scan/fixtures';

const run = promisify(execFile);
const PYTHON = resolve(import.meta.dirname, '../../.venv/bin/python');

const GGUF_PY_SIZES = `
import json, gguf
print(json.dumps({int(t): [t.name, block, size] for t, (block, size) in gguf.GGML_QUANT_SIZES.items()}))
`;

describe('GGML_TYPES', () => {
  it('has every type gguf-py knows, with its name, block size and bytes per block', async () => {
    const { stdout } = await run(PYTHON, ['-c', GGUF_PY_SIZES]);
    const reference = JSON.parse(stdout) as Record<string, [string, number, number]>;
    // gguf-py still sizes Q8_1 with the float d and s of old ggml (4 + 4 + 32); ggml-common.h's block_q8_1 holds two
    // ggml_half, and ggml sizes the type as that struct.
    expect(reference['9']).toEqual(['Q8_1', 32, 40]);
    reference['9'] = ['Q8_1', 32, 2 + 2 + 32];

    const ours = Object.fromEntries(
      [...GGML_TYPES.values()].map((t) => [String(t.id), [t.name, t.blockSize, t.bytesPerBlock]]),
    );
    expect(ours).toEqual(reference);
  });

  it('keys each entry by its own id', () => {
    for (const [id, t] of GGML_TYPES) expect(t.id).toBe(id);
    expect(ggmlType(4)).toBeUndefined(); // Q4_2, long removed from ggml
  });
});

/** A GGUF v3 file with one tensor of the given ggml type and exactly the data that type needs. */
function ggufWith(typeId: number, dims: bigint[], dataBytes: number): Buffer {
  return ggufFile({ tensor: 'blk.0.ffn_up.weight', dims, type: typeId, dataBytes });
}

describe('a Q8_1 tensor', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mrel-gguf-types-'));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  // 64 × 32 elements = 64 blocks of 32; ggml stores a Q8_1 block in 36 bytes.
  const elements = 64 * 32;
  const bytes = (elements / 32) * 36;

  it('costs 36 bytes a block in the footprint', async () => {
    const file = join(dir, 'q8_1.gguf');
    await writeFile(file, ggufWith(9, [64n, 32n], bytes));
    const footprint = await readFootprint([{ path: 'q8_1.gguf', size: (await stat(file)).size, sha256: '' }], (f) =>
      join(dir, f.path),
    );
    expect(footprint.byDtype).toEqual({ Q8_1: { parameters: elements, bytes } });
    expect(footprint.storedBytes).toBe(bytes);
  });

  it('lies inside the file for the scanner, which sizes it the same way', async () => {
    const exact = ggufWith(9, [64n, 32n], bytes);
    expect(await scanGguf(new ByteReader(bufferChunks(exact)), 'q8_1.gguf', exact.length)).toEqual([]);
    // One byte short, the tensor runs past the end: the scanner's size is the table's, not a larger one.
    const short = exact.subarray(0, exact.length - 1);
    const findings = await scanGguf(new ByteReader(bufferChunks(short)), 'q8_1.gguf', short.length);
    expect(findings.map((f) => f.ruleId)).toEqual(['gguf.out-of-bounds']);
  });
});
