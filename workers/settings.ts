/**
 * Worker and client settings from the environment, validated: a bad value names the variable and what to do.
 */
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { sourceOverridesEnvSchema } from '../config/schema';
import { PROJECT_ROOT } from '../scripts/temporal-cli';
import { RELEASE_TASK_QUEUE } from '../workflows/definitions';

const settingsSchema = z.object({
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^:\s]+:\d+$/, 'must be host:port, e.g. localhost:7233')
    .default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  MREL_TASK_QUEUE: z.string().min(1).default(RELEASE_TASK_QUEUE),
  MREL_DATA_DIR: z.string().min(1).default(join(PROJECT_ROOT, '.data')),
  MREL_STORE: z.string().min(1).optional(),
  MREL_GITOPS_REPO: z.string().min(1).optional(),
  MREL_GITOPS_BRANCH: z.string().min(1).default('main'),
  MREL_SERVING_IMAGE: z.string().min(1).optional(),
  MREL_CONFIG_DIR: z.string().min(1).optional(),
  MREL_PRICING_FILE: z.string().min(1).optional(),
  HF_ENDPOINT: z.string().url('must be a URL such as https://huggingface.co').optional(),
  HF_TOKEN: z.string().min(1).optional(),
  // Added to config/sources.yaml when the workers load it; checked here too, so a typo stops the worker at start.
  ...sourceOverridesEnvSchema.shape,
  MREL_WORKFLOW_BUNDLE: z.string().min(1).optional(),
});

export interface Settings {
  address: string;
  namespace: string;
  taskQueue: string;
  dataDir: string;
  storeRoot: string;
  gitopsRepo: string;
  gitopsBranch: string;
  gitopsWorkRoot: string;
  servingImage?: string;
  configDir?: string;
  pricingFile?: string;
  hfEndpoint?: string;
  hfToken?: string;
  /** A prebuilt workflow bundle (bundleWorkflowCode output): the worker starts without bundling the workflows. */
  workflowBundle?: string;
}

export function loadSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `environment variable ${i.path.join('.')}: ${i.message}`);
    throw new Error(lines.join('\n'));
  }
  const e = parsed.data;
  const dataDir = isAbsolute(e.MREL_DATA_DIR) ? e.MREL_DATA_DIR : join(process.cwd(), e.MREL_DATA_DIR);
  return {
    address: e.TEMPORAL_ADDRESS,
    namespace: e.TEMPORAL_NAMESPACE,
    taskQueue: e.MREL_TASK_QUEUE,
    dataDir,
    storeRoot: e.MREL_STORE ?? join(dataDir, 'store'),
    gitopsRepo: e.MREL_GITOPS_REPO ?? join(dataDir, 'gitops.git'),
    gitopsBranch: e.MREL_GITOPS_BRANCH,
    gitopsWorkRoot: join(dataDir, 'gitops-work'),
    servingImage: e.MREL_SERVING_IMAGE,
    configDir: e.MREL_CONFIG_DIR,
    pricingFile: e.MREL_PRICING_FILE,
    hfEndpoint: e.HF_ENDPOINT,
    hfToken: e.HF_TOKEN,
    workflowBundle: e.MREL_WORKFLOW_BUNDLE,
  };
}
