/**
 * The release as a KServe InferenceService (serving.kserve.io/v1beta1), for environments whose policy serves with
 * KServe. The predictor is a custom container on the serving image, with the model mounted exactly as the Deployment
 * mounts it (an image volume, or an init container that pulls it), rather than `storageUri: oci://…`: KServe runs
 * an `oci://` model as a modelcar, a sidecar that must be a runnable image with a shell and the model under /models,
 * and a ModelPack artifact is neither. KServe's own model path (/mnt/models) is kept, so serving images built for
 * KServe find the model where they look.
 */
import type { DeploymentSizing } from '../../contract/types';
import type { Container, EnvVar, InferenceService, Volume, VolumeMount } from './k8s-types';

/** KServe finds the predictor's serving container by this name (its storage and modelcar injection look for it). */
export const KSERVE_CONTAINER_NAME = 'kserve-container';

/** What the serving pod of a release with a delivery runs and mounts, alike for a Deployment and an InferenceService. */
export interface ServingPod {
  image: string;
  env: EnvVar[];
  initContainers?: Container[];
  volumes?: Volume[];
  /** The serving container's mounts. */
  volumeMounts?: VolumeMount[];
}

export interface InferenceServiceParts {
  name: string;
  /** Labels of the InferenceService, sorted. */
  labels: Record<string, string>;
  /** Labels of its pods (cost allocation), sorted. */
  podLabels: Record<string, string>;
  /** The `policy.modelrelease.io/…` annotations, sorted. */
  annotations: Record<string, string>;
  sizing: DeploymentSizing;
  pod: ServingPod;
  port: number;
}

export function inferenceService(parts: InferenceServiceParts): InferenceService {
  const { sizing, pod } = parts;
  const replicas = sizing.replicas ?? 1;
  const container: Container = {
    name: KSERVE_CONTAINER_NAME,
    image: pod.image,
    env: pod.env,
    // Unnamed, and probed by number: Knative (KServe's serverless mode) accepts only `http1`/`h2c` as port names and
    // only the serving port as a probe's.
    ports: [{ containerPort: parts.port, protocol: 'TCP' }],
    readinessProbe: { httpGet: { path: '/healthz', port: parts.port }, initialDelaySeconds: 5, periodSeconds: 10 },
  };
  if (sizing.resources) {
    container.resources = {
      ...(sizing.resources.requests ? { requests: sorted(sizing.resources.requests) } : {}),
      ...(sizing.resources.limits ? { limits: sorted(sizing.resources.limits) } : {}),
    };
  }
  if (pod.volumeMounts) container.volumeMounts = pod.volumeMounts;
  return {
    apiVersion: 'serving.kserve.io/v1beta1',
    kind: 'InferenceService',
    metadata: { name: parts.name, labels: parts.labels, annotations: parts.annotations },
    spec: {
      predictor: {
        // The replicas the cost gate sized, fixed as a Deployment's are: the budget was approved for that many.
        minReplicas: replicas,
        maxReplicas: replicas,
        labels: parts.podLabels,
        ...(pod.initContainers ? { initContainers: pod.initContainers } : {}),
        containers: [container],
        ...(sizing.nodeSelector ? { nodeSelector: sorted(sizing.nodeSelector) } : {}),
        ...(pod.volumes ? { volumes: pod.volumes } : {}),
      },
    },
  };
}

function sorted(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
