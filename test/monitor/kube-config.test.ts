import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { test as base, describe, expect } from 'vitest';
import { KubeConfigError, loadKubeConfig } from '../../activities/monitor/kube';
import { createMonitorActivities } from '../../activities/monitor';
import { FailureType } from '../../contract/definitions';
import type { RolloutWatchInput } from '../../contract/delivery';

const test = base.extend<{ tmp: string }>({
  tmp: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'modelrelease-kubeconfig-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
});

function kubeconfig(server: string, context = 'local'): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    `current-context: ${context}`,
    'clusters:',
    `- name: ${context}`,
    '  cluster:',
    `    server: ${server}`,
    'users:',
    `- name: ${context}`,
    '  user:',
    '    token: secret-token-value',
    'contexts:',
    `- name: ${context}`,
    '  context:',
    `    cluster: ${context}`,
    `    user: ${context}`,
    '',
  ].join('\n');
}

const input: RolloutWatchInput = {
  releaseId: 'release/sentiment/1.4.0/production',
  commit: '3f2a9c0d1e4b5a6978877665544332211aabbccd',
  workload: { kind: 'Deployment', namespace: 'ml', name: 'sentiment' },
  gitops: { kind: 'none' },
  requestReconcile: false,
  timeoutMs: 60_000,
  purpose: 'release',
};

describe('loadKubeConfig', () => {
  test('MREL_KUBECONFIG wins over KUBECONFIG', async ({ tmp }) => {
    await writeFile(join(tmp, 'own.yaml'), kubeconfig('https://127.0.0.1:6443', 'own'));
    await writeFile(join(tmp, 'other.yaml'), kubeconfig('https://127.0.0.1:7443', 'other'));
    const loaded = loadKubeConfig({ MREL_KUBECONFIG: join(tmp, 'own.yaml'), KUBECONFIG: join(tmp, 'other.yaml') });
    expect(loaded?.origin).toBe('MREL_KUBECONFIG');
    expect(loaded?.config.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
  });

  test('KUBECONFIG may list several files; the first one names the current context', async ({ tmp }) => {
    await writeFile(join(tmp, 'a.yaml'), kubeconfig('https://127.0.0.1:6443', 'a'));
    await writeFile(join(tmp, 'b.yaml'), kubeconfig('https://127.0.0.1:7443', 'b'));
    const loaded = loadKubeConfig({ KUBECONFIG: `${join(tmp, 'a.yaml')}:${join(tmp, 'b.yaml')}` });
    expect(loaded?.origin).toBe('KUBECONFIG');
    expect(loaded?.config.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(loaded?.config.getContexts().map((c) => c.name)).toEqual(['a', 'b']);
  });

  test('uses the service account in a pod, and nothing else (not ~/.kube/config)', async ({ tmp }) => {
    const account = join(tmp, 'var/run/secrets/kubernetes.io/serviceaccount');
    await mkdir(account, { recursive: true });
    await writeFile(join(account, 'token'), 'token');
    await writeFile(join(account, 'ca.crt'), '');
    const inCluster = loadKubeConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }, account);
    expect(inCluster?.origin).toBe('in-cluster');
    // A home folder with a kubeconfig is not enough: without the variables there is no cluster.
    await mkdir(join(tmp, '.kube'));
    await writeFile(join(tmp, '.kube', 'config'), kubeconfig('https://127.0.0.1:6443'));
    expect(loadKubeConfig({ HOME: tmp }, account)).toBeUndefined();
    expect(loadKubeConfig({ KUBERNETES_SERVICE_HOST: '10.96.0.1' }, join(tmp, 'no-account'))).toBeUndefined();
  });

  test('a missing or malformed file names the variable and file, never the content', async ({ tmp }) => {
    expect(() => loadKubeConfig({ MREL_KUBECONFIG: join(tmp, 'missing.yaml') })).toThrow(
      /^MREL_KUBECONFIG: kubeconfig file .*missing\.yaml: cannot read it \(ENOENT\)$/,
    );
    await writeFile(join(tmp, 'bad.yaml'), 'clusters: [secret-token-value\n');
    const err = (() => {
      try {
        loadKubeConfig({ KUBECONFIG: join(tmp, 'bad.yaml') });
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(KubeConfigError);
    expect(err?.message).toMatch(/^KUBECONFIG: kubeconfig file .*bad\.yaml: it is not a valid kubeconfig/);
    expect(err?.message).not.toContain('secret-token-value');
  });
});

describe('watchRollout without a cluster', () => {
  test('says that no cluster is configured instead of failing', async () => {
    const activities = createMonitorActivities({ env: {} });
    const result = await activities.watchRollout(input);
    expect(result.outcome).toBe('no-cluster');
    expect(result.reason).toMatch(/no cluster configured: set MREL_KUBECONFIG/);
  });

  test('refuses a broken kubeconfig and a malformed input without retries', async ({ tmp }) => {
    const broken = createMonitorActivities({ env: { MREL_KUBECONFIG: join(tmp, 'missing.yaml') } });
    const err = await broken.watchRollout(input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: FailureType.InvalidConfig, nonRetryable: true });

    const activities = createMonitorActivities({ env: {} });
    const bad = await activities
      .watchRollout({ ...input, commit: 'HEAD', workload: { kind: 'Deployment', namespace: 'ML', name: '' } })
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ type: FailureType.InvalidRequest, nonRetryable: true });
    expect((bad as Error).message).toMatch(/commit: .*workload\.namespace: .*workload\.name: /);
  });
});
