/**
 * Shared setup of the cost tests: scratch folders, a real artifact store, weight files written by the reference
 * Python libraries, a small pricing catalog with round numbers, and gate inputs.
 */
import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { test as base } from 'vitest';
import { FilesystemStore, manifestDigest, storeManifest } from '../../activities/store';
import { parsePricing, type PricingCatalog } from '../../config/pricing';
import type {
  ArtifactFile,
  ArtifactManifest,
  GateInput,
  GateResult,
  ManifestRef,
  ReleaseRequest,
} from '../../contract/types';

const run = promisify(execFile);

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The project's virtual environment's Python (npm install / .ci/run create it). */
export const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python');

export const test = base.extend<{ tmp: string }>({
  tmp: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'modelrelease-cost-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
});

export interface ReferenceFootprint {
  parameters: number;
  bytes: number;
  byDtype: Record<string, { parameters: number; bytes: number }>;
}

/** Writes a weight file with the reference library and returns what that library reads back. */
export async function referenceWeights(kind: 'safetensors' | 'gguf', out: string): Promise<ReferenceFootprint> {
  const { stdout } = await run(PYTHON, [join(REPO_ROOT, 'test', 'cost', 'make-weights.py'), kind, out]);
  return JSON.parse(stdout) as ReferenceFootprint;
}

/** A tfjs layers model.json with one float32 and one uint8-quantized weight, and its shard. */
export async function tfjsModel(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const manifest = {
    format: 'layers-model',
    modelTopology: { class_name: 'Sequential', config: { layers: [] } },
    weightsManifest: [
      {
        paths: ['group1-shard1of1.bin'],
        weights: [
          {
            name: 'dense/kernel',
            shape: [100, 50],
            dtype: 'float32',
            quantization: { dtype: 'uint8', min: -1, scale: 0.01 },
          },
          { name: 'dense/bias', shape: [50], dtype: 'float32' },
        ],
      },
    ],
  };
  await writeFile(join(dir, 'model.json'), JSON.stringify(manifest));
  await writeFile(join(dir, 'group1-shard1of1.bin'), Buffer.alloc(100 * 50 + 50 * 4));
}

/**
 * Puts the files of `dir` (paths relative to it) into the filesystem store at `storeRoot`, stores their manifest, and
 * returns its reference, as acquire does.
 */
export async function storeModel(storeRoot: string, dir: string, paths: string[], name = 'demo'): Promise<ManifestRef> {
  const store = new FilesystemStore(storeRoot);
  const files: ArtifactFile[] = [];
  for (const path of paths) {
    const blob = await store.put(createReadStream(join(dir, path)), { path });
    files.push({ path, ...blob });
  }
  return storeManifest(store, {
    model: name,
    version: '1.0.0',
    source: pathToFileURL(dir).href,
    resolvedRevision: pathToFileURL(dir).href,
    files,
    totalSize: files.reduce((s, f) => s + f.size, 0),
    manifestDigest: manifestDigest(files),
  });
}

/**
 * Two instance types with round numbers: a CPU box (throughput 1, $0.20/h) and a GPU box (throughput 8, one 16 GiB
 * GPU, $0.50/h); no storage price, so known answers are plain arithmetic.
 */
export function smallCatalog(overrides: Partial<PricingCatalog> = {}): PricingCatalog {
  return parsePricing(
    {
      currency: 'USD',
      pricesTakenAt: '2024-11-15',
      source: 'test',
      reference: { instanceType: 'cpu.4x16', description: 'test reference' },
      backends: { tensorflow: 1, wasm: 0.5 },
      storage: { pricePerGiBMonth: 0 },
      instanceTypes: [
        {
          name: 'cpu.4x16',
          provider: 'aws',
          region: 'us-east-1',
          vcpu: 4,
          memoryGiB: 16,
          relativeThroughput: 1,
          onDemandHourly: 0.2,
          spotHourly: 0.08,
        },
        {
          name: 'gpu.t4',
          provider: 'aws',
          region: 'us-east-1',
          vcpu: 4,
          memoryGiB: 16,
          gpu: { model: 'nvidia-tesla-t4', count: 1, memoryGiB: 16 },
          relativeThroughput: 8,
          onDemandHourly: 0.5,
        },
      ],
      ...overrides,
    },
    'test-pricing.yaml',
    'e'.repeat(64),
  );
}

export function request(
  traffic: Record<string, unknown> | undefined,
  extra: Partial<ReleaseRequest> = {},
): ReleaseRequest {
  return {
    model: { name: 'demo', version: '1.0.0', source: 'file:///models/demo' },
    environment: 'production',
    policy: 'default',
    team: 'nlp',
    costCenter: 'cc-1234',
    requestedBy: 'ci@example.com',
    ...(traffic ? { traffic } : {}),
    ...extra,
  };
}

export function gateInput(
  manifest: ManifestRef | ArtifactManifest,
  req: ReleaseRequest,
  options: Partial<GateInput> = {},
): GateInput {
  return {
    releaseId: `release/${req.model.name}/${req.model.version}/${req.environment}`,
    request: req,
    manifest,
    policy: undefined,
    waivers: [],
    earlier: [],
    ...options,
  };
}

/** A result of a gate that ran earlier, with its typed outputs (the measured throughput the cost gate prices). */
export function earlierGate(
  gate: string,
  verdict: GateResult['verdict'],
  metrics: GateResult['metrics'] = {},
  outputs: Pick<GateResult, 'throughput' | 'deployment'> = {},
): GateResult {
  return {
    gate,
    verdict,
    summary: `${gate} ${verdict}`,
    metrics,
    findings: [],
    ...outputs,
    startedAt: '2025-01-01T10:00:00.000Z',
    finishedAt: '2025-01-01T10:01:00.000Z',
  };
}

/** Prediction throughput an evaluation gate measured, as its typed output. */
export function measured(perSecond: number, backend: string): Pick<GateResult, 'throughput'> {
  return { throughput: { unit: 'rows', perSecond, backend } };
}

export { seasonalHistory } from './series';
