/**
 * Where the product's own files are, for the workers and the tools that build or start them. Product code finds its
 * files here, never through scripts/.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the image's /app): config/, workflows/ and the default data directory hang off it. */
export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The module whose exported functions are the workflows the release worker serves. */
export const WORKFLOWS_PATH = join(PROJECT_ROOT, 'workflows', 'index.ts');

/** Where `npm run build:workflows` (and the image build) writes the prebuilt workflow bundle. */
export const DEFAULT_WORKFLOW_BUNDLE = join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');
