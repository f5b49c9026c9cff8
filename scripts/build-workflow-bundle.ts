/**
 * Bundles the workflow code once, ahead of time, so that a worker starts without webpack (seconds sooner, and no
 * bundler at run time). The image build runs it; the release worker loads the result when MREL_WORKFLOW_BUNDLE
 * names it (the image sets it).
 *
 *   npm run build:workflows [-- <out-file>]     # default dist/workflow-bundle.js
 *
 * It writes two files: `<out-file>` and `<out-file minus .js>.encoded-failures.js`, the same workflows with failures
 * encoded for the payload codec (a worker with codec keys loads that one).
 *
 * The source map is inline in the bundle (the SDK's choice), so stack traces in workflow task failures point at the
 * TypeScript sources.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ENCODED_FAILURES_CONVERTER_PATH } from '../client/connection/payload-codec';
import { DEFAULT_WORKFLOW_BUNDLE, WORKFLOWS_PATH } from '../workers/paths';
import { encodedFailuresBundlePath } from '../workers/workflow-bundle';

/**
 * Bundles the release worker's workflows into `outFile` and its encoded-failures variant beside it; returns both
 * sizes in bytes.
 */
export async function buildWorkflowBundle(
  outFile: string = DEFAULT_WORKFLOW_BUNDLE,
): Promise<{ plain: number; encodedFailures: number }> {
  const plain = await bundleInto(outFile);
  const encodedFailures = await bundleInto(encodedFailuresBundlePath(outFile), ENCODED_FAILURES_CONVERTER_PATH);
  return { plain, encodedFailures };
}

async function bundleInto(outFile: string, failureConverterPath?: string): Promise<number> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    ...(failureConverterPath === undefined ? {} : { failureConverterPath }),
    logger: quietLogger(),
  });
  await mkdir(dirname(outFile), { recursive: true });
  // Written beside and renamed: a build that dies half-way leaves no truncated bundle for a worker to load.
  const partial = `${outFile}.${process.pid}.partial`;
  try {
    await writeFile(partial, code, { mode: 0o644 });
    await rename(partial, outFile);
  } finally {
    await rm(partial, { force: true });
  }
  return Buffer.byteLength(code);
}

function quietLogger() {
  const noop = (): void => {};
  return { trace: noop, debug: noop, info: noop, warn: noop, error: (m: string) => console.error(m), log: noop };
}

if (/(^|[\\/])build-workflow-bundle\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) {
  const outFile = resolve(process.argv[2] ?? DEFAULT_WORKFLOW_BUNDLE);
  buildWorkflowBundle(outFile).then(
    (bytes) =>
      console.log(
        `workflow bundle: ${outFile} (${(bytes.plain / 1024).toFixed(0)} KiB) and ` +
          `${encodedFailuresBundlePath(outFile)} (${(bytes.encodedFailures / 1024).toFixed(0)} KiB)`,
      ),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
