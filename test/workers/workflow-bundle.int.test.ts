/**
 * The release worker on a workflow bundle built ahead of time (what the image does): built by the same script the
 * Dockerfile runs, loaded through MREL_WORKFLOW_BUNDLE, and refused with the setting's name when it is missing or
 * broken, instead of a silent re-bundle or the SDK's anonymous error.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRelease, startRelease } from '../../client/release-client';
import { PROJECT_ROOT, WORKFLOWS_PATH } from '../../workers/paths';
import { createReleaseWorker } from '../../workers/release-worker';
import { encodedFailuresBundlePath, workflowSource } from '../../workers/workflow-bundle';
import { createReleaseEnv, eventually, type ReleaseEnv } from '../helpers/release-env';

const exec = promisify(execFile);
let dir: string;
let bundlePath: string;
let env: ReleaseEnv;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mrel-bundle-'));
  bundlePath = join(dir, 'nested', 'workflow-bundle.js');
  // As the Dockerfile runs it: a process, the output file as its argument.
  await exec(process.execPath, ['--import', 'tsx', 'scripts/build-workflow-bundle.ts', bundlePath], {
    cwd: PROJECT_ROOT,
  });
  env = await createReleaseEnv('bundle');
}, 180_000);

afterAll(async () => {
  await env?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a prebuilt workflow bundle', () => {
  it('serves a release: the worker loads the bundle, not the sources, and takes the release through acquire', async () => {
    const connection = await NativeConnection.connect({ address: env.settings.address });
    const worker = await createReleaseWorker({ ...env.settings, workflowBundle: bundlePath }, { connection });
    expect(worker.options.workflowBundle).toBeDefined();
    expect(worker.options.workflowsPath).toBeUndefined();
    const running = worker.run();
    const request = await env.model(`bundled-${Math.random().toString(36).slice(2, 8)}`, '1.0.0');
    const { releaseId } = await startRelease(env.client, request, { taskQueue: env.settings.taskQueue });
    try {
      const status = await eventually(
        () => getRelease(env.client, releaseId),
        (s) => s.gates.some((g) => g.gate === 'acquire'),
        60_000,
      );
      expect(status.gates.find((g) => g.gate === 'acquire')?.verdict).toBe('pass');
    } finally {
      await env.client.workflow.getHandle(releaseId).terminate('test over');
      worker.shutdown();
      await running;
      await connection.close();
    }
  });

  it('with the payload codec on, the worker loads the encoded-failures variant the build wrote beside the bundle', async () => {
    const variant = encodedFailuresBundlePath(bundlePath);
    expect(variant).toBe(join(dir, 'nested', 'workflow-bundle.encoded-failures.js'));
    const source = await workflowSource(bundlePath, { encodedFailures: true });
    expect(source.workflowBundle).toEqual({ code: await readFile(variant, 'utf8') });
    expect((await workflowSource(bundlePath)).workflowBundle).toEqual({ code: await readFile(bundlePath, 'utf8') });
  });

  it('with the payload codec on, refuses a bundle built without the encoded-failures converter', async () => {
    // A plain bundle where the variant should be: failure messages would be stored in the clear.
    const copy = join(dir, 'plain', 'workflow-bundle.js');
    await mkdir(join(dir, 'plain'), { recursive: true });
    await writeFile(encodedFailuresBundlePath(copy), await readFile(bundlePath));
    const error = (await workflowSource(copy, { encodedFailures: true }).catch((err: Error) => err)) as Error;
    expect(error.message).toBe(
      `environment variable MREL_WORKFLOW_BUNDLE: ${encodedFailuresBundlePath(copy)} was not built with the ` +
        'encoded-failures converter (the payload codec is on, so the worker loads the encoded-failures bundle); ' +
        'rebuild it with `npm run build:workflows -- <file>` (the image builds dist/workflow-bundle.js), or unset ' +
        'the variable to bundle the workflows at start',
    );
  });

  it('without MREL_WORKFLOW_BUNDLE the worker bundles the workflow sources at start', async () => {
    expect(await workflowSource(undefined)).toEqual({ workflowsPath: WORKFLOWS_PATH });
  });

  it('refuses a missing file, naming the setting and how to build one', async () => {
    const missing = join(dir, 'no-such-bundle.js');
    const error = await workflowSource(missing).catch((err: Error) => err);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe(
      `environment variable MREL_WORKFLOW_BUNDLE: ${missing} cannot be read (ENOENT); rebuild it with ` +
        '`npm run build:workflows -- <file>` (the image builds dist/workflow-bundle.js), or unset the variable to ' +
        'bundle the workflows at start',
    );
  });

  it.each([
    [
      'cut short',
      async () => (await readFile(bundlePath, 'utf8')).slice(0, 100_000),
      'is not a complete workflow bundle',
    ],
    ['some other script', async () => 'const token = "s3cr3t-token";\nconsole.log(token);\n', 'is not a complete'],
    [
      'broken JavaScript that looks like a bundle',
      async () =>
        'var __TEMPORAL__;\nfunction ( { "s3cr3t-token"\n//# sourceMappingURL=data:application/json;base64,e30=\n',
      'is not valid JavaScript',
    ],
  ])('refuses a bundle that is %s, without echoing its content', async (_what, content, why) => {
    const file = join(dir, 'broken.js');
    await writeFile(file, await content());
    const error = (await workflowSource(file).catch((err: Error) => err)) as Error;
    expect(error.message).toContain(`environment variable MREL_WORKFLOW_BUNDLE: ${file} ${why}`);
    expect(error.message).not.toContain('s3cr3t-token');
  });

  it('the worker process exits at start when its bundle is missing, and says which setting to fix', async () => {
    const missing = join(dir, 'gone', 'workflow-bundle.js');
    const failure = await exec(process.execPath, ['--import', 'tsx', 'workers/release.ts'], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: env.settings.address,
        MREL_TASK_QUEUE: `${env.settings.taskQueue}-process`,
        MREL_DATA_DIR: join(dir, 'process-data'),
        MREL_WORKFLOW_BUNDLE: missing,
      },
      timeout: 50_000,
    }).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain(`environment variable MREL_WORKFLOW_BUNDLE: ${missing} cannot be read (ENOENT)`);
  });
});
