/**
 * The mounted model, read once into memory and checked against the digests the release approved before anything of
 * it is parsed: with a manifest file, every file against its own sha256 (so a mismatch names the file); with only
 * the manifest digest, the whole listing against it. The model is then loaded from these verified bytes, never
 * read from disk a second time, so what runs is what was checked.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ArtifactFile, ArtifactManifest } from '../contract/types';
import { WalkError, walkModelDirectory } from '../activities/formats/walk';
import { manifestDigest } from '../activities/store/manifest';

/** Manifest files above this are refused (the store's own limit for manifest blobs). */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;

export class ModelFilesError extends Error {
  override readonly name = 'ModelFilesError';
}

export interface VerifiedModel {
  /** Hex sha256 over the sorted `path\0sha256\n` lines. */
  manifestDigest: string;
  files: ArtifactFile[];
  bytes: Map<string, Uint8Array>;
  /** The manifest, when one was given: its model name and version are defaults for the server's. */
  manifest?: Pick<ArtifactManifest, 'model' | 'version'>;
}

export interface VerifyInput {
  modelDir: string;
  /** Expected manifest digest (hex). */
  manifestDigest?: string;
  manifestFile?: string;
  /** Expected sha256 of the manifest file (hex). */
  manifestBlob?: string;
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads and verifies the model; throws ModelFilesError naming the file or digest that does not match. */
export async function readVerifiedModel(input: VerifyInput): Promise<VerifiedModel> {
  if (input.manifestFile !== undefined) return readByManifest(input, input.manifestFile);
  if (input.manifestDigest === undefined) {
    throw new ModelFilesError('no manifest digest and no manifest file: nothing to check the model against');
  }
  return readByDigest(input.modelDir, input.manifestDigest);
}

async function readByManifest(input: VerifyInput, manifestFile: string): Promise<VerifiedModel> {
  const text = await readOrFail(manifestFile, 'the manifest file (MODEL_MANIFEST_FILE)', MAX_MANIFEST_BYTES);
  if (input.manifestBlob !== undefined && sha256(text) !== input.manifestBlob) {
    throw new ModelFilesError(
      `${manifestFile}: its sha256 is not MODEL_MANIFEST_BLOB sha256:${input.manifestBlob.slice(0, 12)}…; mount the manifest the release stored`,
    );
  }
  let manifest: ArtifactManifest;
  try {
    manifest = JSON.parse(Buffer.from(text).toString('utf8')) as ArtifactManifest;
  } catch {
    throw new ModelFilesError(`${manifestFile}: not valid JSON; mount the ArtifactManifest the release stored`);
  }
  const files = Array.isArray(manifest?.files) ? manifest.files : undefined;
  const malformed = files?.findIndex(
    (f) => typeof f?.path !== 'string' || typeof f.sha256 !== 'string' || !safeRelative(f.path),
  );
  if (files === undefined || files.length === 0 || malformed !== -1) {
    throw new ModelFilesError(
      `${manifestFile}: ${files === undefined || files.length === 0 ? 'files: no files listed' : `files[${malformed}]: needs a relative path and a sha256`}`,
    );
  }
  const digest = manifestDigest(files);
  if (input.manifestDigest !== undefined && digest !== input.manifestDigest) {
    throw new ModelFilesError(
      `${manifestFile}: its files give manifest digest sha256:${digest.slice(0, 12)}…, not MODEL_MANIFEST_DIGEST sha256:${input.manifestDigest.slice(0, 12)}…; the manifest is not the released model's`,
    );
  }
  const bytes = new Map<string, Uint8Array>();
  for (const file of files) {
    const data = await readOrFail(join(input.modelDir, file.path), file.path, Number.MAX_SAFE_INTEGER);
    if (sha256(data) !== file.sha256) {
      throw new ModelFilesError(
        `${file.path}: sha256 ${sha256(data).slice(0, 12)}… is not the manifest's ${file.sha256.slice(0, 12)}…; the mounted model is not the released one (re-pull the artifact by digest)`,
      );
    }
    bytes.set(file.path, data);
  }
  return { manifestDigest: digest, files, bytes, manifest: { model: manifest.model, version: manifest.version } };
}

async function readByDigest(modelDir: string, expected: string): Promise<VerifiedModel> {
  let walked;
  try {
    walked = await walkModelDirectory(modelDir);
  } catch (err) {
    if (err instanceof WalkError) throw new ModelFilesError(`MODEL_DIR ${modelDir}: ${err.message}`, { cause: err });
    throw err;
  }
  const bytes = new Map<string, Uint8Array>();
  const files: ArtifactFile[] = [];
  for (const f of walked.files) {
    const data = await readOrFail(f.realPath, f.path, Number.MAX_SAFE_INTEGER);
    bytes.set(f.path, data);
    files.push({ path: f.path, size: data.byteLength, sha256: sha256(data) });
  }
  const digest = manifestDigest(files);
  if (digest !== expected) {
    // Without the manifest no single file can be blamed: list what is there, so an operator can compare.
    const listing = files
      .slice(0, 20)
      .map((f) => `${f.path} sha256:${f.sha256.slice(0, 12)}…`)
      .join(', ');
    throw new ModelFilesError(
      `MODEL_DIR ${modelDir}: its files (${listing}${files.length > 20 ? ', …' : ''}) give manifest digest sha256:${digest.slice(0, 12)}…, not MODEL_MANIFEST_DIGEST sha256:${expected.slice(0, 12)}…; the mounted model is not the released one (re-pull the artifact by digest, or mount its manifest to see which file differs)`,
    );
  }
  return { manifestDigest: digest, files, bytes };
}

async function readOrFail(path: string, name: string, limit: number): Promise<Uint8Array> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ModelFilesError(`${name}: cannot be read (${code}); is the model mounted at MODEL_DIR?`, { cause: err });
  }
  if (data.byteLength > limit) throw new ModelFilesError(`${name}: larger than ${limit} bytes`);
  return data;
}

function safeRelative(path: string): boolean {
  return path !== '' && !path.startsWith('/') && !path.split('/').some((part) => part === '..' || part === '');
}
