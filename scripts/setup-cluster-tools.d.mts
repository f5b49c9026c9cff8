// Types of scripts/setup-cluster-tools.mjs for the harness and tests that import it (the script runs on plain Node).

export const CLUSTER_TOOLS: Record<'kubernetes' | 'etcd' | 'kwok' | 'flux', { module: string; version: string }>;
export function clusterToolPaths(projectRoot?: string): {
  dir: string;
  bin: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  etcd: string;
  kwok: string;
  sourceController: string;
  kustomizeController: string;
  kwokStages: string;
  fluxCrds: string;
  kubernetesVersion: string;
  stamp: string;
};
export function clusterToolsStamp(): Record<'kubernetes' | 'etcd' | 'kwok' | 'flux', string>;
export function clusterToolsCurrent(projectRoot?: string): boolean;
export function replaceDirectives(goMod: string): { from: string; to: string }[];
export function requiredAt(goMod: string, version: string): string[];
export function kubernetesHelperGoMod(kubernetesGoMod: string, version?: string): string;
export function fluxHelperGoMod(controller: string, controllerGoMod: string, version?: string): string;
