/**
 * GGUF (llama.cpp) as scan findings: the shared reader checks the header, metadata and tensor infos against the file;
 * tensor data ranges must lie inside the file, aligned and without overlap. The chat template is Jinja that some
 * runtimes render without a sandbox, so templates reaching Python internals are findings.
 */
import { FormatError } from '../formats/errors';
import { ggufLayoutIssues, readGgufHeader } from '../formats/gguf';
import { finding, type ScanFinding } from './findings';
import type { ByteReader } from './reader';

/** Jinja reaching Python internals: the shapes of known template-injection payloads. */
const TEMPLATE_DANGER =
  /__(class|globals|subclasses|builtins|import|init|mro|base|bases|getattribute|reduce|code)__|\bos\.(popen|system)|\bsubprocess\b|\bimport\s+os\b|\beval\s*\(|\bexec\s*\(/;

const isTemplateKey = (key: string): boolean =>
  key === 'tokenizer.chat_template' || key.startsWith('tokenizer.chat_template.');

export async function scanGguf(reader: ByteReader, path: string, size: number): Promise<ScanFinding[]> {
  const findings: ScanFinding[] = [];
  try {
    const header = await readGgufHeader(reader, path, size, {
      keepString: isTemplateKey,
      // Findings are made as the header is read, so that a later parse error does not hide an earlier payload.
      onMetadata: ({ key, value, at }) => {
        if (!isTemplateKey(key) || typeof value !== 'string') return;
        const m = TEMPLATE_DANGER.exec(value);
        if (m)
          findings.push(
            finding(
              'gguf.chat-template',
              path,
              `chat template ${JSON.stringify(key)} contains ${JSON.stringify(m[0])}: a template-injection payload runs code in runtimes that render it unsandboxed`,
              { offset: at },
            ),
          );
      },
      onTensor: (t) => {
        if (!t.type)
          findings.push(
            finding('gguf.unknown-tensor-type', path, `tensor ${JSON.stringify(t.name)} has ggml type ${t.typeId}`, {
              offset: t.at,
            }),
          );
      },
    });
    for (const issue of ggufLayoutIssues(header, size))
      findings.push(finding('gguf.out-of-bounds', path, issue.reason, { offset: issue.tensor.at }));
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    findings.push(finding('gguf.invalid-header', path, err.reason, { offset: err.offset }));
  }
  return findings;
}
