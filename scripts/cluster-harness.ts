/**
 * A real, local Kubernetes control plane and Flux, as processes on 127.0.0.1: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler and kwok (which plays the kubelet of one fake Node, so that pods become
 * Running and Ready and Deployments Available without containers), then Flux's source-controller and
 * kustomize-controller. The delivery tests and `npm run cluster` start it; the programs come from
 * scripts/setup-cluster-tools.mjs (.tools/cluster/).
 *
 * Every process writes its log to a file in the cluster's folder; when one fails to start, the error carries the tail
 * of its log. Processes are stopped by PID, and killed when the Node process that started them exits.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { clusterToolPaths } from './setup-cluster-tools.mjs';

export interface ClusterOptions {
  /** The cluster's folder: etcd data, keys, certificates, kubeconfig and the process logs. Created (0700). */
  dir: string;
  /** Progress lines (each process started, ready); silent when absent. */
  log?: (line: string) => void;
  /** Remove `dir` on stop() (default false: the logs stay for a look after a failure). */
  removeOnStop?: boolean;
  /** The fake Node's allocatable resources (default cpu 32, memory 64Gi, pods 110). */
  node?: { name?: string; cpu?: string; memory?: string; pods?: string };
  /** How long each process may take to become ready (default 60 s: the machine may be busy). */
  readyTimeoutMs?: number;
}

export interface KubectlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface Cluster {
  dir: string;
  /** A kubeconfig file (0600) with the admin token; what KUBECONFIG / MREL_KUBECONFIG point at. */
  kubeconfigPath: string;
  /** The same kubeconfig as YAML text. */
  kubeconfig: string;
  /** `https://127.0.0.1:<port>`. */
  server: string;
  /** A static bearer token in group system:masters. */
  token: string;
  /** PEM of the CA that signed the API server's serving certificate (also in the kubeconfig). */
  caCert: string;
  /** The fake Node's name. */
  nodeName: string;
  /** Creates the namespace unless it exists. */
  ensureNamespace(name: string): Promise<void>;
  /** Runs kubectl (from PATH) against the cluster; never throws on a non-zero exit. */
  kubectl(args: string[], options?: { input?: string; timeoutMs?: number }): Promise<KubectlResult>;
  /** Like kubectl, but throws (with its stderr) unless it exits 0; resolves to stdout. */
  kubectlOk(args: string[], options?: { input?: string; timeoutMs?: number }): Promise<string>;
  /** A request to the API server as admin; resolves to the status and the parsed JSON body (or text). */
  api(method: string, path: string, body?: unknown, contentType?: string): Promise<ApiResponse>;
  /** Server-side apply of one object (field manager `cluster-harness`); resolves to the applied object. */
  apply(object: KubeObject): Promise<ApiObject>;
  /** Stops the API server by PID and starts it again on the same port and etcd; resolves when it is ready. */
  restartApiServer(): Promise<void>;
  /** The PIDs of the running processes, by name. */
  pids(): Record<string, number | undefined>;
  /** Stops every process (by PID, in reverse start order) and, with removeOnStop, removes `dir`. */
  stop(): Promise<void>;
}

/** An object as the API server returns it, with the status fields the harness reads. */
export interface ApiObject {
  metadata?: { name?: string; namespace?: string; generation?: number; [key: string]: unknown };
  status?: {
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface ApiResponse {
  status: number;
  /** The parsed JSON body (an object, or a Status on failure); the text when the body is not JSON. */
  body: ApiObject & { message?: string; resources?: { name: string; kind: string; namespaced: boolean }[] };
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface Flux {
  /** Stops both controllers by PID. */
  stop(): Promise<void>;
  pids(): Record<string, number | undefined>;
}

export interface FluxSyncOptions {
  /** Name of both the GitRepository and the Kustomization. */
  name: string;
  namespace?: string;
  /** The repository's URL as source-controller fetches it (http://127.0.0.1:<port>/<repo>.git). */
  url: string;
  branch?: string;
  /** The folder of the repository Flux builds and applies (`./apps/<model>/overlays/<env>`). */
  path: string;
  /** How often both objects reconcile without being asked (default 10s). */
  interval?: string;
  /** How soon a failed Kustomization is retried (default 2s, so that a path that appears later is applied soon). */
  retryInterval?: string;
  targetNamespace?: string;
  /**
   * Flux's own health wait (default false). With true, the Kustomization turns Ready only once what it applied is
   * healthy, polled every 5 s (hard-coded in kustomize-controller) — slow for tests; the release's monitor stage
   * watches the workload itself, so by default the Kustomization is Ready as soon as the commit is applied.
   */
  wait?: boolean;
}

export interface FluxSyncStatus {
  gitRepository: { ready: boolean; revision?: string; message?: string };
  kustomization: { ready: boolean; lastAppliedRevision?: string; lastAttemptedRevision?: string; message?: string };
}

const NODE_ANNOTATION = 'kwok.x-k8s.io/node';
/**
 * kube-apiserver stops listening within a second of SIGTERM but then lingers for half a minute before it exits;
 * everything it holds is in etcd, so it is killed after this grace.
 */
const API_SERVER_GRACE_MS = 5_000;
const FIELD_MANAGER = 'cluster-harness';

/** Every process a harness started in this Node process, killed at exit so that none outlives a crashed test run. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** Free TCP ports on 127.0.0.1, all held open together so that the kernel hands out distinct ones. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((ok, fail) => {
          const s = createServer();
          s.once('error', fail);
          s.listen(0, '127.0.0.1', () => ok(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  return ports;
}

type Five = [number, number, number, number, number];
type Six = [...Five, number];

function sleep(ms: number): Promise<void> {
  return new Promise((ok) => setTimeout(ok, ms));
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A started process with its log file; `exited` settles when it ends. */
class Proc {
  child: ChildProcess;
  exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly command: string,
    readonly args: string[],
    readonly logFile: string,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    const fd = openSync(logFile, 'a');
    try {
      this.child = spawn(command, args, { stdio: ['ignore', fd, fd], env });
    } finally {
      closeSync(fd);
    }
    running.add(this.child);
    this.exited = new Promise((ok) => {
      this.child.once('exit', (code, signal) => {
        running.delete(this.child);
        ok(code ?? (signal ? -1 : null));
      });
      this.child.once('error', () => {
        running.delete(this.child);
        ok(-1);
      });
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  failure(what: string): Error {
    return new Error(`${this.name} ${what}; the last lines of ${this.logFile}:\n${tail(this.logFile)}`);
  }

  /** SIGTERM by PID, SIGKILL after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** Polls `check` until it returns a value other than undefined; fails with `proc`'s log when it dies or time runs out. */
async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  { timeoutMs, proc, intervalMs = 100 }: { timeoutMs: number; proc?: Proc; intervalMs?: number },
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    if (proc && !proc.alive) throw proc.failure(`exited before ${what}`);
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      if (proc) throw proc.failure(`was not ${what} within ${timeoutMs / 1000} s${why}`);
      throw new Error(`${what}: not within ${timeoutMs / 1000} s${why}`);
    }
    await sleep(intervalMs);
  }
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const req = httpRequest(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', fail);
    req.end();
  });
}

function requireTools(): ReturnType<typeof clusterToolPaths> {
  const tools = clusterToolPaths();
  const missing = [
    tools.etcd,
    tools.kubeApiserver,
    tools.kubeControllerManager,
    tools.kubeScheduler,
    tools.kwok,
  ].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `the cluster's programs are missing from .tools/cluster/ (${missing.map((f) => f.split('/').pop()).join(', ')}): ` +
        'run `node scripts/setup-cluster-tools.mjs` (builds them from the Go module proxy, or copies them from the cache)',
    );
  }
  return tools;
}

function kubeconfigYaml(server: string, caCert: string, token: string): string {
  const ca = Buffer.from(caCert).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: local',
    '    cluster:',
    `      server: ${server}`,
    `      certificate-authority-data: ${ca}`,
    'users:',
    '  - name: admin',
    '    user:',
    `      token: ${token}`,
    'contexts:',
    '  - name: local',
    '    context:',
    '      cluster: local',
    '      user: admin',
    'current-context: local',
    '',
  ].join('\n');
}

/** Starts etcd, the control plane, kwok and one fake Node; resolves when a Deployment can become Available. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const tools = requireTools();
  const dir = resolve(options.dir);
  const log = options.log ?? (() => undefined);
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const started = Date.now();
  const [etcdClient, etcdPeer, apiPort, kcmPort, schedPort, kwokPort] = (await freePorts(6)) as Six;
  const server = `https://127.0.0.1:${apiPort}`;
  const token = randomBytes(24).toString('hex');
  const certDir = join(dir, 'apiserver-certs');
  const paths = {
    tokens: join(dir, 'tokens.csv'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
    kubeconfig: join(dir, 'kubeconfig'),
    servingCert: join(certDir, 'apiserver.crt'),
  };
  await mkdir(certDir, { recursive: true, mode: 0o700 });
  await writeFile(paths.tokens, `${token},admin,admin,system:masters\n`, { mode: 0o600 });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  await writeFile(paths.saKey, privateKey, { mode: 0o600 });
  await writeFile(paths.saPub, publicKey, { mode: 0o600 });

  const procs: Proc[] = [];
  const stopAll = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await p.stop(p.name === 'kube-apiserver' ? API_SERVER_GRACE_MS : undefined);
  };
  try {
    const etcd = new Proc(
      'etcd',
      tools.etcd,
      [
        '--name=local',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
        `--initial-cluster=local=http://127.0.0.1:${etcdPeer}`,
        '--listen-metrics-urls=',
        '--log-level=warn',
      ],
      join(dir, 'etcd.log'),
    );
    procs.push(etcd);
    await waitFor(
      'ready',
      async () => {
        const res = await httpGet(`http://127.0.0.1:${etcdClient}/health`);
        return res.status === 200 && res.body.includes('true') ? true : undefined;
      },
      { timeoutMs, proc: etcd },
    );
    log(`etcd ready on 127.0.0.1:${etcdClient}`);

    const apiArgs = [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${certDir}`,
      // The default reconciler refuses a loopback address for the `kubernetes` Service's endpoints.
      '--endpoint-reconciler-type=none',
      '--service-cluster-ip-range=10.96.0.0/16',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${paths.saPub}`,
      `--service-account-signing-key-file=${paths.saKey}`,
      `--token-auth-file=${paths.tokens}`,
      '--authorization-mode=RBAC',
      '--anonymous-auth=false',
      '--allow-privileged=true',
      '--profiling=false',
    ];
    const startApi = (): Proc =>
      new Proc('kube-apiserver', tools.kubeApiserver, apiArgs, join(dir, 'kube-apiserver.log'));
    let apiserver = startApi();
    procs.push(apiserver);
    const caCert = await waitFor(
      'writing its serving certificate',
      async () => (existsSync(paths.servingCert) ? readFile(paths.servingCert, 'utf8') : undefined),
      { timeoutMs, proc: apiserver },
    );
    const kubeconfig = kubeconfigYaml(server, caCert, token);
    await writeFile(paths.kubeconfig, kubeconfig, { mode: 0o600 });

    const api: Cluster['api'] = (method, path, body, contentType = 'application/json') =>
      new Promise((ok, fail) => {
        const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
        const req = httpsRequest(
          `${server}${path}`,
          {
            method,
            ca: caCert,
            timeout: 30_000,
            headers: {
              authorization: `Bearer ${token}`,
              accept: 'application/json',
              ...(payload === undefined ? {} : { 'content-type': contentType }),
            },
          },
          (res) => {
            let text = '';
            res.on('data', (c: Buffer) => (text += c.toString()));
            res.on('end', () => {
              let parsed: unknown = text;
              try {
                parsed = JSON.parse(text);
              } catch {
                // not JSON (readyz answers text)
              }
              ok({ status: res.statusCode ?? 0, body: parsed as ApiResponse['body'] });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
        req.on('error', fail);
        req.end(payload);
      });

    const waitApiReady = async (proc: Proc): Promise<void> => {
      await waitFor(
        'ready (/readyz)',
        async () => {
          const res = await api('GET', '/readyz');
          return res.status === 200 ? true : undefined;
        },
        { timeoutMs, proc, intervalMs: 200 },
      );
    };
    await waitApiReady(apiserver);
    log(`kube-apiserver ready at ${server} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    const componentArgs = (port: number): string[] => [
      `--kubeconfig=${paths.kubeconfig}`,
      `--authentication-kubeconfig=${paths.kubeconfig}`,
      `--authorization-kubeconfig=${paths.kubeconfig}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${port}`,
      '--leader-elect=false',
    ];
    const kcm = new Proc(
      'kube-controller-manager',
      tools.kubeControllerManager,
      [
        ...componentArgs(kcmPort),
        `--service-account-private-key-file=${paths.saKey}`,
        `--root-ca-file=${paths.servingCert}`,
        '--controllers=*',
        '--profiling=false',
      ],
      join(dir, 'kube-controller-manager.log'),
    );
    procs.push(kcm);
    const scheduler = new Proc(
      'kube-scheduler',
      tools.kubeScheduler,
      [...componentArgs(schedPort), '--profiling=false'],
      join(dir, 'kube-scheduler.log'),
    );
    procs.push(scheduler);
    const kwok = new Proc(
      'kwok',
      tools.kwok,
      [
        `--kubeconfig=${paths.kubeconfig}`,
        `--config=${tools.kwokStages}`,
        `--manage-nodes-with-annotation-selector=${NODE_ANNOTATION}=fake`,
        '--cidr=10.244.0.0/24',
        '--node-ip=127.0.0.1',
        `--server-address=127.0.0.1:${kwokPort}`,
      ],
      join(dir, 'kwok.log'),
    );
    procs.push(kwok);

    const nodeName = options.node?.name ?? 'kwok-node-0';
    const resources = {
      cpu: options.node?.cpu ?? '32',
      memory: options.node?.memory ?? '64Gi',
      pods: options.node?.pods ?? '110',
    };
    const apply: Cluster['apply'] = async (object) => {
      const path = await resourcePath(api, object);
      const res = await api(
        'PATCH',
        `${path}?fieldManager=${FIELD_MANAGER}&force=true`,
        object,
        'application/apply-patch+yaml',
      );
      if (res.status >= 300) {
        throw new Error(`applying ${object.kind} ${object.metadata.name}: ${res.status} ${apiMessage(res.body)}`);
      }
      return res.body;
    };
    await apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: nodeName,
        annotations: { [NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
        labels: { type: 'kwok', 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux' },
      },
      spec: {},
      status: { allocatable: resources, capacity: resources },
    });
    // Effects rather than health endpoints: /healthz answers before the controllers and kwok do anything.
    await waitFor(
      'marking the fake Node Ready',
      async () => {
        const res = await api('GET', `/api/v1/nodes/${nodeName}`);
        const ready = res.body?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
        return ready?.status === 'True' ? true : undefined;
      },
      { timeoutMs, proc: kwok, intervalMs: 100 },
    );
    await waitFor(
      'creating the default ServiceAccount',
      async () =>
        (await api('GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200 ? true : undefined,
      { timeoutMs, proc: kcm, intervalMs: 100 },
    );
    if (!scheduler.alive) throw scheduler.failure('exited');
    log(`control plane, kwok and Node ${nodeName} ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);

    const kubectl: Cluster['kubectl'] = (args, opts = {}) =>
      new Promise((ok) => {
        const child = execFile(
          'kubectl',
          [`--kubeconfig=${paths.kubeconfig}`, ...args],
          { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env: kubectlEnv() },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            ok({ stdout, stderr: err && code === 1 && !stderr ? err.message : stderr, code });
          },
        );
        if (opts.input !== undefined) child.stdin?.end(opts.input);
      });
    const kubectlOk: Cluster['kubectlOk'] = async (args, opts) => {
      const res = await kubectl(args, opts);
      if (res.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (exit ${res.code}): ${res.stderr.trim()}`);
      return res.stdout;
    };

    let stopped = false;
    return {
      dir,
      kubeconfigPath: paths.kubeconfig,
      kubeconfig,
      server,
      token,
      caCert,
      nodeName,
      api,
      apply,
      kubectl,
      kubectlOk,
      async ensureNamespace(name) {
        const res = await api('POST', '/api/v1/namespaces', {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name },
        });
        if (res.status >= 300 && res.status !== 409) {
          throw new Error(`creating namespace ${name}: ${res.status} ${apiMessage(res.body)}`);
        }
      },
      async restartApiServer() {
        const at = procs.indexOf(apiserver);
        await apiserver.stop(API_SERVER_GRACE_MS);
        apiserver = startApi();
        procs[at] = apiserver;
        await waitApiReady(apiserver);
        log('kube-apiserver restarted');
      },
      pids: () => Object.fromEntries(procs.map((p) => [p.name, p.alive ? p.child.pid : undefined])),
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopAll();
        if (options.removeOnStop) await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** kubectl without the user's own cluster settings leaking in. */
function kubectlEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.KUBECONFIG;
  return env;
}

function apiMessage(body: unknown): string {
  if (body && typeof body === 'object' && 'message' in body) return String((body as { message: unknown }).message);
  return typeof body === 'string' ? body.slice(0, 300) : '';
}

const pluralCache = new Map<string, { plural: string; namespaced: boolean }>();

/** The REST path of an object, from the API server's discovery of its group version. */
async function resourcePath(api: Cluster['api'], object: KubeObject): Promise<string> {
  const key = `${object.apiVersion}/${object.kind}`;
  let found = pluralCache.get(key);
  if (!found) {
    const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
    const res = await api('GET', base);
    const resource = (res.body?.resources ?? []).find(
      (r: { kind: string; name: string }) => r.kind === object.kind && !r.name.includes('/'),
    );
    if (!resource) throw new Error(`the API server does not serve ${object.kind} in ${object.apiVersion}`);
    found = { plural: resource.name, namespaced: resource.namespaced };
    pluralCache.set(key, found);
  }
  const base = object.apiVersion.includes('/') ? `/apis/${object.apiVersion}` : `/api/${object.apiVersion}`;
  const ns = found.namespaced ? `/namespaces/${object.metadata.namespace ?? 'default'}` : '';
  return `${base}${ns}/${found.plural}/${object.metadata.name}`;
}

/**
 * Applies Flux's CRDs (server-side; waits until they are Established), creates namespace flux-system and starts
 * source-controller and kustomize-controller against the cluster, every address on 127.0.0.1.
 */
export async function startFlux(
  cluster: Cluster,
  options: { dir: string; log?: (line: string) => void; readyTimeoutMs?: number },
): Promise<Flux> {
  const tools = clusterToolPaths();
  const missing = [tools.sourceController, tools.kustomizeController, tools.fluxCrds].filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new Error(
      `Flux is missing from .tools/cluster/ (${missing.map((f) => f.split('/').pop()).join(', ')}): ` +
        'run `node scripts/setup-cluster-tools.mjs`',
    );
  }
  const dir = resolve(options.dir);
  const log = options.log ?? (() => undefined);
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  // source-controller refuses a storage folder that does not exist yet.
  await mkdir(join(dir, 'source-storage'), { recursive: true, mode: 0o700 });
  await cluster.kubectlOk(['apply', '--server-side', `--field-manager=${FIELD_MANAGER}`, '-f', tools.fluxCrds]);
  await cluster.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', '-f', tools.fluxCrds]);
  await cluster.ensureNamespace('flux-system');
  const [srcMetrics, srcHealth, storage, kusMetrics, kusHealth] = (await freePorts(5)) as Five;
  const env = { ...process.env, KUBECONFIG: cluster.kubeconfigPath };
  const common = [
    '--watch-all-namespaces=true',
    '--enable-leader-election=false',
    '--log-level=info',
    '--events-addr=',
  ];
  const source = new Proc(
    'source-controller',
    tools.sourceController,
    [
      ...common,
      `--metrics-addr=127.0.0.1:${srcMetrics}`,
      `--health-addr=127.0.0.1:${srcHealth}`,
      `--storage-path=${join(dir, 'source-storage')}`,
      `--storage-addr=127.0.0.1:${storage}`,
      `--storage-adv-addr=127.0.0.1:${storage}`,
    ],
    join(dir, 'source-controller.log'),
    env,
  );
  const kustomize = new Proc(
    'kustomize-controller',
    tools.kustomizeController,
    [...common, `--metrics-addr=127.0.0.1:${kusMetrics}`, `--health-addr=127.0.0.1:${kusHealth}`],
    join(dir, 'kustomize-controller.log'),
    env,
  );
  const procs = [source, kustomize];
  const stop = async (): Promise<void> => {
    for (const p of [...procs].reverse()) await p.stop();
  };
  try {
    for (const [proc, port] of [
      [source, srcHealth],
      [kustomize, kusHealth],
    ] as const) {
      await waitFor(
        'ready (/readyz)',
        async () => ((await httpGet(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined),
        { timeoutMs, proc, intervalMs: 200 },
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  log('Flux source-controller and kustomize-controller running');
  return { stop, pids: () => Object.fromEntries(procs.map((p) => [p.name, p.alive ? p.child.pid : undefined])) };
}

/** Creates (or updates) a GitRepository and a Kustomization, both named `options.name`. */
/**
 * One fake node (managed by kwok) per CPU instance type of a price catalog, labelled as a cloud provider labels its
 * nodes (`node.kubernetes.io/instance-type`, `topology.kubernetes.io/region`): the cost gate pins each release to the
 * type it priced, so its pods schedule only where such a node exists. Each node has room for every pod a local run
 * makes: what is tested is where a release is pinned, not how full a node gets. Returns the node names.
 */
export async function addCatalogNodes(cluster: Cluster, pricingFile: string): Promise<string[]> {
  const catalog = parseYaml(await readFile(pricingFile, 'utf8')) as {
    instanceTypes?: { name?: unknown; region?: unknown; gpu?: unknown }[];
  };
  const resources = { cpu: '64', memory: '256Gi', pods: '110' };
  const names: string[] = [];
  for (const type of catalog.instanceTypes ?? []) {
    if (typeof type.name !== 'string' || typeof type.region !== 'string' || type.gpu !== undefined) continue;
    const name = `kwok-${type.name.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`;
    await cluster.apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        annotations: { [NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
        labels: {
          type: 'kwok',
          'kubernetes.io/hostname': name,
          'kubernetes.io/os': 'linux',
          'node.kubernetes.io/instance-type': type.name,
          'topology.kubernetes.io/region': type.region,
        },
      },
      spec: {},
      status: { allocatable: resources, capacity: resources },
    });
    names.push(name);
  }
  return names;
}

export async function addFluxSync(cluster: Cluster, options: FluxSyncOptions): Promise<void> {
  const namespace = options.namespace ?? 'flux-system';
  await cluster.ensureNamespace(namespace);
  const interval = options.interval ?? '10s';
  await cluster.apply({
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind: 'GitRepository',
    metadata: { name: options.name, namespace },
    spec: { url: options.url, ref: { branch: options.branch ?? 'main' }, interval, timeout: '20s' },
  });
  await cluster.apply({
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    metadata: { name: options.name, namespace },
    spec: {
      interval,
      retryInterval: options.retryInterval ?? '2s',
      path: options.path,
      prune: true,
      wait: options.wait ?? false,
      timeout: '2m',
      sourceRef: { kind: 'GitRepository', name: options.name },
      ...(options.targetNamespace ? { targetNamespace: options.targetNamespace } : {}),
    },
  });
}

/**
 * Asks Flux to fetch and apply now (the `reconcile.fluxcd.io/requestedAt` annotation `flux reconcile` sets) on the
 * GitRepository and the Kustomization named `name`.
 */
export async function requestFluxReconcile(cluster: Cluster, name: string, namespace = 'flux-system'): Promise<void> {
  const at = new Date().toISOString();
  const patch = { metadata: { annotations: { 'reconcile.fluxcd.io/requestedAt': at } } };
  for (const path of [
    `/apis/source.toolkit.fluxcd.io/v1/namespaces/${namespace}/gitrepositories/${name}`,
    `/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${namespace}/kustomizations/${name}`,
  ]) {
    const res = await cluster.api('PATCH', path, patch, 'application/merge-patch+json');
    if (res.status >= 300) throw new Error(`annotating ${path}: ${res.status} ${apiMessage(res.body)}`);
  }
}

/** The Ready state and revisions of the GitRepository and Kustomization named `name`. */
export async function fluxSyncStatus(
  cluster: Cluster,
  name: string,
  namespace = 'flux-system',
): Promise<FluxSyncStatus> {
  const get = async (path: string): Promise<ApiObject | undefined> => {
    const res = await cluster.api('GET', path);
    return res.status === 200 ? res.body : undefined;
  };
  const ready = (obj: ApiObject | undefined): { ready: boolean; message?: string } => {
    const c = obj?.status?.conditions?.find((x) => x.type === 'Ready');
    return { ready: c?.status === 'True', ...(c?.message ? { message: c.message } : {}) };
  };
  const text = (value: unknown): string | undefined => (typeof value === 'string' && value ? value : undefined);
  const repo = await get(`/apis/source.toolkit.fluxcd.io/v1/namespaces/${namespace}/gitrepositories/${name}`);
  const ks = await get(`/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/${namespace}/kustomizations/${name}`);
  const revision = text((repo?.status?.artifact as { revision?: unknown } | undefined)?.revision);
  const lastAppliedRevision = text(ks?.status?.lastAppliedRevision);
  const lastAttemptedRevision = text(ks?.status?.lastAttemptedRevision);
  return {
    gitRepository: { ...ready(repo), ...(revision ? { revision } : {}) },
    kustomization: {
      ...ready(ks),
      ...(lastAppliedRevision ? { lastAppliedRevision } : {}),
      ...(lastAttemptedRevision ? { lastAttemptedRevision } : {}),
    },
  };
}
/** Polls `check` every `intervalMs` until it returns a value other than undefined, for at most `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  { timeoutMs = 60_000, intervalMs = 250 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  return waitFor(what, check, { timeoutMs, intervalMs });
}
