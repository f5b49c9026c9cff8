/**
 * Where model sources and evaluation datasets may come from (config/sources.yaml), checked the same way at the door
 * and in the activities: a worker must not read any file it happens to be able to read, nor fetch from the
 * services beside it. No Temporal here, so the door and the tests run it as it is.
 */
import { lookup as dnsLookupCallback, type LookupAddress, type LookupOptions } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rootCertificates } from 'node:tls';
import ipaddr from 'ipaddr.js';
import { Agent } from 'undici';
import type { SourcePolicy } from '../../config/schema';
import { parseImageRef, registryHost } from '../scan/image/reference';

export type { SourcePolicy };

/** Whatever the roots say: these hold the process's environment, memory and devices, never a model or a dataset. */
const SYSTEM_DIRS = ['/proc', '/sys', '/dev'];

/** Redirects followed per request; the Hub needs one (to its CDN), a few more leave room for mirrors. */
export const MAX_REDIRECTS = 5;

const WHERE_TO_ADD = {
  roots: 'add a root to config/sources.yaml (roots) or MREL_SOURCE_ROOTS',
  hosts: 'add the host to config/sources.yaml (hosts) or MREL_SOURCE_HOSTS',
  networks: 'add a CIDR that covers it to config/sources.yaml (networks) or MREL_SOURCE_NETWORKS',
};

/** A source or dataset outside what config/sources.yaml allows: permanent, retrying cannot help. */
export class SourceNotAllowedError extends Error {
  readonly code = 'SourceNotAllowed';
  constructor(
    /** The request field, e.g. `model.source` or `evaluation.dataset`. */
    readonly field: string,
    /** What is wrong and what to do, without the field. */
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
    this.name = 'SourceNotAllowedError';
  }
}

export interface FileCheckOptions {
  /** Called for the real path of each root; tests and the door use the default (fs.realpath). */
  realpath?: (path: string) => Promise<string>;
}

/**
 * Checks a local path against the file roots. Returns its real path (symlinks resolved), which the caller should
 * read instead of `path`; undefined when the path does not exist (it lies lexically inside a root, so "not found"
 * tells nothing about the rest of the machine), or cannot be resolved. Throws SourceNotAllowedError otherwise.
 */
export async function checkFilePath(
  path: string,
  policy: SourcePolicy,
  field: string,
  options: FileCheckOptions = {},
): Promise<string | undefined> {
  const toReal = options.realpath ?? realpath;
  if (!isAbsolute(path)) {
    throw new SourceNotAllowedError(field, `${path} is not an absolute path; use file:///absolute/path`);
  }
  const lexical = resolve(path);
  refuseSystemDir(lexical, field, path);
  const roots = await realRoots(policy.roots, toReal);
  const allowed = `allowed file roots (${policy.roots.length > 0 ? policy.roots.join(', ') : 'none'})`;
  let real: string;
  try {
    real = await toReal(lexical);
  } catch {
    // Missing or unreadable: the caller says which, but only about a path inside the roots.
    if (!roots.some((root) => inside(lexical, root.lexical) || inside(lexical, root.real))) {
      throw new SourceNotAllowedError(field, `${path} is outside the ${allowed}; ${WHERE_TO_ADD.roots}`);
    }
    return undefined;
  }
  refuseSystemDir(real, field, path);
  if (!roots.some((root) => inside(real, root.real))) {
    const how = real === lexical ? '' : ' (its real path, with symlinks resolved)';
    throw new SourceNotAllowedError(field, `${path} is outside the ${allowed}${how}; ${WHERE_TO_ADD.roots}`);
  }
  return real;
}

/** `file:` URIs and plain absolute paths alike (a dataset may be either). */
export function localPath(uri: string, field: string): string {
  if (!uri.startsWith('file:')) return uri;
  try {
    return fileURLToPath(uri);
  } catch {
    throw new SourceNotAllowedError(field, `${uri} is not a local file URL; use file:///absolute/path`);
  }
}

function refuseSystemDir(path: string, field: string, given: string): void {
  const dir = SYSTEM_DIRS.find((system) => inside(path, system));
  if (dir) {
    throw new SourceNotAllowedError(
      field,
      `${given} is under ${dir}, which is never a source (it holds the worker's own environment and devices)`,
    );
  }
}

interface Root {
  lexical: string;
  real: string;
}

async function realRoots(roots: readonly string[], toReal: (path: string) => Promise<string>): Promise<Root[]> {
  const out: Root[] = [];
  for (const root of roots) {
    const lexical = resolve(root);
    try {
      out.push({ lexical, real: await toReal(lexical) });
    } catch {
      // A root that does not exist (yet) allows nothing but does not break the others.
    }
  }
  return out;
}

function inside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

export type Lookup = (host: string) => Promise<readonly string[]>;

/** Every address the host resolves to, as the system resolver (and so fetch) sees them. */
export const systemLookup: Lookup = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

export interface UrlCheckOptions {
  lookup?: Lookup;
}

/**
 * Checks an http(s) URL: the scheme, the host against the allowlist, and every address the host resolves to
 * against the private ranges. Throws SourceNotAllowedError; a failed lookup is rethrown as it is (transient to
 * the activity, left to the activity by the door).
 */
export async function checkUrl(
  url: string | URL,
  policy: SourcePolicy,
  field: string,
  options: UrlCheckOptions = {},
): Promise<void> {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    throw new SourceNotAllowedError(field, `${String(url)} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new SourceNotAllowedError(field, `${parsed.protocol} URLs are not fetched (http: and https: only)`);
  }
  const host = hostOf(parsed);
  if (!hostAllowed(host, policy.hosts)) {
    const allowed = policy.hosts.length > 0 ? policy.hosts.join(', ') : 'none';
    throw new SourceNotAllowedError(
      field,
      `host ${host} is not an allowed source host (allowed: ${allowed}); ${WHERE_TO_ADD.hosts}`,
    );
  }
  const addresses = ipaddr.isValid(host) ? [host] : await (options.lookup ?? systemLookup)(host);
  for (const address of addresses) {
    const refused = refusedRange(address, policy.networks);
    if (refused) {
      const what =
        address === host ? `${host} is a ${refused} address` : `${host} resolves to ${address}, a ${refused} address`;
      throw new SourceNotAllowedError(
        field,
        `${what}, refused unless the networks allowlist covers it; ${WHERE_TO_ADD.networks}`,
      );
    }
  }
}

/** The URL's host as the allowlist spells hosts: lower-case, no IPv6 brackets, no trailing dot. */
function hostOf(url: URL): string {
  return url.hostname
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
}

export function hostAllowed(host: string, allowed: readonly string[]): boolean {
  return allowed.some((entry) =>
    entry.startsWith('*.') ? host.endsWith(entry.slice(1)) && host.length > entry.length - 1 : host === entry,
  );
}

const RANGE_NAMES: Record<string, string> = {
  loopback: 'loopback',
  linkLocal: 'link-local',
  private: 'private',
  uniqueLocal: 'private (unique local)',
  carrierGradeNat: 'carrier-grade NAT',
  unspecified: 'unspecified',
  ipv4Mapped: 'IPv4-mapped IPv6',
  multicast: 'multicast',
  broadcast: 'broadcast',
};

/**
 * The name of the non-public range the address lies in, unless a network in the allowlist covers it; undefined
 * for a public unicast address. Anything not plainly public (6to4, Teredo, reserved, …) counts as non-public:
 * such forms can carry an internal address inside them.
 */
export function refusedRange(address: string, networks: readonly string[]): string | undefined {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return 'unparseable';
  }
  const forms: (ipaddr.IPv4 | ipaddr.IPv6)[] = [parsed];
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    forms.push((parsed as ipaddr.IPv6).toIPv4Address());
  }
  for (const network of networks) {
    const [base, bits] = parseNetwork(network);
    if (forms.some((form) => form.kind() === base.kind() && form.match(base, bits))) return undefined;
  }
  const range = parsed.range();
  if (range === 'unicast') return undefined;
  return RANGE_NAMES[range] ?? range;
}

/** A CIDR, or one address as the network of just that address. */
function parseNetwork(network: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  if (ipaddr.isValidCIDR(network)) return ipaddr.parseCIDR(network);
  const address = ipaddr.parse(network);
  return [address, address.kind() === 'ipv4' ? 32 : 128];
}

/**
 * Every problem the source policy has with a request's model source and evaluation dataset, each naming its field:
 * the door's check, so that a refused source is never started. The activities check again (the door can be
 * bypassed, and a symlink can change in between); names that do not resolve here are left to them.
 */
export async function requestSourceProblems(
  request: {
    model: { source: string };
    evaluation?: { dataset: string };
    image?: { ref: string };
    traffic?: unknown;
  },
  policy: SourcePolicy,
  options: UrlCheckOptions & FileCheckOptions = {},
): Promise<string[]> {
  const problems: string[] = [];
  const check = async (field: string, uri: string, datasetOnly: boolean): Promise<void> => {
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(uri)?.[1]?.toLowerCase();
    try {
      if (scheme === 'file' || (datasetOnly && scheme === undefined)) {
        await checkFilePath(localPath(uri, field), policy, field, options);
      } else if (scheme === 'http' || scheme === 'https') {
        if (datasetOnly) throw new SourceNotAllowedError(field, 'only file:// datasets can be read');
        await checkUrl(uri, policy, field, options);
      } else if (datasetOnly) {
        throw new SourceNotAllowedError(field, `${scheme}: datasets are not read (use file:///absolute/path)`);
      }
    } catch (err) {
      if (err instanceof SourceNotAllowedError) problems.push(err.message);
      // Anything else (a host that does not resolve from here) is for the activity to judge where it runs.
    }
  };
  await check('model.source', request.model.source, false);
  if (request.evaluation) await check('evaluation.dataset', request.evaluation.dataset, true);
  // Every other place a request names on the network or the worker's disk: the image's registry, the traffic history.
  const refused = async (run: () => Promise<unknown>): Promise<void> => {
    try {
      await run();
    } catch (err) {
      if (err instanceof SourceNotAllowedError) problems.push(err.message);
    }
  };
  const image = request.image?.ref;
  if (image !== undefined) {
    let registry: string | undefined;
    try {
      registry = registryHost(parseImageRef(image));
    } catch {
      // A reference that does not parse is the image gate's to name.
    }
    if (registry) await refused(() => checkUrl(`https://${registry}/`, policy, 'image.ref', options));
  }
  const history = (request.traffic as { history?: { csv?: unknown; prometheus?: { url?: unknown } } } | undefined)
    ?.history;
  if (typeof history?.csv === 'string' && isAbsolute(history.csv)) {
    const csv = history.csv;
    await refused(() => checkFilePath(csv, policy, 'traffic.history.csv', options));
  }
  const prometheus = history?.prometheus?.url;
  if (typeof prometheus === 'string') {
    await refused(() => checkUrl(prometheus, policy, 'traffic.history.prometheus.url', options));
  }
  return problems;
}

/**
 * A `dns.lookup` for the HTTP client's connections that refuses, at connect time, any address the policy refuses.
 * checkUrl looks the host up before the request; a resolver that answers differently the second time (DNS
 * rebinding: a public address for the check, 127.0.0.1 for the connection) is caught here, where the socket is made.
 */
export function checkedLookup(policy: SourcePolicy, field: string) {
  return (
    hostname: string,
    options: LookupOptions,
    callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookupCallback(hostname, { ...options, all: true, verbatim: true }, (err, entries) => {
      if (err) return callback(err, []);
      const list = entries as LookupAddress[];
      for (const entry of list) {
        const refused = refusedRange(entry.address, policy.networks);
        if (refused) {
          return callback(
            new SourceNotAllowedError(
              field,
              `${hostname} resolved to ${entry.address}, a ${refused} address, when connecting; ${WHERE_TO_ADD.networks}`,
            ),
            [],
          );
        }
      }
      if (options.all) return callback(null, list);
      const first = list[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}

const agents = new WeakMap<SourcePolicy, Map<string, Agent>>();

/**
 * The connection pool for URLs that `field` names: its connections go only to addresses the policy allows (checked at
 * connect time by checkedLookup), trusting the system roots plus `ca` (an internal mirror's CA) when given. One pool
 * per policy, field and CA.
 */
export function pinnedAgent(policy: SourcePolicy, field: string, ca?: string): Agent {
  let byKey = agents.get(policy);
  if (!byKey) agents.set(policy, (byKey = new Map()));
  const key = `${field}\0${ca ?? ''}`;
  let agent = byKey.get(key);
  if (!agent) {
    const lookup = checkedLookup(policy, field);
    agent = new Agent({ connect: ca === undefined ? { lookup } : { lookup, ca: [...rootCertificates, ca] } });
    byKey.set(key, agent);
  }
  return agent;
}

/**
 * `fetch` for a gate that talks to URLs the request names (an image registry and its token service, a Prometheus
 * server): every connection, redirects and token realms included, goes through pinnedAgent, so no answer can send the
 * worker to a loopback, link-local or private address the policy does not allow.
 */
export function policyFetch(policy: SourcePolicy, field: string, base: typeof fetch = fetch): typeof fetch {
  const dispatcher = pinnedAgent(policy, field);
  return (input, init) => base(input, { ...init, dispatcher } as RequestInit);
}
