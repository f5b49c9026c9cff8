/**
 * Real parts for the evaluation tests: a tfjs backend chosen like the worker chooses it, temp directories, models
 * trained on generated data and stored through the real acquire stage, the project venv's Python for Fairlearn,
 * and the CLI commands on a commander program with captured output.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { test as base } from 'vitest';
import { createAcquireActivities } from '../../activities/acquire';
import { acquireArtifacts } from '../../activities/acquire/acquire';
import { initBackend, parseBackendPreference, type BackendInfo } from '../../activities/evaluate/backend';
import type { RegisterCommands } from '../../client/commands/index';
import { cachedDir } from '../helpers/cached-dir';
import { runCommand, type CommandRun } from '../helpers/command';
import type { DatasetInfo } from '../../activities/evaluate/dataset';
import { FilesystemStore, storeManifest } from '../../activities/store';
import type {
  ArtifactManifest,
  Finding,
  GateInput,
  GateResult,
  ManifestRef,
  PinnedArtifact,
  ReleaseRequest,
} from '../../contract/types';
import { readEvidence as readStoredEvidence, type GateEvidence } from '../helpers/evidence';
import {
  BIASED_FEATURES,
  FAIR_FEATURES,
  generateCredit,
  saveModel,
  toCsv,
  trainCreditModel,
  type CreditRow,
} from '../../scripts/credit-data';

const exec = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** What the trained models depend on besides their parameters: the data generator and the training code. */
const TRAINING_CODE = ['scripts/credit-data.ts', 'activities/evaluate/random.ts'];

/**
 * The backend these tests run on: MREL_TEST_TFJS_BACKEND, else TFJS_BACKEND, else auto (native TensorFlow when
 * scripts/setup-tfjs.mjs built it). CI runs the folder once more with MREL_TEST_TFJS_BACKEND=wasm.
 */
export function useBackend(
  preference = process.env.MREL_TEST_TFJS_BACKEND ?? process.env.TFJS_BACKEND,
): Promise<BackendInfo> {
  return initBackend(parseBackendPreference(preference));
}

/** The project venv's Python (where CI installs fairlearn and aif360), found relative to the repository. */
export function venvPython(): string {
  return join(REPO, '.venv', 'bin', 'python');
}

/** Runs a Python script from this folder with the venv's interpreter and parses its JSON output. */
export async function runPythonJson(script: string, args: string[]): Promise<unknown> {
  const { stdout } = await exec(venvPython(), [join(REPO, 'test', 'evaluate', script), ...args], {
    maxBuffer: 64 << 20,
  });
  return JSON.parse(stdout) as unknown;
}

interface Dirs {
  /** A fresh temp directory per test, removed afterwards. */
  tmp: string;
  /** `<tmp>/store`, the artifact store root. */
  storeRoot: string;
  /** The filesystem store at `storeRoot`. */
  store: FilesystemStore;
}

export const test = base.extend<Dirs>({
  // vitest reads a fixture's dependencies from its destructuring pattern: this one has none.
  tmp: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'evaluate-test-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
  storeRoot: async ({ tmp }, use) => {
    await use(join(tmp, 'store'));
  },
  store: async ({ storeRoot }, use) => {
    await use(new FilesystemStore(storeRoot));
  },
});

export interface ModelFixture {
  /** The model directory (model.json + shard). */
  dir: string;
  /** A held-out CSV of the same distribution. */
  data: string;
  rows: CreditRow[];
}

export interface TrainedFixtures {
  root: string;
  /** Trained on labels with an injected group bias, and given the group (and its proxy) as inputs. */
  biased: ModelFixture;
  /** Trained on unbiased labels without the group. */
  fair: ModelFixture;
  /** Trained on biased labels without the group but with zip_score, which tracks it. */
  proxy: ModelFixture;
  close(): Promise<void>;
}

export type ModelKind = 'biased' | 'fair' | 'proxy';

const KINDS: Record<ModelKind, { biased: boolean; features: string[]; seed: number }> = {
  biased: { biased: true, features: BIASED_FEATURES, seed: 11 },
  fair: { biased: false, features: FAIR_FEATURES, seed: 12 },
  proxy: { biased: true, features: FAIR_FEATURES.concat('zip_score'), seed: 13 },
};

/**
 * Writes one kind of model, trained on generated rows, with a held-out CSV under `root`. The held-out set is
 * larger than the training set: the fair model must pass on the conservative ends of the intervals, and those
 * narrow with more rows.
 */
export async function trainModelFixture(
  root: string,
  kind: ModelKind,
  rows = 2000,
  heldOutRows = 6000,
): Promise<ModelFixture> {
  const { biased, features, seed } = KINDS[kind];
  const heldOut = generateCredit(heldOutRows, { biased, seed: seed + 100 });
  // Training is seeded and takes seconds: each (kind, rows, backend) is trained once, and every test file copies it.
  const code = await digestOf(TRAINING_CODE);
  const key = { kind: KINDS[kind], rows, backend: tf.getBackend(), tfjs: tf.version.tfjs, code };
  const trained = await cachedDir(`model-${kind}`, key, async (into) => {
    const model = await trainCreditModel(generateCredit(rows, { biased, seed }), features);
    await saveModel(model.model, into, model.metadata);
    model.model.dispose();
  });
  const dir = join(root, kind);
  await cp(trained, dir, { recursive: true });
  const data = join(root, `${kind}.csv`);
  await writeFile(data, toCsv(heldOut));
  return { dir, data, rows: heldOut };
}

async function digestOf(files: string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const file of files) hash.update(await readFile(join(REPO, file)));
  return hash.digest('hex');
}

/** The three models under a fresh directory (trained once and cached across files and runs: see trainModelFixture). */
export async function trainFixtures(rows = 2000): Promise<TrainedFixtures> {
  const root = await mkdtemp(join(tmpdir(), 'evaluate-models-'));
  return {
    root,
    biased: await trainModelFixture(root, 'biased', rows),
    fair: await trainModelFixture(root, 'fair', rows),
    proxy: await trainModelFixture(root, 'proxy', rows),
    close: () => rm(root, { recursive: true, force: true }),
  };
}

/** Stores a model directory through the real acquire stage and returns its manifest reference, as acquire does. */
export async function storeModel(dir: string, storeRoot: string, name = 'credit'): Promise<ManifestRef> {
  const store = new FilesystemStore(storeRoot);
  const manifest = await acquireArtifacts({ name, version: '1.0.0', source: pathToFileURL(dir).href }, { store });
  return storeManifest(store, manifest);
}

/** Pins a dataset file in the store through the acquireDataset activity, as a release does before its gates. */
export function pinDataset(storeRoot: string, data: string): Promise<PinnedArtifact> {
  const { acquireDataset } = createAcquireActivities({ store: new FilesystemStore(storeRoot) });
  return acquireDataset({ source: pathToFileURL(data).href });
}

/**
 * A GateInput for a stored model and a dataset file. With `dataset` (pinDataset) the gates read the pinned copy from
 * the store; without, the file itself, as releases from before datasets were pinned do.
 */
/** A release of a trained credit model with an evaluation block, as the release-level evaluation tests start it. */
export function evaluatedRequest(model: ModelFixture, name: string, requestedBy = 'ci'): ReleaseRequest {
  return {
    model: { name, version: '1.0.0', source: pathToFileURL(model.dir).href },
    environment: 'staging',
    policy: 'default',
    requestedBy,
    team: 'risk',
    evaluation: {
      dataset: pathToFileURL(model.data).href,
      label: 'approved',
      protected: ['group', 'sex'],
      favorable: 1,
    },
    traffic: { averageRequestsPerSecond: 5, peakRequestsPerSecond: 20 },
  };
}

export function gateInput(
  manifest: ManifestRef | ArtifactManifest,
  data: string,
  options: {
    policy?: unknown;
    evaluation?: Partial<NonNullable<ReleaseRequest['evaluation']>> & Record<string, unknown>;
    dataset?: PinnedArtifact;
  } = {},
): GateInput {
  return {
    releaseId: `release/${manifest.model}/${manifest.version}/production`,
    request: {
      model: { name: manifest.model, version: manifest.version, source: manifest.source },
      environment: 'production',
      policy: 'default',
      requestedBy: 'ci',
      evaluation: {
        dataset: pathToFileURL(data).href,
        label: 'approved',
        protected: ['group', 'sex'],
        favorable: 1,
        ...options.evaluation,
      },
    },
    manifest,
    ...(options.dataset ? { dataset: options.dataset } : {}),
    policy: options.policy,
    waivers: [],
    earlier: [],
  };
}

/** A model gate's own part of its evidence, as the gate activities store it (the envelope has gate, verdict, …). */
export interface GateReport<Report = unknown> {
  backend: BackendInfo;
  dataset: Omit<DatasetInfo, 'path'> & { source: string };
  report: Report;
  resumedFromRow: number;
}

/** A gate activity's evidence, read from the store by the digest its result names. */
export function readGateEvidence<Report>(
  store: FilesystemStore,
  result: GateResult,
): Promise<GateEvidence<GateReport<Report>>> {
  return readStoredEvidence<GateReport<Report>>(store, result.evidence);
}

/** Runs a command module the way mrel does, with output captured: `await cli(register, ['fairness', …])`. */
export const cli = (register: RegisterCommands, args: string[]): Promise<CommandRun> => runCommand(register, args);

/** A gate's evidence file as `mrel evaluate --evidence-dir` writes it (see activities/evaluate/gates.ts). */
export interface Evidence<Report = unknown> {
  gate: string;
  releaseId?: string;
  verdict: string;
  backend: BackendInfo;
  dataset: DatasetInfo;
  report: Report;
  resumedFromRow: number;
  findings: Finding[];
}

export async function readEvidence<Report>(path: string): Promise<Evidence<Report>> {
  return JSON.parse(await readFile(path, 'utf8')) as Evidence<Report>;
}

/** Writes a file, creating its directory. */
export async function write(path: string, content: string): Promise<string> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  return path;
}
