/**
 * Which workflow code the release worker runs: the prebuilt bundle that MREL_WORKFLOW_BUNDLE names (the image builds
 * one and sets it), or, when it is unset, the workflow sources bundled at start (development and tests, so that a
 * changed workflow is never served from a stale bundle).
 *
 * With the payload codec on, failures must be encoded inside the workflow code too, so a bundle is built twice: the
 * file itself (Temporal's default failures) and `<name>.encoded-failures.js` beside it (failure messages as encrypted
 * payloads). A worker with codec keys loads the second.
 */
import { readFile } from 'node:fs/promises';
import { Script } from 'node:vm';
import type { WorkerOptions } from '@temporalio/worker';
import { ENCODED_FAILURES_MARKER } from '../client/connection/payload-codec';
import { WORKFLOWS_PATH } from './paths';

export type WorkflowSource = Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>;

/** The variant of `bundlePath` built with the encoded-failures converter, beside it. */
export function encodedFailuresBundlePath(bundlePath: string): string {
  return `${bundlePath.replace(/\.js$/, '')}.encoded-failures.js`;
}

/**
 * The worker options for `bundlePath`, read and checked once at start: a missing, truncated or foreign file stops the
 * worker with the setting's name instead of failing later (the SDK's own errors name neither the file nor the
 * setting). Falls back to bundling from the sources only when no bundle is configured, never when one is broken.
 */
export async function workflowSource(
  configured: string | undefined,
  options: { encodedFailures?: boolean } = {},
): Promise<WorkflowSource> {
  if (configured === undefined) return { workflowsPath: WORKFLOWS_PATH };
  const bundlePath = options.encodedFailures ? encodedFailuresBundlePath(configured) : configured;
  const problem = (why: string) =>
    new Error(
      `environment variable MREL_WORKFLOW_BUNDLE: ${bundlePath} ${why}` +
        (options.encodedFailures ? ' (the payload codec is on, so the worker loads the encoded-failures bundle)' : '') +
        '; rebuild it with ' +
        '`npm run build:workflows -- <file>` (the image builds dist/workflow-bundle.js), or unset the variable to ' +
        'bundle the workflows at start',
    );
  let code: string;
  try {
    code = await readFile(bundlePath, 'utf8');
  } catch (err) {
    throw problem(`cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  // bundleWorkflowCode declares the SDK's global first and ends with the inline source map the SDK requires; a file
  // cut short or written by something else lacks one or the other.
  const body = code.trimEnd();
  const lastLine = body.slice(body.lastIndexOf('\n') + 1);
  if (!body.includes('__TEMPORAL__') || !lastLine.startsWith('//# sourceMappingURL=data:')) {
    throw problem('is not a complete workflow bundle (bundleWorkflowCode output)');
  }
  try {
    new Script(code, { filename: bundlePath });
  } catch {
    throw problem('is not valid JavaScript');
  }
  // A bundle without the converter would store failure messages in the clear beside encrypted payloads.
  if (options.encodedFailures && !code.includes(ENCODED_FAILURES_MARKER)) {
    throw problem('was not built with the encoded-failures converter');
  }
  return { workflowBundle: { code } };
}
