#!/usr/bin/env node
// The Kubernetes tools the GitOps tests run on every rendered overlay (test/gitops), built and generated from the Go
// module proxy, the one place these machines can get them from:
//   - kustomize (`kustomize build`, as Flux and Argo CD do) and kubeconform, each `go install`ed at a pinned version;
//   - the JSON schemas kubeconform validates against, in its `-schema-location` folder layout
//     (`v<k8s version>-standalone-strict/<kind>-<group>-<version>.json`), generated here from the OpenAPI v2 spec
//     (`api/openapi-spec/swagger.json`) of the pinned k8s.io/kubernetes module; kubeconform would otherwise download
//     them;
//   - the same for KServe's InferenceService (`inferenceservice-serving-v1beta1.json`), converted from the CRD's
//     openAPIV3Schema that the pinned github.com/kserve/kserve module ships (`config/crd/full/…`).
// Everything lands in .tools/ (ignored by git). Built binaries and schemas are also kept in a per-user cache outside
// the clone (~/.cache/modelrelease/kube-tools, or $MODELRELEASE_TOOLS_CACHE), keyed by version, so a fresh clone of
// the same machine copies them in a fraction of a second instead of building for two minutes. A no-op when .tools/
// already holds the pinned versions: it only looks at files.
//
//   node scripts/setup-kube-tools.mjs           # provide what is missing (needs `go` on PATH when not cached)
//   node scripts/setup-kube-tools.mjs --check   # only report what is missing (exit 1 when something is)
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { copyWhole, fillWhole, goRunner, reporter, stampCurrent, toolsCacheRoot, writeStamp } from './tools-cache.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Pinned tools: versions the Go module proxy serves and that build with the machine's Go (1.26). */
export const KUBE_TOOLS = {
  kustomize: { module: 'sigs.k8s.io/kustomize/kustomize/v5', version: 'v5.8.1' },
  kubeconform: { module: 'github.com/yannh/kubeconform/cmd/kubeconform', version: 'v0.7.0' },
};
/** The Kubernetes release whose API the rendered objects are validated against (the one the cluster notes build). */
export const KUBERNETES_VERSION = 'v1.37.2';
/** KServe, whose InferenceService the renderer writes for environments that serve with KServe; its module ships the CRDs. */
export const KSERVE = {
  module: 'github.com/kserve/kserve',
  version: 'v0.17.0',
  crds: ['config/crd/full/serving.kserve.io_inferenceservices.yaml'],
};
/** Bumped whenever the schema conversion below changes, so that cached schemas are regenerated. */
const SCHEMA_GENERATOR = 3;

/** Where the tools and schemas are, and what the test passes to kubeconform. */
export function kubeToolPaths(projectRoot = root) {
  const tools = join(projectRoot, '.tools');
  return {
    kustomize: join(tools, 'bin', 'kustomize'),
    kubeconform: join(tools, 'bin', 'kubeconform'),
    /** kubeconform's `-schema-location`. */
    schemas: join(tools, 'kube-schemas'),
    /** kubeconform's `-kubernetes-version` (without the `v`). */
    kubernetesVersion: KUBERNETES_VERSION.replace(/^v/, ''),
    stamp: join(tools, 'kube-tools.json'),
  };
}

function expectedStamp() {
  return {
    kustomize: KUBE_TOOLS.kustomize.version,
    kubeconform: KUBE_TOOLS.kubeconform.version,
    schemas: `${KUBERNETES_VERSION}+${SCHEMA_GENERATOR}`,
    kserve: KSERVE.version,
  };
}

/** True when .tools/ holds the pinned tools and schemas. Looks at files only. */
export function kubeToolsCurrent(projectRoot = root) {
  const paths = kubeToolPaths(projectRoot);
  return stampCurrent(paths.stamp, expectedStamp(), [
    paths.kustomize,
    paths.kubeconform,
    join(paths.schemas, schemaFolder(), 'deployment-apps-v1.json'),
    join(paths.schemas, schemaFolder(), 'inferenceservice-serving-v1beta1.json'),
  ]);
}

function schemaFolder() {
  return `${KUBERNETES_VERSION}-standalone-strict`;
}

/** kubeconform's file name for a kind of an API version: `deployment-apps-v1.json`, `service-v1.json`. */
export function schemaFileName(kind, apiVersion) {
  const [groupOrVersion, version] = apiVersion.split('/');
  const suffix = `-${groupOrVersion.split('.')[0].toLowerCase()}${version === undefined ? '' : `-${version.toLowerCase()}`}`;
  return `${kind.toLowerCase()}${suffix}.json`;
}

const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

/**
 * The standalone, strict JSON schemas of every kind in a Kubernetes OpenAPI v2 document, by kubeconform file name.
 * As kubeconform's published schemas (openapi2jsonschema): `int-or-string` becomes string-or-integer, every object
 * with properties refuses unknown ones (strict: a misspelt field fails), `apiVersion` and `kind` must be the kind's
 * own. Quantities accept numbers as the API server does. Each file carries the definitions it refers to, so it
 * stands alone (no reference leaves the file).
 */
export function kubeconformSchemas(openapi) {
  const definitions = openapi.definitions ?? {};
  const converted = new Map();
  const convert = (name) => {
    if (!converted.has(name)) {
      const def = definitions[name];
      if (def === undefined) throw new Error(`the OpenAPI document refers to ${name}, which it does not define`);
      converted.set(name, name === QUANTITY ? quantitySchema(def) : strict(intOrString(stripExtensions(def))));
    }
    return converted.get(name);
  };
  const schemas = new Map();
  for (const [name, def] of Object.entries(definitions)) {
    const kinds = def['x-kubernetes-group-version-kind'];
    // Only objects of one kind are written to a repository (DeleteOptions and WatchEvent list every group).
    if (!Array.isArray(kinds) || kinds.length !== 1) continue;
    const { group, version, kind } = kinds[0];
    const apiVersion = group ? `${group}/${version}` : version;
    const file = schemaFileName(kind, apiVersion);
    if (schemas.has(file)) continue;
    const closure = new Set();
    const visit = (schemaName) => {
      if (closure.has(schemaName)) return;
      closure.add(schemaName);
      for (const ref of refsOf(convert(schemaName))) visit(ref);
    };
    visit(name);
    const top = structuredClone(convert(name));
    if (top.properties?.apiVersion) top.properties.apiVersion = { ...top.properties.apiVersion, enum: [apiVersion] };
    if (top.properties?.kind) top.properties.kind = { ...top.properties.kind, enum: [kind] };
    closure.delete(name);
    schemas.set(file, {
      $schema: 'http://json-schema.org/draft-07/schema#',
      ...top,
      definitions: Object.fromEntries([...closure].sort().map((n) => [n, convert(n)])),
    });
  }
  return schemas;
}

/**
 * The standalone, strict JSON schemas of a CustomResourceDefinition's served versions, by kubeconform file name, as
 * kubeconform's openapi2jsonschema converts CRDs: `x-kubernetes-int-or-string` becomes string-or-integer, `nullable`
 * admits null, every object with properties refuses unknown ones unless the CRD preserves unknown fields there, and
 * `apiVersion` and `kind` must be the kind's own.
 */
export function crdSchemas(crd) {
  const { group, names, versions } = crd.spec ?? {};
  if (typeof group !== 'string' || typeof names?.kind !== 'string' || !Array.isArray(versions)) {
    throw new Error('not a CustomResourceDefinition: spec.group, spec.names.kind or spec.versions is missing');
  }
  const schemas = new Map();
  for (const version of versions) {
    const schema = version.schema?.openAPIV3Schema;
    if (!version.served || schema === undefined) continue;
    const apiVersion = `${group}/${version.name}`;
    const top = crdNode(schema);
    top.properties = {
      ...top.properties,
      apiVersion: { type: 'string', enum: [apiVersion] },
      kind: { type: 'string', enum: [names.kind] },
    };
    schemas.set(schemaFileName(names.kind, apiVersion), { $schema: 'http://json-schema.org/draft-07/schema#', ...top });
  }
  return schemas;
}

function crdNode(schema) {
  if (Array.isArray(schema)) return schema.map(crdNode);
  if (schema === null || typeof schema !== 'object') return schema;
  if (schema['x-kubernetes-int-or-string'] === true) return { oneOf: [{ type: 'string' }, { type: 'integer' }] };
  const out = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-kubernetes-') || key === 'description' || key === 'nullable') continue;
    out[key] = key === 'properties' ? mapValues(value, crdNode) : crdNode(value);
  }
  if (schema.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  const open = schema['x-kubernetes-preserve-unknown-fields'] === true;
  if (out.properties !== undefined && out.additionalProperties === undefined && !open) out.additionalProperties = false;
  return out;
}

function stripExtensions(schema) {
  if (Array.isArray(schema)) return schema.map(stripExtensions);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([k]) => !k.startsWith('x-kubernetes-') && k !== 'description')
      .map(([k, v]) => [k, k === 'properties' ? mapValues(v, stripExtensions) : stripExtensions(v)]),
  );
}

function intOrString(schema) {
  if (Array.isArray(schema)) return schema.map(intOrString);
  if (schema === null || typeof schema !== 'object') return schema;
  if (schema.format === 'int-or-string') return { oneOf: [{ type: 'string' }, { type: 'integer' }] };
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, intOrString(v)]));
}

function strict(schema) {
  if (Array.isArray(schema)) return schema.map(strict);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [k, k === 'properties' ? mapValues(v, strict) : strict(v)]),
  );
  if (out.properties !== undefined && out.additionalProperties === undefined) out.additionalProperties = false;
  return out;
}

function quantitySchema() {
  return { oneOf: [{ type: 'string' }, { type: 'number' }] };
}

function mapValues(record, fn) {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, fn(v)]));
}

function refsOf(schema, out = new Set()) {
  if (Array.isArray(schema)) schema.forEach((s) => refsOf(s, out));
  else if (schema !== null && typeof schema === 'object') {
    for (const [k, v] of Object.entries(schema)) {
      if (k === '$ref' && typeof v === 'string') out.add(v.replace('#/definitions/', ''));
      else refsOf(v, out);
    }
  }
  return out;
}

const { log, fail } = reporter('setup-kube-tools');
const go = goRunner(fail, 'the GitOps tests build kustomize and kubeconform from the Go module proxy');

function cacheRoot() {
  return toolsCacheRoot('kube-tools');
}

/** The go command's environment: the machine's own Go, no C toolchain, a module cache that can be deleted. */
function goEnv(extra = {}) {
  return { ...process.env, GOTOOLCHAIN: 'local', CGO_ENABLED: '0', GOFLAGS: '-modcacherw', ...extra };
}

/** Builds `name` into the cache unless it is there; returns the cached binary. */
function cachedTool(name) {
  const { module, version } = KUBE_TOOLS[name];
  const cached = join(cacheRoot(), `${name}-${version}`, name);
  if (existsSync(cached)) return cached;
  log(`building ${name} ${version} from the Go module proxy (about two minutes) …`);
  const gobin = mkdtempSync(join(tmpdir(), `kube-tools-${name}-`));
  try {
    go(['install', '-trimpath', '-ldflags=-s -w', `${module}@${version}`], { env: goEnv({ GOBIN: gobin }) });
    mkdirSync(dirname(cached), { recursive: true });
    copyWhole(join(gobin, name), cached);
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
  return cached;
}

/** Generates the schemas into the cache unless they are there; returns the cached schema location. */
function cachedSchemas() {
  const location = join(cacheRoot(), `schemas-${KUBERNETES_VERSION}+${SCHEMA_GENERATOR}+kserve-${KSERVE.version}`);
  if (existsSync(join(location, schemaFolder(), 'inferenceservice-serving-v1beta1.json'))) return location;
  log(`generating the Kubernetes ${KUBERNETES_VERSION} JSON schemas from k8s.io/kubernetes's OpenAPI spec …`);
  const download = (module) => JSON.parse(go(['mod', 'download', '-json', module], { env: goEnv(), capture: true }));
  const info = download(`k8s.io/kubernetes@${KUBERNETES_VERSION}`);
  const spec = JSON.parse(readFileSync(join(info.Dir, 'api', 'openapi-spec', 'swagger.json'), 'utf8'));
  const count = fillWhole(location, (staging) => {
    mkdirSync(join(staging, schemaFolder()), { recursive: true });
    let written = 0;
    for (const [file, schema] of kubeconformSchemas(spec)) {
      writeFileSync(join(staging, schemaFolder(), file), JSON.stringify(schema));
      written += 1;
    }
    log(`converting KServe ${KSERVE.version}'s CRDs from ${KSERVE.module} …`);
    const kserve = download(`${KSERVE.module}@${KSERVE.version}`);
    for (const path of KSERVE.crds) {
      for (const document of parseAllDocuments(readFileSync(join(kserve.Dir, path), 'utf8'))) {
        const crd = document.toJSON();
        if (crd?.kind !== 'CustomResourceDefinition') continue;
        for (const [file, schema] of crdSchemas(crd)) {
          writeFileSync(join(staging, schemaFolder(), file), JSON.stringify(schema));
          written += 1;
        }
      }
    }
    return written;
  });
  log(`${count} schemas written`);
  return location;
}

function main() {
  const started = Date.now();
  if (kubeToolsCurrent())
    return log(`kustomize, kubeconform and the schemas are installed (${Date.now() - started} ms)`);
  if (process.argv.includes('--check')) {
    return fail(
      'missing: kustomize, kubeconform or their Kubernetes schemas in .tools/ (node scripts/setup-kube-tools.mjs)',
    );
  }
  const paths = kubeToolPaths();
  mkdirSync(dirname(paths.kustomize), { recursive: true });
  try {
    for (const name of Object.keys(KUBE_TOOLS)) copyWhole(cachedTool(name), paths[name]);
    const schemas = cachedSchemas();
    rmSync(paths.schemas, { recursive: true, force: true });
    cpSync(schemas, paths.schemas, { recursive: true });
  } catch (err) {
    return fail(`${err.message}; fix that, then run npm test again`);
  }
  writeStamp(paths.stamp, expectedStamp());
  log(`done (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
