/**
 * docker-compose.yml as Compose itself reads it (`docker compose config`, or Debian's `docker-compose config`): every
 * part of the stack is there, both workers run from the one image, and each worker's environment passes the workers'
 * own settings schema and names the queues, store and sources the other side uses. The stack itself is not started
 * (no image registry is reachable from these machines); this catches the drift that made a release wait forever.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadSourcePolicy } from '../../config/loader';
import { EVALUATION_TASK_QUEUE, RELEASE_TASK_QUEUE, SEARCH_ATTRIBUTES } from '../../contract/definitions';
import { PROJECT_ROOT } from '../../workers/paths';
import { loadSettings, type Settings } from '../../workers/settings';

const exec = promisify(execFile);

interface Mount {
  source: string;
  target: string;
  readOnly: boolean;
}

interface Service {
  image?: string;
  build?: { context: string };
  command?: string[] | string;
  environment?: Record<string, string | null>;
  volumes?: (string | { type?: string; source?: string; target: string; read_only?: boolean })[];
  depends_on?: Record<string, { condition: string }>;
  init?: boolean;
}

const WORKERS = { release: 'release-worker', evaluation: 'evaluation-worker' } as const;

let services: Record<string, Service>;

/** `docker compose` (the v2 plugin) where there is one, else Debian's `docker-compose` (v1). */
async function composeCommand(): Promise<string[]> {
  for (const command of [['docker', 'compose'], ['docker-compose']]) {
    const ran = await exec(command[0]!, [...command.slice(1), 'version']).then(
      () => true,
      () => false,
    );
    if (ran) return command;
  }
  throw new Error(
    "neither `docker compose` nor `docker-compose` runs on this machine: install Debian's docker-compose " +
      '(`node scripts/setup-test-deps.mjs` does, as root), then run this test again',
  );
}

beforeAll(async () => {
  const [bin, ...args] = await composeCommand();
  // Only PATH and HOME: the file's own defaults (${POSTGRES_PASSWORD:-…}) are what is checked, not this shell's.
  const { stdout } = await exec(bin!, [...args, '-f', 'docker-compose.yml', '-p', 'modelrelease', 'config'], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
  });
  services = (parse(stdout) as { services: Record<string, Service> }).services;
}, 60_000);

function service(name: string): Service {
  const found = services[name];
  if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
  return found;
}

function environment(name: string): Record<string, string> {
  return Object.fromEntries(Object.entries(service(name).environment ?? {}).map(([key, value]) => [key, value ?? '']));
}

/** Volumes in Compose v1's short syntax (`source:target:mode`) or v2's long one, alike. */
function mounts(name: string): Mount[] {
  return (service(name).volumes ?? []).map((v) => {
    if (typeof v !== 'string') return { source: v.source ?? '', target: v.target, readOnly: v.read_only === true };
    const [source = '', target = '', mode = 'rw'] = v.split(':');
    return { source, target, readOnly: mode.split(',').includes('ro') };
  });
}

/** The volume mounted at `path` or at a directory above it in the service's container. */
function mountHolding(name: string, path: string): Mount | undefined {
  return mounts(name)
    .filter((m) => path === m.target || path.startsWith(`${m.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

function commandLine(name: string): string {
  const command = service(name).command;
  return Array.isArray(command) ? command.join(' ') : (command ?? '');
}

function workerSettings(name: string): Settings {
  return loadSettings(environment(name));
}

describe('docker-compose.yml', () => {
  it('runs every part of the stack: PostgreSQL, Temporal, its search attributes, the UI and both workers', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'evaluation-worker',
        'postgresql',
        'release-worker',
        'temporal',
        'temporal-search-attributes',
        'temporal-ui',
      ].sort(),
    );
  });

  it('runs both workers from the image this repository builds, each its own entry point', () => {
    for (const name of Object.values(WORKERS)) {
      expect(service(name).build?.context, name).toBe(PROJECT_ROOT.replace(/\/$/, ''));
      expect(service(name).image, name).toBe(service(WORKERS.release).image);
      // Without an init, SIGTERM stops at npx and the worker is killed mid-task instead of draining.
      expect(service(name).init, name).toBe(true);
      expect(service(name).depends_on?.['temporal-search-attributes'], name).toEqual({
        condition: 'service_completed_successfully',
      });
    }
    expect(commandLine(WORKERS.release)).toMatch(/\bnpx tsx workers\/release\.ts\b/);
    expect(commandLine(WORKERS.evaluation)).toMatch(/\bnpx tsx workers\/evaluation\.ts\b/);
  });

  it("gives each worker settings that the workers' own schema accepts, on one server and namespace", () => {
    const release = workerSettings(WORKERS.release);
    const evaluation = workerSettings(WORKERS.evaluation);
    expect(evaluation.address).toBe(release.address);
    expect(evaluation.namespace).toBe(release.namespace);
    const [host, port] = release.address.split(':');
    expect(Object.keys(services)).toContain(host);
    expect(port).toBe('7233');
  });

  it('names the same task queues on both sides: the queue releases start on, the queue evaluations go to', () => {
    const release = workerSettings(WORKERS.release);
    const evaluation = workerSettings(WORKERS.evaluation);
    // The start API, the CLI and the HTTP door start releases on RELEASE_TASK_QUEUE unless told otherwise.
    expect(release.taskQueue).toBe(RELEASE_TASK_QUEUE);
    // The release worker hands its evaluation queue to every release; the evaluation worker must poll that queue.
    expect(evaluation.evaluationTaskQueue).toBe(EVALUATION_TASK_QUEUE);
    expect(release.evaluationTaskQueue).toBe(evaluation.evaluationTaskQueue);
  });

  it('lets the evaluation worker read what acquire stored: one store volume at one path in both workers', () => {
    const release = workerSettings(WORKERS.release);
    const evaluation = workerSettings(WORKERS.evaluation);
    expect(evaluation.storeRoot).toBe(release.storeRoot);
    const releaseStore = mountHolding(WORKERS.release, release.storeRoot);
    const evaluationStore = mountHolding(WORKERS.evaluation, evaluation.storeRoot);
    expect(releaseStore, 'the release worker mounts no volume at its store').toBeDefined();
    expect(evaluationStore?.source).toBe(releaseStore?.source);
    // A named volume, not the container's own layer that dies with it.
    expect(releaseStore?.source).toMatch(/^[\w.-]+$/);
    expect(releaseStore?.readOnly).toBe(false);
  });

  it('admits models and datasets from the mounted models volume in both workers', async () => {
    for (const name of Object.values(WORKERS)) {
      const policy = await loadSourcePolicy(join(PROJECT_ROOT, 'config'), environment(name));
      const models = mountHolding(name, '/models');
      expect(models?.target, name).toBe('/models');
      expect(policy.roots, name).toContain(posix.normalize(models!.target));
    }
  });

  it('gives the release worker its GitOps repository on a volume', () => {
    const release = workerSettings(WORKERS.release);
    expect(mountHolding(WORKERS.release, release.gitopsRepo)?.source).toMatch(/^[\w.-]+$/);
  });

  it('registers every search attribute the release workflow upserts before the workers start', () => {
    const script = commandLine('temporal-search-attributes');
    for (const attribute of SEARCH_ATTRIBUTES) expect(script).toMatch(new RegExp(`\\b${attribute}\\b`));
  });
});

describe('Dockerfile', () => {
  it('builds the workflow bundle into the image and points the release worker at it', async () => {
    const dockerfile = await readFile(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
    const built = /^RUN npx tsx scripts\/build-workflow-bundle\.ts (\S+)$/m.exec(dockerfile)?.[1];
    const configured = /^\s*MREL_WORKFLOW_BUNDLE=(\S+?)\s*\\?$/m.exec(dockerfile)?.[1];
    expect(built, 'the Dockerfile builds no workflow bundle').toBeDefined();
    expect(configured).toBe(built);
    // The bundle must come after the sources it is built from.
    expect(dockerfile.indexOf('COPY . .')).toBeLessThan(dockerfile.indexOf('build-workflow-bundle'));
  });

  it('keeps the host build outputs out of the image, so it bundles its own workflow code', async () => {
    const ignored = (await readFile(join(PROJECT_ROOT, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim());
    expect(ignored).toContain('dist');
    for (const needed of ['workflows', 'workers', 'activities', 'contract', 'config', 'scripts']) {
      expect(ignored).not.toContain(needed);
    }
  });
});
