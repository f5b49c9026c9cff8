/**
 * The part of the Kubernetes API (apps/v1 Deployment, v1 Service), of KServe's serving.kserve.io/v1beta1
 * InferenceService and of kustomize's Kustomization that the renderer writes, typed after the upstream API so that a misspelt or misplaced field fails the type check instead of the
 * rollout. Field names and nesting follow k8s.io/api; only what the GitOps layout uses is declared. The rendered
 * objects are validated against the real Kubernetes schemas in the tests (kubeconform, strict).
 */

/** An int32 or a named port: `targetPort: http`. */
export type IntOrString = number | string;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface LabelSelector {
  matchLabels: Record<string, string>;
}

export interface EnvVar {
  name: string;
  value: string;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

export interface HTTPGetAction {
  path?: string;
  port: IntOrString;
}

export interface Probe {
  httpGet?: HTTPGetAction;
  initialDelaySeconds?: number;
  periodSeconds?: number;
}

/** Quantities are written as strings (`"2"`, `4Gi`): the API server normalises them, YAML would not keep `2.50`. */
export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  readinessProbe?: Probe;
  resources?: ResourceRequirements;
  volumeMounts?: VolumeMount[];
}

/** An OCI image or artifact mounted read-only as a volume (Kubernetes' ImageVolumeSource, KServe modelcars' way). */
export interface ImageVolumeSource {
  reference: string;
  pullPolicy?: 'Always' | 'Never' | 'IfNotPresent';
}

/** The two kinds of volume the renderer writes: the model as an image volume, or scratch space an init container fills. */
export type Volume = { name: string; image: ImageVolumeSource } | { name: string; emptyDir: Record<string, never> };

export interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  nodeSelector?: Record<string, string>;
  volumes?: Volume[];
}

export interface PodTemplateSpec {
  metadata: Omit<ObjectMeta, 'name'>;
  spec: PodSpec;
}

export interface DeploymentSpec {
  replicas?: number;
  progressDeadlineSeconds?: number;
  selector: LabelSelector;
  template: PodTemplateSpec;
}

export interface Deployment {
  apiVersion: 'apps/v1';
  kind: 'Deployment';
  metadata: ObjectMeta;
  spec: DeploymentSpec;
}

export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: IntOrString;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

export interface ServiceSpec {
  selector: Record<string, string>;
  ports: ServicePort[];
}

export interface Service {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: ObjectMeta;
  spec: ServiceSpec;
}

/**
 * A strategic-merge patch of a Deployment: containers are merged by name, so a patch names the container and only the
 * fields it sets; the selector is the base's and never patched.
 */
export interface DeploymentPatch {
  apiVersion: 'apps/v1';
  kind: 'Deployment';
  metadata: ObjectMeta;
  spec: {
    replicas?: number;
    progressDeadlineSeconds?: number;
    template: {
      metadata: Omit<ObjectMeta, 'name'>;
      spec: {
        initContainers?: Container[];
        containers: (Partial<Container> & Pick<Container, 'name'>)[];
        nodeSelector?: Record<string, string>;
        volumes?: Volume[];
      };
    };
  };
}

/**
 * KServe's predictor with a custom container: the pod spec fields (containers, init containers, volumes, node
 * selector) inline, plus the replicas and the labels its pods carry.
 */
export interface PredictorSpec {
  minReplicas?: number;
  maxReplicas?: number;
  labels?: Record<string, string>;
  initContainers?: Container[];
  containers: Container[];
  nodeSelector?: Record<string, string>;
  volumes?: Volume[];
}

/** serving.kserve.io/v1beta1 InferenceService (KServe). */
export interface InferenceService {
  apiVersion: 'serving.kserve.io/v1beta1';
  kind: 'InferenceService';
  metadata: ObjectMeta;
  spec: { predictor: PredictorSpec };
}

/** kustomize's kustomization file (kustomize.config.k8s.io/v1beta1). */
export interface Kustomization {
  apiVersion: 'kustomize.config.k8s.io/v1beta1';
  kind: 'Kustomization';
  namespace?: string;
  resources: string[];
  patches?: { path: string }[];
}
