/**
 * The monitor's way into a cluster: where its kubeconfig comes from, and a small client over
 * `@kubernetes/client-node` that lists, patches and watches single named objects, counting every request it makes
 * (the rollout bench compares them with a poll loop's).
 */
import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { CustomObjectsApi, KubeConfig, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import { ProductError } from '../../contract/errors';
import type { KubeObject } from './rollout-status';

/** Where a worker's service account is mounted in a pod. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export const NO_CLUSTER_REASON =
  'no cluster configured: set MREL_KUBECONFIG (a kubeconfig file) or KUBECONFIG on the release worker, or run it in a cluster';

/** A kubeconfig that cannot be used: the variable or file named, never its content (it holds credentials). */
export class KubeConfigError extends ProductError {
  readonly code = 'InvalidKubeConfig';
  readonly permanent = true;
}

/** The API server answered a request with an error status, or could not be reached (status undefined). */
export class KubeApiError extends ProductError {
  readonly code = 'KubeApiError';
  readonly permanent: boolean;
  constructor(
    message: string,
    readonly status: number | undefined,
    options: { cause?: unknown } = {},
  ) {
    // Missing APIs (the controller's CRDs are not installed) and refused credentials do not heal by waiting.
    super(message, { ...options, details: status === undefined ? {} : { status } });
    this.permanent = status === 401 || status === 403 || status === 404;
  }
}

export type KubeConfigOrigin = 'MREL_KUBECONFIG' | 'KUBECONFIG' | 'in-cluster';

export interface LoadedKubeConfig {
  config: KubeConfig;
  origin: KubeConfigOrigin;
}

/**
 * The cluster the monitor watches: the kubeconfig file named by MREL_KUBECONFIG, else the files of KUBECONFIG
 * (`:`-separated, merged as kubectl does), else the pod's service account when the worker runs in a cluster.
 * Undefined when none is configured. `~/.kube/config` is never read implicitly: a developer's current context must
 * not be watched (and rolled back) by surprise.
 */
export function loadKubeConfig(
  env: NodeJS.ProcessEnv = process.env,
  serviceAccountDir: string = SERVICE_ACCOUNT_DIR,
): LoadedKubeConfig | undefined {
  const own = env.MREL_KUBECONFIG?.trim();
  if (own) return { config: fromFiles('MREL_KUBECONFIG', [own]), origin: 'MREL_KUBECONFIG' };
  const files = (env.KUBECONFIG ?? '').split(delimiter).filter((f) => f.trim() !== '');
  if (files.length > 0) return { config: fromFiles('KUBECONFIG', files), origin: 'KUBECONFIG' };
  if (env.KUBERNETES_SERVICE_HOST && existsSync(`${serviceAccountDir}/token`)) {
    const config = new KubeConfig();
    // loadFromCluster reads the variables from process.env and the files below the prefix it is given.
    const prefix = serviceAccountDir.endsWith(SERVICE_ACCOUNT_DIR)
      ? serviceAccountDir.slice(0, -SERVICE_ACCOUNT_DIR.length)
      : '';
    config.loadFromCluster(prefix);
    return { config, origin: 'in-cluster' };
  }
  return undefined;
}

function fromFiles(variable: string, files: string[]): KubeConfig {
  let config: KubeConfig | undefined;
  for (const file of files) {
    const one = new KubeConfig();
    try {
      one.loadFromFile(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A parser's message quotes the file; only say what kind of trouble it is.
      const why = code
        ? `cannot read it (${code})`
        : 'it is not a valid kubeconfig (YAML with clusters, users, contexts)';
      throw new KubeConfigError(`${variable}: kubeconfig file ${file}: ${why}`, { cause: err });
    }
    if (config === undefined) {
      config = one;
      continue;
    }
    try {
      // The first file's current context wins, as with kubectl.
      config.mergeConfig(one, true);
    } catch (err) {
      throw new KubeConfigError(
        `${variable}: kubeconfig file ${file} repeats a cluster, user or context name of an earlier file: rename it`,
        { cause: err },
      );
    }
  }
  if (config === undefined || config.getCurrentCluster() === null) {
    throw new KubeConfigError(
      `${variable}: the kubeconfig has no current-context naming a cluster: set current-context (kubectl config use-context)`,
    );
  }
  return config;
}

/** An API resource the monitor reads: where it lives and what it is called in messages. */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const RESOURCES = {
  deployment: { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment' },
  inferenceService: {
    group: 'serving.kserve.io',
    version: 'v1beta1',
    plural: 'inferenceservices',
    kind: 'InferenceService',
  },
  kustomization: {
    group: 'kustomize.toolkit.fluxcd.io',
    version: 'v1',
    plural: 'kustomizations',
    kind: 'Kustomization',
  },
  gitRepository: { group: 'source.toolkit.fluxcd.io', version: 'v1', plural: 'gitrepositories', kind: 'GitRepository' },
  application: { group: 'argoproj.io', version: 'v1alpha1', plural: 'applications', kind: 'Application' },
} satisfies Record<string, ResourceType>;

export interface ObjectRef {
  type: ResourceType;
  namespace: string;
  name: string;
}

export function describeRef(ref: ObjectRef): string {
  return `${ref.type.kind} ${ref.namespace}/${ref.name}`;
}

/** One event of a watch, as the API server sends it. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  object: KubeObject & { code?: number; reason?: string; message?: string };
}

export interface WatchHandle {
  abort(): void;
}

/** List, patch and watch of single named objects, with a count of the requests made. */
export class KubeClient {
  /** Requests sent to the API server: lists, gets, patches and watch starts. */
  requests = 0;
  private readonly api: CustomObjectsApi;
  private readonly watcher: Watch;

  constructor(readonly config: KubeConfig) {
    this.api = config.makeApiClient(CustomObjectsApi);
    this.watcher = new Watch(config);
  }

  /** The object (undefined when absent) and the list's resourceVersion, from which a watch misses nothing. */
  async listOne(ref: ObjectRef): Promise<{ object: KubeObject | undefined; resourceVersion: string }> {
    this.requests++;
    const list = (await this.call(ref, 'list', () =>
      this.api.listNamespacedCustomObject({
        ...where(ref),
        fieldSelector: `metadata.name=${ref.name}`,
      }),
    )) as { metadata?: { resourceVersion?: string }; items?: KubeObject[] };
    const resourceVersion = list.metadata?.resourceVersion;
    if (!resourceVersion) throw new KubeApiError(`listing ${describeRef(ref)} returned no resourceVersion`, undefined);
    return { object: list.items?.[0], resourceVersion };
  }

  async get(ref: ObjectRef): Promise<KubeObject | undefined> {
    this.requests++;
    try {
      return (await this.call(ref, 'get', () =>
        this.api.getNamespacedCustomObject({ ...where(ref), name: ref.name }),
      )) as KubeObject;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  async mergePatch(ref: ObjectRef, patch: object): Promise<void> {
    this.requests++;
    await this.call(ref, 'patch', () =>
      this.api.patchNamespacedCustomObject(
        { ...where(ref), name: ref.name, body: patch },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      ),
    );
  }

  /**
   * Watches the one object from `resourceVersion`. `onEvent` gets every event; `onEnd` is called once, with the
   * error when the connection failed or the server refused the watch, with nothing when the server closed it.
   */
  async watch(
    ref: ObjectRef,
    resourceVersion: string,
    timeoutSeconds: number,
    onEvent: (event: WatchEvent) => void,
    onEnd: (err?: KubeApiError) => void,
  ): Promise<WatchHandle> {
    this.requests++;
    const { group, version, plural } = ref.type;
    const path = `/apis/${group}/${version}/namespaces/${encodeURIComponent(ref.namespace)}/${plural}`;
    let ended = false;
    const end = (err?: KubeApiError) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    try {
      const controller = await this.watcher.watch(
        path,
        {
          fieldSelector: `metadata.name=${ref.name}`,
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
        },
        (type, object) => onEvent({ type, object }),
        (err: unknown) => end(err ? apiError(ref, 'watch', err) : undefined),
      );
      return { abort: () => ((ended = true), controller.abort()) };
    } catch (err) {
      end(apiError(ref, 'watch', err));
      return { abort: () => undefined };
    }
  }

  private async call<T>(ref: ObjectRef, verb: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      throw apiError(ref, verb, err);
    }
  }
}

function where(ref: ObjectRef) {
  return { group: ref.type.group, version: ref.type.version, plural: ref.type.plural, namespace: ref.namespace };
}

/**
 * The error as one line a release manager can act on. The client's own message carries the response headers and
 * body; only the status and the API server's `message` field are kept.
 */
export function apiError(ref: ObjectRef, verb: string, err: unknown): KubeApiError {
  if (err instanceof KubeApiError) return err;
  const e = err as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown; name?: unknown };
  const status = typeof e.code === 'number' ? e.code : typeof e.statusCode === 'number' ? e.statusCode : undefined;
  const what = `${verb} ${describeRef(ref)}`;
  if (status === undefined) {
    const cause = typeof e.message === 'string' ? e.message.split('\n')[0] : String(err);
    return new KubeApiError(`${what}: the API server could not be reached: ${cause}`, undefined, { cause: err });
  }
  const said = serverMessage(e.body);
  const hint =
    status === 404 && verb !== 'get'
      ? `: the cluster does not serve ${ref.type.group}/${ref.type.version} ${ref.type.plural}, or ${describeRef(ref)} does not exist (is the controller installed? check the policy's delivery section)`
      : status === 401
        ? ': the kubeconfig credentials were refused'
        : status === 403
          ? `: the kubeconfig's user may not ${verb} ${ref.type.plural} in ${ref.namespace} (grant get, list, watch, patch)`
          : '';
  return new KubeApiError(`${what}: HTTP ${status}${said ? ` ${said}` : ''}${hint}`, status, { cause: err });
}

function serverMessage(body: unknown): string {
  let value = body;
  if (typeof value === 'string') {
    try {
      value = JSON.parse(value);
    } catch {
      return '';
    }
  }
  const message = (value as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message.replace(/\s+/g, ' ').slice(0, 300) : '';
}
