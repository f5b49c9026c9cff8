/**
 * scripts/setup-cluster-tools.mjs without building anything: the helper go.mod files it builds Kubernetes and Flux
 * through (the parts that broke `go install` in the measurements), and the file-only check that makes a rerun a no-op.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  clusterToolPaths,
  clusterToolsCurrent,
  clusterToolsStamp,
  fluxHelperGoMod,
  kubernetesHelperGoMod,
  replaceDirectives,
} from '../../scripts/setup-cluster-tools.mjs';

const KUBERNETES_GO_MOD = `module k8s.io/kubernetes

go 1.26

require (
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822
	k8s.io/api v0.0.0
	k8s.io/apiserver v0.0.0
	k8s.io/kube-openapi v0.0.0-20260721132016-d427ff9ee9ad
	k8s.io/utils v0.0.0-20260626114624-be93311217bd
)

require k8s.io/client-go v0.0.0 // indirect

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/apiserver => ./staging/src/k8s.io/apiserver
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
`;

const SOURCE_CONTROLLER_GO_MOD = `module github.com/fluxcd/source-controller

go 1.25.0

replace github.com/fluxcd/source-controller/api => ./api

// Pin kustomize to v5.x
replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.20220411205349-bde1400a84be

require (
	github.com/fluxcd/pkg/artifact v0.18.3
	github.com/fluxcd/source-controller/api v1.9.0
)
`;

describe('the helper modules', () => {
  it('pins each staging module k8s.io/kubernetes requires at v0.0.0 to the matching published v0 release', () => {
    const goMod = kubernetesHelperGoMod(KUBERNETES_GO_MOD, 'v1.37.2');
    const replaces = replaceDirectives(goMod);
    expect(replaces).toEqual([
      { from: 'k8s.io/api', to: 'k8s.io/api v0.37.2' },
      { from: 'k8s.io/apiserver', to: 'k8s.io/apiserver v0.37.2' },
      { from: 'k8s.io/client-go', to: 'k8s.io/client-go v0.37.2' },
    ]);
    expect(goMod).toContain('require k8s.io/kubernetes v1.37.2');
    for (const cmd of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) {
      expect(goMod).toContain(`\tk8s.io/kubernetes/cmd/${cmd}\n`);
    }
  });

  it("carries a Flux controller's replace lines, with its ./api folder as the published api module", () => {
    const goMod = fluxHelperGoMod('source-controller', SOURCE_CONTROLLER_GO_MOD, 'v1.9.6');
    expect(replaceDirectives(goMod)).toEqual([
      { from: 'github.com/fluxcd/source-controller/api', to: 'github.com/fluxcd/source-controller/api v1.9.6' },
      {
        from: 'github.com/opencontainers/go-digest',
        to: 'github.com/opencontainers/go-digest v1.0.1-0.20220411205349-bde1400a84be',
      },
      // The v0.18.3 source-controller asks for is not served here.
      { from: 'github.com/fluxcd/pkg/artifact', to: 'github.com/fluxcd/pkg/artifact v0.18.0' },
    ]);
    expect(goMod).toContain('tool github.com/fluxcd/source-controller\n');
    const kustomize = fluxHelperGoMod(
      'kustomize-controller',
      'module x\n\nreplace gopkg.in/yaml.v3 => gopkg.in/yaml.v3 v3.0.1\n',
    );
    expect(replaceDirectives(kustomize)).toEqual([{ from: 'gopkg.in/yaml.v3', to: 'gopkg.in/yaml.v3 v3.0.1' }]);
  });
});

describe('the installed check', () => {
  let root: string | undefined;
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function install(projectRoot: string, stamp: Record<string, string>): Promise<void> {
    const paths = clusterToolPaths(projectRoot);
    const files = [
      paths.kubeApiserver,
      paths.kubeControllerManager,
      paths.kubeScheduler,
      paths.etcd,
      paths.kwok,
      paths.sourceController,
      paths.kustomizeController,
      paths.kwokStages,
    ];
    for (const f of files) {
      await mkdir(dirname(f), { recursive: true });
      await writeFile(f, '');
    }
    await mkdir(paths.fluxCrds, { recursive: true });
    await writeFile(paths.stamp, JSON.stringify(stamp));
  }

  it('holds when .tools/cluster has every program of the pinned versions, and not otherwise', async () => {
    root = await mkdtemp(join(tmpdir(), 'cluster-tools-check-'));
    expect(clusterToolsCurrent(root)).toBe(false);
    await install(root, clusterToolsStamp());
    expect(clusterToolsCurrent(root)).toBe(true);
    await rm(clusterToolPaths(root).kwok);
    expect(clusterToolsCurrent(root)).toBe(false);
    await install(root, { ...clusterToolsStamp(), flux: 'flux-v1.8.5+1' });
    expect(clusterToolsCurrent(root)).toBe(false);
  });
});
