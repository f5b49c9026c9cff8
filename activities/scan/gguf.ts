/**
 * GGUF (llama.cpp): header, metadata key/values and tensor infos, each length checked against the file before it is
 * trusted; tensor data ranges must lie inside the file, aligned and without overlap. The chat template is Jinja
 * that some runtimes render without a sandbox, so templates reaching Python internals are findings.
 */
import { ggmlType } from '../formats/gguf-types';
import { finding, type ScanFinding } from './findings';
import type { ByteReader } from './reader';

const MAX_COUNT = 1n << 24n;
const MAX_STRING = 64 << 20;
const MAX_DIMS = 4;
/** Jinja reaching Python internals: the shapes of known template-injection payloads. */
const TEMPLATE_DANGER =
  /__(class|globals|subclasses|builtins|import|init|mro|base|bases|getattribute|reduce|code)__|\bos\.(popen|system)|\bsubprocess\b|\bimport\s+os\b|\beval\s*\(|\bexec\s*\(/;

class GgufError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

export async function scanGguf(reader: ByteReader, path: string, size: number): Promise<ScanFinding[]> {
  const findings: ScanFinding[] = [];
  try {
    const need = async (n: number): Promise<Buffer> => {
      const at = reader.offset;
      if (at + n > size) throw new GgufError(`a ${n}-byte field runs past the end of the file`, at);
      const b = await reader.read(n);
      if (!b) throw new GgufError('file ends inside the header', at);
      return b;
    };
    const u32 = async (): Promise<number> => (await need(4)).readUInt32LE(0);
    const u64 = async (): Promise<bigint> => (await need(8)).readBigUInt64LE(0);
    await need(4);
    const version = await u32();
    if (version < 1 || version > 3) throw new GgufError(`unknown GGUF version ${version}`, 4);
    const count = async (): Promise<bigint> => (version === 1 ? BigInt(await u32()) : await u64());
    const tensorCount = await count();
    const kvCount = await count();
    if (tensorCount > MAX_COUNT || kvCount > MAX_COUNT)
      throw new GgufError(`implausible counts: ${tensorCount} tensors, ${kvCount} metadata entries`, 8);
    const str = async (keep: boolean): Promise<string> => {
      const at = reader.offset;
      const n = await count();
      if (n > BigInt(MAX_STRING) || BigInt(at) + n > BigInt(size))
        throw new GgufError(`string of ${n} bytes runs past the end of the file`, at);
      if (!keep) {
        if (!(await reader.skip(Number(n)))) throw new GgufError('file ends inside a string', at);
        return '';
      }
      return (await need(Number(n))).toString('utf8');
    };
    const scalarSize: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
    const value = async (type: number, keep: boolean): Promise<unknown> => {
      const at = reader.offset;
      if (type === 8) return str(keep);
      if (type === 9) {
        const elem = await u32();
        const n = await count();
        if (n > MAX_COUNT * 16n) throw new GgufError(`array of ${n} elements is implausible`, at);
        const fixed = scalarSize[elem];
        if (fixed !== undefined) {
          if (BigInt(reader.offset) + n * BigInt(fixed) > BigInt(size))
            throw new GgufError('array runs past the end of the file', at);
          await reader.skip(Number(n) * fixed);
        } else for (let i = 0n; i < n; i++) await value(elem, false);
        return undefined;
      }
      const width = scalarSize[type];
      if (width === undefined) throw new GgufError(`unknown metadata value type ${type}`, at);
      const b = await need(width);
      return type === 4 ? b.readUInt32LE(0) : undefined;
    };
    let alignment = 32;
    for (let i = 0n; i < kvCount; i++) {
      const key = await str(true);
      const type = await u32();
      const keepValue = key === 'tokenizer.chat_template' || key.startsWith('tokenizer.chat_template.');
      const at = reader.offset;
      const v = await value(type, keepValue || key === 'general.alignment');
      if (key === 'general.alignment' && typeof v === 'number') {
        if (v === 0 || (v & (v - 1)) !== 0) throw new GgufError(`general.alignment ${v} is not a power of two`, at);
        alignment = v;
      }
      if (keepValue && typeof v === 'string' && TEMPLATE_DANGER.test(v)) {
        const m = TEMPLATE_DANGER.exec(v);
        findings.push(
          finding(
            'gguf.chat-template',
            path,
            `chat template ${JSON.stringify(key)} contains ${JSON.stringify(m?.[0])}: a template-injection payload runs code in runtimes that render it unsandboxed`,
            { offset: at },
          ),
        );
      }
    }
    const tensors: { name: string; begin: bigint; end: bigint; at: number }[] = [];
    for (let i = 0n; i < tensorCount; i++) {
      const at = reader.offset;
      const name = await str(true);
      const nDims = await u32();
      if (nDims > MAX_DIMS) throw new GgufError(`tensor ${JSON.stringify(name)} has ${nDims} dimensions`, at);
      let numel = 1n;
      for (let d = 0; d < nDims; d++) numel *= await u64();
      const type = await u32();
      const offset = await u64();
      const info = ggmlType(type);
      if (!info) {
        findings.push(
          finding('gguf.unknown-tensor-type', path, `tensor ${JSON.stringify(name)} has ggml type ${type}`, {
            offset: at,
          }),
        );
        continue;
      }
      const block = BigInt(info.blockSize);
      if (numel % block !== 0n)
        throw new GgufError(`tensor ${JSON.stringify(name)}: ${numel} elements is not a whole number of blocks`, at);
      if (offset % BigInt(alignment) !== 0n)
        throw new GgufError(`tensor ${JSON.stringify(name)} offset ${offset} is not ${alignment}-aligned`, at);
      tensors.push({ name, begin: offset, end: offset + (numel / block) * BigInt(info.bytesPerBlock), at });
    }
    const headerEnd = BigInt(reader.offset);
    const dataStart = ((headerEnd + BigInt(alignment) - 1n) / BigInt(alignment)) * BigInt(alignment);
    const dataLength = BigInt(size) - dataStart;
    tensors.sort((a, b) => (a.begin < b.begin ? -1 : a.begin > b.begin ? 1 : 0));
    let cursor = 0n;
    for (const t of tensors) {
      if (t.end > dataLength)
        findings.push(
          finding(
            'gguf.out-of-bounds',
            path,
            `tensor ${JSON.stringify(t.name)} ends at data byte ${t.end} but the data section has ${dataLength < 0n ? 0n : dataLength}`,
            { offset: t.at },
          ),
        );
      else if (t.begin < cursor)
        findings.push(
          finding('gguf.out-of-bounds', path, `tensor ${JSON.stringify(t.name)} overlaps the one before it`, {
            offset: t.at,
          }),
        );
      if (t.end > cursor) cursor = t.end;
    }
  } catch (err) {
    if (!(err instanceof GgufError)) throw err;
    findings.push(finding('gguf.invalid-header', path, err.message, { offset: err.offset }));
  }
  return findings;
}
