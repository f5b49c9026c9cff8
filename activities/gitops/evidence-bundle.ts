/**
 * The evidence bundle of a release: every evidence blob (gate reports, SBOM, ML-BOM, …) committed under
 * `releases/<model>/<version>/<environment>/evidence/<sha256>.<ext>`, and `bundle.json`, the index that names each
 * file with its sha256 together with the configuration digests, decisions and gate verdicts of the release. The
 * sha256 of `bundle.json` is the bundle digest: it pins every byte of the evidence, so Git is the audit trail and
 * `verifyBundle` can prove a checkout unchanged.
 *
 * Pure and byte-stable: the same input (in any entry order) gives the same bytes, so a retried publish commits exactly
 * what the first attempt did. Nothing here reads a clock or draws a random id; the only times are those of the input.
 */
import { readableJson as canonicalJson, sha256Hex } from '../common/canonical-json';
import { ProductError } from '../../contract/errors';
import type { Decision, GrantedWaiver, RefusedDecision, Verdict } from '../../contract/types';
import { EVIDENCE_DIR, LAYOUT_FILES, evidenceBlobPath, parseEvidenceBlobPath, releaseDir } from './layout';

/** Marks the index format; a reader refuses a bundle of a format it does not know. */
export const BUNDLE_FORMAT = 'modelrelease.io/evidence-bundle/v1';

/** One evidence blob as the workflow names it (`gates/scan.json`, `sbom.cdx.json`) and the store holds it. */
export interface EvidenceEntryRef {
  name: string;
  sha256: string;
}

export interface EvidenceEntry extends EvidenceEntryRef {
  bytes: Buffer;
}

/** A configuration file from Git, by name and content digest. */
export interface ConfigRef {
  file: string;
  digest: string;
}

export interface EvidenceIndex {
  policy: { name: string; file?: string; digest: string };
  approvers?: ConfigRef;
  waivers?: ConfigRef;
  pricing?: ConfigRef;
  decisions: Decision[];
  refusedDecisions: RefusedDecision[];
  /** Waivers granted to this release by the `waive` signal (absent when none were). */
  grantedWaivers?: GrantedWaiver[];
  /** One row per gate, in the order they ran; `evidenceSha256` names an entry of the bundle. */
  gates: { gate: string; verdict: Verdict; summary: string; evidenceSha256?: string }[];
}

/** What the publish activity receives: the entries by digest (their bytes come from the artifact store). */
export interface EvidenceBundleRef {
  entries: EvidenceEntryRef[];
  index: EvidenceIndex;
}

export interface EvidenceBundleInput {
  model: string;
  version: string;
  environment: string;
  releaseId: string;
  entries: EvidenceEntry[];
  index: EvidenceIndex;
}

export interface BundleFile {
  /** Relative to the repository root. */
  path: string;
  content: Buffer;
}

/** One row of `bundle.json`'s file list. */
export interface BundleFileRecord {
  name: string;
  /** Relative to the release folder. */
  path: string;
  sha256: string;
  size: number;
}

/** The content of `bundle.json`. */
export interface BundleIndexDocument {
  format: typeof BUNDLE_FORMAT;
  model: string;
  version: string;
  environment: string;
  releaseId: string;
  files: BundleFileRecord[];
  index: EvidenceIndex;
}

export interface RenderedBundle {
  files: BundleFile[];
  /** `sha256:<hex>` of `bundle.json`. */
  digest: string;
}

/** An input the bundle cannot be made from (a digest that does not match its bytes, a name used twice). */
export class EvidenceBundleError extends ProductError {
  readonly code = 'DigestMismatch';
  readonly permanent = true;
}

/**
 * Renders the bundle's files: one per distinct blob, then `bundle.json`. Throws EvidenceBundleError when an entry's
 * bytes do not hash to its sha256, a name is given two different digests, or a gate row names a blob that is not an
 * entry: a bundle that cannot be verified is never written.
 */
export function renderEvidenceBundle(input: EvidenceBundleInput): RenderedBundle {
  const dir = releaseDir(input.model, input.version, input.environment);
  const byName = new Map<string, BundleFileRecord>();
  const blobs = new Map<string, { path: string; bytes: Buffer }>();
  input.entries.forEach((entry, i) => {
    const sha256 = normalizeDigest(entry.sha256, `entries[${i}].sha256`);
    checkName(entry.name, `entries[${i}].name`);
    const actual = sha256Hex(entry.bytes);
    if (actual !== sha256) {
      throw new EvidenceBundleError(
        `entries[${i}] (${entry.name}): the bytes hash to sha256:${actual.slice(0, 12)}…, not the sha256:${sha256.slice(0, 12)}… it is named by; the artifact store may be damaged: acquire or rerun the gate`,
      );
    }
    const path = evidenceBlobPath(sha256, extensionOf(entry.name));
    const earlier = byName.get(entry.name);
    if (earlier !== undefined && earlier.sha256 !== sha256) {
      throw new EvidenceBundleError(`entries[${i}]: the name ${entry.name} is given to two different blobs`);
    }
    byName.set(entry.name, { name: entry.name, path, sha256, size: entry.bytes.length });
    blobs.set(path, { path, bytes: entry.bytes });
  });
  const known = new Set([...byName.values()].map((r) => r.sha256));
  input.index.gates.forEach((gate, i) => {
    if (gate.evidenceSha256 === undefined) return;
    const sha256 = normalizeDigest(gate.evidenceSha256, `index.gates[${i}].evidenceSha256`);
    if (!known.has(sha256)) {
      throw new EvidenceBundleError(
        `index.gates[${i}] (${gate.gate}) names evidence sha256:${sha256.slice(0, 12)}… that is not among the entries: add it to the entries`,
      );
    }
  });
  const document: BundleIndexDocument = {
    format: BUNDLE_FORMAT,
    model: input.model,
    version: input.version,
    environment: input.environment,
    releaseId: input.releaseId,
    files: [...byName.values()].sort((a, b) => compare(a.name, b.name)),
    index: {
      ...input.index,
      gates: input.index.gates.map((g) =>
        g.evidenceSha256 === undefined ? g : { ...g, evidenceSha256: normalizeDigest(g.evidenceSha256, 'gate') },
      ),
    },
  };
  const bundle = Buffer.from(canonicalJson(document));
  const files: BundleFile[] = [...blobs.values()]
    .sort((a, b) => compare(a.path, b.path))
    .map((b) => ({ path: `${dir}/${b.path}`, content: b.bytes }));
  files.push({ path: `${dir}/${LAYOUT_FILES.bundle}`, content: bundle });
  return { files, digest: `sha256:${sha256Hex(bundle)}` };
}

export interface BundleVerification {
  ok: boolean;
  /** `sha256:<hex>` of the `bundle.json` found, when there was one. */
  digest?: string;
  /** The bundle's index, when it could be read. */
  document?: BundleIndexDocument;
  /** What does not match, one line each; empty when ok. */
  problems: string[];
}

/**
 * Recomputes every digest of a bundle: each file `bundle.json` lists must be present with exactly its sha256 and size,
 * no other file may sit in the evidence folder, every gate's evidence must be listed, and `bundle.json` must be in
 * canonical form (so that its digest is the one a re-render gives). `files` are the release folder's files, with paths
 * relative to the repository root (as rendered) or to the release folder.
 */
export function verifyBundle(files: readonly { path: string; content: Buffer | string }[]): BundleVerification {
  const problems: string[] = [];
  const bundleFiles = files.filter((f) => f.path === LAYOUT_FILES.bundle || f.path.endsWith(`/${LAYOUT_FILES.bundle}`));
  if (bundleFiles.length !== 1) {
    return { ok: false, problems: [`expected one ${LAYOUT_FILES.bundle}, found ${bundleFiles.length}`] };
  }
  const bundleFile = bundleFiles[0] as { path: string; content: Buffer | string };
  const prefix = bundleFile.path.slice(0, bundleFile.path.length - LAYOUT_FILES.bundle.length);
  const bundleBytes = Buffer.from(bundleFile.content);
  const digest = `sha256:${sha256Hex(bundleBytes)}`;
  let document: BundleIndexDocument;
  try {
    document = JSON.parse(bundleBytes.toString('utf8')) as BundleIndexDocument;
  } catch {
    return { ok: false, digest, problems: [`${bundleFile.path} is not JSON`] };
  }
  if (document?.format !== BUNDLE_FORMAT || !Array.isArray(document.files)) {
    return { ok: false, digest, problems: [`${bundleFile.path} is not a ${BUNDLE_FORMAT} index`] };
  }
  if (canonicalJson(document) !== bundleBytes.toString('utf8')) {
    problems.push(`${bundleFile.path} is not in canonical form (sorted keys, 2-space indent, final newline)`);
  }
  const present = new Map(
    files.filter((f) => f.path.startsWith(prefix)).map((f) => [f.path.slice(prefix.length), Buffer.from(f.content)]),
  );
  const listed = new Set<string>();
  for (const record of document.files) {
    listed.add(record.path);
    const bytes = present.get(record.path);
    if (bytes === undefined) {
      problems.push(`${record.name}: ${record.path} is missing`);
      continue;
    }
    const actual = sha256Hex(bytes);
    if (actual !== record.sha256) {
      problems.push(
        `${record.name}: ${record.path} hashes to sha256:${actual}, the index says sha256:${record.sha256}`,
      );
    } else if (bytes.length !== record.size) {
      problems.push(`${record.name}: ${record.path} has ${bytes.length} bytes, the index says ${record.size}`);
    }
    if (parseEvidenceBlobPath(record.path) !== record.sha256) {
      problems.push(`${record.name}: ${record.path} is not named by its sha256`);
    }
  }
  for (const path of present.keys()) {
    if (path.startsWith(`${EVIDENCE_DIR}/`) && !listed.has(path)) problems.push(`${path} is not listed in the index`);
  }
  const digests = new Set(document.files.map((r) => r.sha256));
  for (const gate of document.index?.gates ?? []) {
    if (gate.evidenceSha256 !== undefined && !digests.has(gate.evidenceSha256)) {
      problems.push(`gate ${gate.gate}: its evidence sha256:${gate.evidenceSha256} is not in the bundle`);
    }
  }
  return { ok: problems.length === 0, digest, document, problems };
}

function normalizeDigest(digest: string, field: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice('sha256:'.length) : digest;
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new EvidenceBundleError(`${field} must be a lower-case hex sha256 (optionally sha256:-prefixed)`);
  }
  return hex;
}

/** Names are labels inside the index, never paths: bounded, printable, one line. */
function checkName(name: string, field: string): void {
  if (name.length === 0 || name.length > 200 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new EvidenceBundleError(`${field} must be 1 to 200 printable characters (e.g. gates/scan.json)`);
  }
}

/** The blob file's extension, from its name's (`sbom.cdx.json` → `json`), so that viewers know the format. */
function extensionOf(name: string): string | undefined {
  return /\.([a-z0-9]{1,10})$/i.exec(name)?.[1]?.toLowerCase();
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
