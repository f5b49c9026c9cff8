// Types of scripts/setup-kube-tools.mjs for the tests that import it (the script itself runs on plain Node).

export const KUBE_TOOLS: Record<'kustomize' | 'kubeconform', { module: string; version: string }>;
export const KUBERNETES_VERSION: string;
export function kubeToolPaths(projectRoot?: string): {
  kustomize: string;
  kubeconform: string;
  schemas: string;
  kubernetesVersion: string;
  stamp: string;
};
export function kubeToolsCurrent(projectRoot?: string): boolean;
export function schemaFileName(kind: string, apiVersion: string): string;
export function kubeconformSchemas(openapi: {
  definitions?: Record<string, unknown>;
}): Map<string, Record<string, unknown>>;
