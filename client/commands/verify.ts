/**
 * `mrel verify <gitops-repo> <release-id>`: proves a release from its GitOps repository alone, as an auditor would.
 * It finds the commit by its `Release-Id` trailer and checks, at that commit:
 *   commit       the trailers (Release-Id; Approved-by names exactly the approvals of the evidence)
 *   evidence     every digest of bundle.json (verifyBundle) and that it is this release's
 *   attestation  the DSSE signature against config/signing-keys/*.pub, and the Statement's subjects against the
 *                bundle, the model manifest and the images the workload runs
 *   ml-bom       the ML-BOM is the one the Statement pins
 *   workload     the Deployment (or InferenceService) runs exactly the attested model and images, by digest
 *   approvals    each approval's signature against the approver's keys in approvers.yaml as of the release (the copy
 *                the bundle keeps, else --config's when it has the recorded digest), each approver's role, and the
 *                policy's approval rule (the policy copy in the bundle, likewise); each granted waiver's signature,
 *                role and expiry the same way, against the policy's `waivers:` section
 *   monitoring   when the release's monitoring window committed its evidence (`Release-Id: <id>#monitoring`): each
 *                file is named by its sha256, and each person's rollback or keep of a pause is checked like an approval
 * Exit 0 verified, 1 not (one line per broken link, each starting with the link's name), 2 bad usage or a repository
 * that cannot be read.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { Option } from 'commander';
import { DEFAULT_CONFIG_DIR } from '../../config/yaml-file';
import { sha256Hex } from '../../activities/common/canonical-json';
import { APPROVED_BY_TRAILER, RELEASE_ID_TRAILER } from '../../activities/gitops/commit-message';
import { verifyBundle, type BundleIndexDocument } from '../../activities/gitops/evidence-bundle';
import { fetchBranch, findCommitWithTrailer, gitAt, localOrUrl } from '../../activities/gitops/git';
import { LAYOUT_FILES, POLICY_ANNOTATIONS, annotationKey, parseReleaseDir } from '../../activities/gitops/layout';
import {
  APPROVERS_ENTRY,
  imageDigest,
  policyEntry,
  workloadImages,
  workloadPaths,
} from '../../activities/gitops/attest';
import { ML_BOM_FILE } from '../../activities/gitops/ml-bom';
import { MONITORING_RELEASE_ID_SUFFIX } from '../../activities/gitops/monitoring-evidence';
import {
  ATTESTATION_FILE,
  AttestationError,
  BUNDLE_SUBJECT,
  MANIFEST_SUBJECT,
  loadTrustedKeys,
  parseEnvelope,
  parseReleaseStatement,
  subjectSha256,
  verifyEnvelope,
  type ReleaseStatement,
} from '../../activities/trust/dsse';
import { verifyDecision } from '../../activities/trust/verify-decision';
import type { SignedWaiver } from '../../contract/decision-payload';
import type { PauseDecision } from '../../contract/monitoring';
import type { GrantedWaiver, SignedBy } from '../../contract/types';
import { EXIT } from '../errors';
import type { RegisterCommands } from './index';

const run = promisify(execFile);
/** Bounds on what one verification reads: the bundle's own limits, and a little more. */
const MAX_RELEASE_FILES = 1100;
const MAX_BLOB_BYTES = 64 * 1024 * 1024;
/** An offline audit checks that a signature was valid when the release recorded it, not that it is fresh today. */
const RECORDED_SIGNATURE_AGE_MS = 100 * 365 * 86_400_000;

export interface VerifyOptions {
  repository: string;
  releaseId: string;
  configDir: string;
  branch: string;
}

export interface VerifyReport {
  releaseId: string;
  verified: boolean;
  commit?: string;
  /** The release folder (`releases/<model>/<version>/<environment>`). */
  folder?: string;
  /** Key id of the trusted key that signed the attestation. */
  signedBy?: string;
  /** What was checked, per link: `ok`, or the number of problems. */
  links: Record<string, 'ok' | number>;
  /** One line per broken link, `<link>: <what is wrong>`. */
  problems: string[];
}

/** Thrown when the repository cannot be read at all (a bad path or URL): bad usage, not a verdict. */
export class RepositoryUnreadableError extends Error {}

type Files = Map<string, Buffer>;

export async function verifyRelease(options: VerifyOptions): Promise<VerifyReport> {
  const problems: string[] = [];
  const links: Record<string, 'ok' | number> = {};
  const report = (extra: Partial<VerifyReport> = {}): VerifyReport => ({
    releaseId: options.releaseId,
    verified: problems.length === 0,
    links,
    problems,
    ...extra,
  });
  const check = (link: string, found: string[]): void => {
    links[link] = found.length === 0 ? 'ok' : found.length;
    problems.push(...found.map((p) => `${link}: ${p}`));
  };
  const dir = await mkdtemp(join(tmpdir(), 'mrel-verify-'));
  try {
    const git = gitAt(dir);
    await git.raw(['init', '-q', '--bare']);
    let ref: string | undefined;
    try {
      ref = await fetchBranch(git, localOrUrl(options.repository), options.branch, `refs/heads/${options.branch}`);
    } catch (err) {
      throw new RepositoryUnreadableError(
        `${options.repository}: cannot be read as a Git repository (${firstLine(err)}); give the path or URL of the GitOps repository`,
      );
    }
    const commit =
      ref === undefined ? undefined : await findCommitWithTrailer(git, ref, RELEASE_ID_TRAILER, options.releaseId);
    if (commit === undefined) {
      check('commit', [
        `no commit on ${options.branch} carries the trailer ${RELEASE_ID_TRAILER}: ${options.releaseId}; is the release id right, and was it released?`,
      ]);
      return report();
    }
    const reader = new TreeReader(dir, commit);
    const folder = await releaseFolder(reader, git, commit, options.releaseId);
    if (folder === undefined) {
      check('evidence', ['the release commit holds no bundle.json of this release: it carries no verifiable evidence']);
      return report({ commit });
    }
    const files = await reader.folder(folder);

    const bundle = verifyBundle([...files].map(([path, content]) => ({ path, content })));
    const document = bundle.document;
    const evidenceProblems = [...bundle.problems];
    if (document !== undefined && document.releaseId !== options.releaseId) {
      evidenceProblems.push(`bundle.json is the evidence of ${document.releaseId}, not of ${options.releaseId}`);
    }
    check('evidence', evidenceProblems);

    const message = await git.raw(['log', '-1', '--format=%B', commit]);
    check('commit', trailerProblems(message, document));

    let signedBy: string | undefined;
    const statement = await checkAttestation(
      folder,
      files,
      options,
      bundle.digest,
      check,
      (keyid) => (signedBy = keyid),
    );
    check('ml-bom', mlBomProblems(files, statement));

    const target = parseReleaseDir(folder) as { model: string; version: string; environment: string };
    const attestation = files.get(ATTESTATION_FILE);
    const attestationDigest = attestation === undefined ? undefined : `sha256:${sha256Hex(attestation)}`;
    check(
      'workload',
      await workloadProblems(
        reader,
        target,
        statement,
        { bundle: bundle.digest, attestation: attestationDigest },
        options.releaseId,
      ),
    );

    if (document !== undefined) {
      const summary = jsonOf(files.get(LAYOUT_FILES.evidence));
      const judged = await judgedBy(files, document, options);
      const manifest =
        (statement === undefined ? undefined : subjectSha256(statement, MANIFEST_SUBJECT)) ??
        ((summary?.manifest as { manifestDigest?: string } | undefined)?.manifestDigest as string | undefined);
      check('approvals', approvalProblems(judged, document, statement, summary, manifest, target.environment));
      // The monitoring window's commit, when the release had one: the people's rollback or keep of a pause.
      const monitoring = await findCommitWithTrailer(
        git,
        ref as string,
        RELEASE_ID_TRAILER,
        `${options.releaseId}${MONITORING_RELEASE_ID_SUFFIX}`,
      );
      if (monitoring !== undefined) {
        const windows = await new TreeReader(dir, monitoring).folder(`${folder}/monitoring`);
        check('monitoring', monitoringProblems(windows, judged, document, manifest, target.environment));
      }
    }
    return report({ commit, folder, ...(signedBy === undefined ? {} : { signedBy }) });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads files of one commit's tree from the bare repository, as bytes. */
class TreeReader {
  constructor(
    private readonly dir: string,
    private readonly commit: string,
  ) {}

  /** The files under `folder` (paths relative to it). */
  async folder(folder: string): Promise<Files> {
    const listing = await this.git(['ls-tree', '-r', '-z', this.commit, '--', `${folder}/`]);
    const entries = listing
      .toString('utf8')
      .split('\0')
      .filter((line) => line !== '')
      .map((line) => {
        const [meta = '', path = ''] = line.split('\t');
        return { oid: meta.split(' ')[2] ?? '', path };
      });
    if (entries.length > MAX_RELEASE_FILES) {
      throw new Error(`${folder} holds ${entries.length} files, more than a release's ${MAX_RELEASE_FILES}`);
    }
    const files: Files = new Map();
    for (const entry of entries) files.set(entry.path.slice(folder.length + 1), await this.blob(entry.oid));
    return files;
  }

  /** One file's bytes, or undefined when the commit has no such file. */
  async file(path: string): Promise<Buffer | undefined> {
    const listing = (await this.git(['ls-tree', '-z', this.commit, '--', path])).toString('utf8');
    const oid = listing.split('\t')[0]?.split(' ')[2];
    return oid === undefined || oid === '' ? undefined : this.blob(oid);
  }

  private blob(oid: string): Promise<Buffer> {
    return this.git(['cat-file', 'blob', oid]);
  }

  private async git(args: string[]): Promise<Buffer> {
    const { stdout } = await run('git', ['--git-dir', this.dir, ...args], {
      encoding: 'buffer',
      maxBuffer: MAX_BLOB_BYTES,
      env: { ...withoutGitVariables(), GIT_TERMINAL_PROMPT: '0' },
    });
    return stdout;
  }
}

/** The release folder whose bundle.json the commit wrote for this release. */
async function releaseFolder(
  reader: TreeReader,
  git: ReturnType<typeof gitAt>,
  commit: string,
  releaseId: string,
): Promise<string | undefined> {
  const changed = (await git.raw(['diff-tree', '--root', '--no-commit-id', '--name-only', '-r', commit]))
    .split('\n')
    .filter((p) => p.endsWith(`/${LAYOUT_FILES.bundle}`) && parseReleaseDir(p) !== undefined);
  for (const path of changed) {
    const document = jsonOf(await reader.file(path));
    if (document?.releaseId === releaseId) return path.slice(0, -(LAYOUT_FILES.bundle.length + 1));
  }
  return undefined;
}

/** The trailers: Approved-by names exactly the approvals the evidence records. */
function trailerProblems(message: string, document: BundleIndexDocument | undefined): string[] {
  if (document === undefined) return [];
  const trailers = (
    message
      .trimEnd()
      .split(/\n[ \t]*\n/)
      .pop() ?? ''
  ).split('\n');
  const claimed = trailers
    .filter((line) => line.startsWith(`${APPROVED_BY_TRAILER}: `))
    .map((line) => line.slice(APPROVED_BY_TRAILER.length + 2).trim())
    .sort();
  const recorded = document.index.decisions
    .filter((d) => d.decision === 'approve')
    .map((d) => `${d.approver} (${d.role})`.replace(/[\r\n]+/g, ' '))
    .sort();
  if (JSON.stringify(claimed) === JSON.stringify(recorded)) return [];
  return [
    `its ${APPROVED_BY_TRAILER} trailers name [${claimed.join(', ')}] but the evidence records approvals by [${recorded.join(', ')}]`,
  ];
}

async function checkAttestation(
  folder: string,
  files: Files,
  options: VerifyOptions,
  bundleDigest: string | undefined,
  check: (link: string, found: string[]) => void,
  onSigned: (keyid: string) => void,
): Promise<ReleaseStatement | undefined> {
  const bytes = files.get(ATTESTATION_FILE);
  if (bytes === undefined) {
    check('attestation', [`the release has no ${ATTESTATION_FILE}: its evidence was not signed`]);
    return undefined;
  }
  const found: string[] = [];
  let statement: ReleaseStatement | undefined;
  try {
    const envelope = parseEnvelope(bytes);
    const trusted = await loadTrustedKeys(join(options.configDir, 'signing-keys'));
    const verification = verifyEnvelope(envelope, trusted);
    if (verification.ok && verification.keyid !== undefined) onSigned(verification.keyid);
    else found.push(...verification.problems);
    statement = parseReleaseStatement(verification.payload);
  } catch (err) {
    if (!(err instanceof AttestationError)) throw err;
    found.push(err.message);
  }
  if (statement !== undefined) {
    const p = statement.predicate;
    if (p.releaseId !== options.releaseId) found.push(`it attests release ${p.releaseId}, not ${options.releaseId}`);
    const target = parseReleaseDir(`${folder}/`);
    if (
      target !== undefined &&
      [p.model, p.version, p.environment].join('/') !== [target.model, target.version, target.environment].join('/')
    ) {
      found.push(`it attests ${p.model}@${p.version} in ${p.environment}, not the release folder's`);
    }
    const summary = files.get(LAYOUT_FILES.evidence);
    const pinned = (p.summary as { sha256?: string } | undefined)?.sha256;
    if (pinned === undefined) found.push(`it does not pin ${LAYOUT_FILES.evidence}`);
    else if (summary === undefined || sha256Hex(summary) !== pinned) {
      found.push(`${LAYOUT_FILES.evidence} is not the one it pins (sha256:${pinned}): it was edited or removed`);
    }
    const bundleSha = subjectSha256(statement, BUNDLE_SUBJECT);
    if (bundleDigest !== undefined && `sha256:${bundleSha}` !== bundleDigest) {
      found.push(`its ${BUNDLE_SUBJECT} subject is sha256:${bundleSha}, the committed bundle.json is ${bundleDigest}`);
    }
    if (subjectSha256(statement, MANIFEST_SUBJECT) === undefined) found.push(`it has no ${MANIFEST_SUBJECT} subject`);
  }
  check('attestation', found);
  // A Statement whose signature does not verify is not evidence of anything: later links do not trust it.
  return found.length === 0 ? statement : undefined;
}

function mlBomProblems(files: Files, statement: ReleaseStatement | undefined): string[] {
  const bom = files.get(ML_BOM_FILE);
  if (bom === undefined) return [`the release has no ${ML_BOM_FILE}`];
  const pinned = (statement?.predicate.mlBom as { sha256?: string } | undefined)?.sha256;
  if (statement === undefined) return [];
  if (pinned === undefined) return [`the attestation does not pin ${ML_BOM_FILE}`];
  const actual = sha256Hex(bom);
  return actual === pinned
    ? []
    : [`${ML_BOM_FILE} hashes to sha256:${actual}, the attestation says sha256:${pinned}: it was edited`];
}

async function workloadProblems(
  reader: TreeReader,
  target: { model: string; version: string; environment: string },
  statement: ReleaseStatement | undefined,
  digests: { bundle?: string; attestation?: string },
  releaseId: string,
): Promise<string[]> {
  const found: string[] = [];
  let path: string | undefined;
  let text: string | undefined;
  for (const candidate of workloadPaths(target.model, target.version, target.environment)) {
    const bytes = await reader.file(candidate);
    if (bytes !== undefined) {
      path = candidate;
      text = bytes.toString('utf8');
      break;
    }
  }
  if (path === undefined || text === undefined)
    return ['the release commit holds no Deployment patch or InferenceService'];
  const object = parse(text) as { metadata?: { annotations?: Record<string, string> } } | null;
  const annotations = object?.metadata?.annotations ?? {};
  const annotation = (name: string): string | undefined => annotations[annotationKey(name)];
  if (annotation(POLICY_ANNOTATIONS.releaseId) !== releaseId) {
    found.push(`${path}: its release-id annotation is not ${releaseId}`);
  }
  if (digests.bundle !== undefined && annotation(POLICY_ANNOTATIONS.evidenceBundle) !== digests.bundle) {
    found.push(`${path}: its evidence-bundle annotation is not the committed bundle's ${digests.bundle}`);
  }
  if (digests.attestation !== undefined && annotation(POLICY_ANNOTATIONS.attestation) !== digests.attestation) {
    found.push(`${path}: its attestation annotation is not the committed ${ATTESTATION_FILE}'s ${digests.attestation}`);
  }
  const manifest = statement === undefined ? undefined : subjectSha256(statement, MANIFEST_SUBJECT);
  if (manifest !== undefined) {
    if (annotation(POLICY_ANNOTATIONS.manifestDigest) !== `sha256:${manifest}`) {
      found.push(`${path}: its manifest-digest annotation is not the attested model sha256:${manifest}`);
    }
    const env = manifestEnv(object);
    if (env !== undefined && env !== `sha256:${manifest}`) {
      found.push(`${path}: MODEL_MANIFEST_DIGEST is ${env}, not the attested model sha256:${manifest}`);
    }
  }
  const images = workloadImages(text);
  for (const image of images.filter((i) => imageDigest(i) === undefined)) {
    found.push(`${path}: runs ${image}, which is not pinned by digest`);
  }
  if (statement !== undefined) {
    const attested = new Map(
      statement.subject
        .filter((s) => s.name !== BUNDLE_SUBJECT && s.name !== MANIFEST_SUBJECT)
        .map((s) => [s.name, s.digest.sha256]),
    );
    for (const image of images) {
      const digest = imageDigest(image);
      if (digest !== undefined && attested.get(image) !== digest) {
        found.push(`${path}: runs ${image}, which the attestation does not name`);
      }
    }
    for (const name of attested.keys()) {
      if (!images.includes(name)) found.push(`${path}: does not run the attested image ${name}`);
    }
  }
  return found;
}

/** MODEL_MANIFEST_DIGEST of the serving container's environment, wherever the workload kind keeps it. */
function manifestEnv(object: unknown): string | undefined {
  let value: string | undefined;
  const walk = (node: unknown, depth: number): void => {
    if (value !== undefined || depth > 32 || node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach((n) => walk(n, depth + 1));
    const record = node as Record<string, unknown>;
    if (record.name === 'MODEL_MANIFEST_DIGEST' && typeof record.value === 'string') value = record.value;
    else Object.values(record).forEach((n) => walk(n, depth + 1));
  };
  walk(object, 0);
  return value;
}

interface Rule {
  minApprovers: number;
  allowedRoles: string[];
  requiredRoles: { role: string; count: number }[];
  allowUnsigned?: boolean;
}

/** The approvers file and the policy the release was judged by, as of the release, and what is wrong with them. */
interface JudgedBy {
  approvers?: Record<string, { roles?: string[]; keys?: string[] }>;
  policy?: unknown;
  problems: string[];
}

async function judgedBy(files: Files, document: BundleIndexDocument, options: VerifyOptions): Promise<JudgedBy> {
  const index = document.index;
  const approversFile = await configCopy(files, document, APPROVERS_ENTRY, index.approvers?.digest, () =>
    join(options.configDir, 'approvers.yaml'),
  );
  const policyFile = await configCopy(files, document, policyEntry(index.policy.name), index.policy.digest, () =>
    join(options.configDir, 'policies', `${index.policy.name}.yaml`),
  );
  return {
    approvers: (approversFile.data as { approvers?: JudgedBy['approvers'] } | undefined)?.approvers,
    policy: policyFile.data,
    problems: [approversFile.problem, policyFile.problem].filter((p): p is string => p !== undefined),
  };
}

function approvalRule(judged: JudgedBy, environment: string): Rule | undefined {
  return (judged.policy as { approval?: { environments?: Record<string, Rule> } } | undefined)?.approval
    ?.environments?.[environment];
}

function approvalProblems(
  judged: JudgedBy,
  document: BundleIndexDocument,
  statement: ReleaseStatement | undefined,
  summary: Record<string, unknown> | undefined,
  manifest: string | undefined,
  environment: string,
): string[] {
  const found: string[] = [...judged.problems];
  const index = document.index;
  const { approvers } = judged;
  const rule = approvalRule(judged, environment);
  if (judged.policy !== undefined && rule === undefined) {
    found.push(`policy ${index.policy.name} has no approval rule for ${environment}`);
  }
  if (statement !== undefined && canonical(statement.predicate.approvals) !== canonical(index.decisions)) {
    found.push('the approvals the attestation signs are not those bundle.json records');
  }
  const extraRoles = ((summary?.gates as { requiredApprovals?: { role: string; count: number }[] }[]) ?? []).flatMap(
    (g) => g.requiredApprovals ?? [],
  );
  const counted: { approver: string; roles: string[] }[] = [];
  for (const decision of index.decisions.filter((d) => d.decision === 'approve')) {
    const who = `approval by ${decision.approver}`;
    if (approvers === undefined) continue;
    const entry = Object.hasOwn(approvers, decision.approver) ? approvers[decision.approver] : undefined;
    if (entry === undefined) {
      found.push(`${who}: ${decision.approver} is not in approvers.yaml as of the release`);
      continue;
    }
    const held = entry.roles ?? [];
    const accepted = [...(rule?.allowedRoles ?? []), ...extraRoles.map((r) => r.role)];
    const roles = (decision.roles ?? [decision.role]).filter((r) => held.includes(r) && accepted.includes(r));
    if (!held.includes(decision.role)) {
      found.push(`${who}: recorded as ${decision.role}, a role ${decision.approver} does not hold in approvers.yaml`);
    } else if (rule !== undefined && !accepted.includes(decision.role)) {
      found.push(
        `${who}: the role ${decision.role} does not count for ${environment} under policy ${index.policy.name}`,
      );
    }
    found.push(
      ...signatureProblems(
        who,
        decision,
        entry.keys ?? [],
        { decision: 'approve' },
        document,
        manifest,
        rule,
        environment,
      ),
    );
    counted.push({ approver: decision.approver, roles });
  }
  if (rule !== undefined && approvers !== undefined) {
    const missing = ruleShortfall(counted, rule, extraRoles);
    if (missing !== undefined) found.push(`policy ${index.policy.name} (${environment}): ${missing}`);
  }
  const waiverPolicy = (judged.policy as { waivers?: RawWaiverPolicy } | undefined)?.waivers;
  for (const waiver of index.grantedWaivers ?? []) {
    const who = `waiver of ${waiver.gate} (${waiver.ruleIds.join(', ')}) by ${waiver.approver}`;
    if (approvers === undefined) continue;
    const entry = Object.hasOwn(approvers, waiver.approver) ? approvers[waiver.approver] : undefined;
    if (entry === undefined) {
      found.push(`${who}: ${waiver.approver} is not in approvers.yaml as of the release`);
      continue;
    }
    if (!(entry.roles ?? []).includes(waiver.role)) {
      found.push(`${who}: recorded as ${waiver.role}, a role ${waiver.approver} does not hold in approvers.yaml`);
    }
    if (judged.policy !== undefined) found.push(...waiverRuleProblems(who, waiver, waiverPolicy, index.policy.name));
    found.push(
      ...signatureProblems(
        who,
        waiver,
        entry.keys ?? [],
        {
          decision: 'waive',
          waiver: {
            gate: waiver.gate,
            ruleIds: waiver.ruleIds,
            justification: waiver.justification,
            expiresAt: waiver.expiresAt,
          },
        },
        document,
        manifest,
        rule,
        environment,
      ),
    );
  }
  return found;
}

/**
 * The monitoring window's evidence files: each named by its sha256, and each `rollback` / `keep` a person made on a
 * pause — from an approver in approvers.yaml as of the release, holding the recorded role, signed (where the rule
 * wants signatures) by one of their keys over this release, this decision and the attested model.
 */
function monitoringProblems(
  windows: Files,
  judged: JudgedBy,
  document: BundleIndexDocument,
  manifest: string | undefined,
  environment: string,
): string[] {
  const found: string[] = [];
  const rule = approvalRule(judged, environment);
  for (const [name, bytes] of windows) {
    if (`${sha256Hex(bytes)}.json` !== name) {
      found.push(
        `monitoring/${name} hashes to sha256:${sha256Hex(bytes)}: it was edited after the window committed it`,
      );
      continue;
    }
    const decisions = (jsonOf(bytes)?.decisions ?? []) as PauseDecision[];
    for (const decision of Array.isArray(decisions) ? decisions : []) {
      const who = `${decision.decision} by ${decision.approver} (monitoring/${name.slice(0, 12)}…)`;
      if (judged.approvers === undefined) continue;
      const entry = Object.hasOwn(judged.approvers, decision.approver)
        ? judged.approvers[decision.approver]
        : undefined;
      if (entry === undefined) {
        found.push(`${who}: ${decision.approver} is not in approvers.yaml as of the release`);
        continue;
      }
      if (!(entry.roles ?? []).includes(decision.role)) {
        found.push(`${who}: recorded as ${decision.role}, a role ${decision.approver} does not hold in approvers.yaml`);
      }
      // Pause decisions of releases from before trust-pauses-v1 carry neither a signature nor `unsigned`.
      if (decision.signed === undefined && decision.unsigned === undefined) continue;
      found.push(
        ...signatureProblems(
          who,
          decision,
          entry.keys ?? [],
          { decision: decision.decision },
          document,
          manifest,
          rule,
          environment,
        ),
      );
    }
  }
  return found;
}

/** A policy's `waivers:` section as the file holds it (the loader's defaults applied here too). */
interface RawWaiverPolicy {
  maxDays?: number;
  roles?: Record<string, string[]>;
}

/** Whether the policy as of the release let this role waive this gate's findings, for this long. */
function waiverRuleProblems(
  who: string,
  waiver: GrantedWaiver,
  policy: RawWaiverPolicy | undefined,
  policyName: string,
): string[] {
  if (policy === undefined)
    return [`${who}: policy ${policyName} has no waivers: section, so no waive counts under it`];
  const found: string[] = [];
  const allowed = policy.roles?.[waiver.gate] ?? policy.roles?.['*'] ?? ['release-manager'];
  if (!allowed.includes(waiver.role)) {
    found.push(`${who}: the role ${waiver.role} may not waive ${waiver.gate} findings under policy ${policyName}`);
  }
  const maxDays = policy.maxDays ?? 30;
  const latest = Date.parse(waiver.at) + maxDays * 86_400_000;
  if (!(Date.parse(waiver.expiresAt) <= latest)) {
    found.push(`${who}: expires ${waiver.expiresAt}, later than policy ${policyName}'s maximum of ${maxDays} days`);
  }
  return found;
}

/**
 * The problems with one recorded decision's proof: unsigned where the rule wants signatures, signed for another
 * model, a signature that does not verify against the approver's keys as of the release, or another key's
 * fingerprint than the evidence records.
 */
function signatureProblems(
  who: string,
  recorded: { approver: string; at: string; comment?: string; signed?: SignedBy },
  keys: string[],
  what: { decision: 'approve' | 'rollback' | 'keep' } | { decision: 'waive'; waiver: SignedWaiver },
  document: BundleIndexDocument,
  manifest: string | undefined,
  rule: Rule | undefined,
  environment: string,
): string[] {
  const signed = recorded.signed;
  if (signed === undefined) {
    const allowed = rule?.allowUnsigned ?? environment !== 'production';
    return allowed ? [] : [`${who}: unsigned, and policy ${document.index.policy.name} requires signed decisions here`];
  }
  const found: string[] = [];
  if (manifest !== undefined && signed.manifestDigest.replace(/^sha256:/, '') !== manifest.replace(/^sha256:/, '')) {
    found.push(`${who}: signed for model ${signed.manifestDigest}, not the attested sha256:${manifest}`);
  }
  const verdict = verifyDecision({
    releaseId: document.releaseId,
    runId: signed.runId,
    manifestDigest: signed.manifestDigest,
    approver: recorded.approver,
    ...what,
    ...(recorded.comment === undefined ? {} : { comment: recorded.comment }),
    signedAt: signed.signedAt,
    signature: signed.signature,
    keys,
    // Valid when the release recorded it: no later than the decision, however old it is today.
    now: new Date(Date.parse(recorded.at) || 0),
    maxAgeMs: RECORDED_SIGNATURE_AGE_MS,
    seen: [],
  });
  if (!verdict.ok) found.push(`${who}: ${verdict.reason}`);
  else if (signed.fingerprint !== verdict.fingerprint) {
    found.push(`${who}: signed by key ${verdict.fingerprint}, but the evidence records ${signed.fingerprint}`);
  }
  return found;
}

/**
 * A config file as the release used it: the copy the bundle keeps (already checked by its digest), else the file in
 * --config when its sha256 is the digest the evidence records.
 */
async function configCopy(
  files: Files,
  document: BundleIndexDocument,
  entryName: string,
  digest: string | undefined,
  fallback: () => string,
): Promise<{ data?: unknown; problem?: string }> {
  const label = entryName.slice('config/'.length);
  const wanted = digest?.replace(/^sha256:/, '');
  const record = document.files.find((f) => f.name === entryName);
  if (record !== undefined) {
    if (wanted !== undefined && record.sha256 !== wanted) {
      return { problem: `the bundle's copy of ${label} is not the file the release recorded (sha256:${wanted})` };
    }
    const bytes = files.get(record.path);
    if (bytes === undefined) return { problem: `the bundle's copy of ${label} is missing` };
    // Edited copies are the evidence link's to report; approvals are not judged by them.
    return sha256Hex(bytes) === record.sha256 ? yamlOf(bytes, label) : {};
  }
  const path = fallback();
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch {
    return { problem: `${label} of the release is not in its evidence, and ${path} cannot be read` };
  }
  if (wanted !== undefined && sha256Hex(bytes) !== wanted) {
    return {
      problem: `${label} of the release (sha256:${wanted}) is not in its evidence, and ${path} is another version: give --config at the revision the release used`,
    };
  }
  return yamlOf(bytes, label);
}

function yamlOf(bytes: Buffer, label: string): { data?: unknown; problem?: string } {
  try {
    return { data: parse(bytes.toString('utf8')) };
  } catch {
    return { problem: `${label} of the release is not valid YAML` };
  }
}

/**
 * What the approvals lack under the rule, or undefined when they satisfy it: distinct approvers, at least
 * minApprovers, and each required role slot filled by a different approver holding it (a bipartite matching).
 */
function ruleShortfall(
  approvals: { approver: string; roles: string[] }[],
  rule: Rule,
  extra: { role: string; count: number }[],
): string | undefined {
  const distinct = [...new Map(approvals.map((a) => [a.approver, a])).values()];
  const slots = [...(rule.requiredRoles ?? []), ...extra].flatMap((r) => Array.from({ length: r.count }, () => r.role));
  const owner: (number | undefined)[] = slots.map(() => undefined);
  const assign = (a: number, seen: boolean[]): boolean => {
    for (let s = 0; s < slots.length; s++) {
      if (seen[s] || !(distinct[a] as { roles: string[] }).roles.includes(slots[s] as string)) continue;
      seen[s] = true;
      const current = owner[s];
      if (current === undefined || assign(current, seen)) {
        owner[s] = a;
        return true;
      }
    }
    return false;
  };
  distinct.forEach((_, a) =>
    assign(
      a,
      slots.map(() => false),
    ),
  );
  const unfilled = slots.filter((_, s) => owner[s] === undefined);
  const valid = distinct.filter((a) => a.roles.length > 0).length;
  if (valid >= rule.minApprovers && unfilled.length === 0) return undefined;
  const parts: string[] = [];
  if (valid < rule.minApprovers) parts.push(`${rule.minApprovers} approvals needed, ${valid} count`);
  if (unfilled.length > 0) parts.push(`no approval fills the required role(s) ${[...new Set(unfilled)].join(', ')}`);
  return parts.join('; ');
}

function jsonOf(bytes: Buffer | undefined): Record<string, unknown> | undefined {
  if (bytes === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

function withoutGitVariables(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && !entry[0].toUpperCase().startsWith('GIT_'),
    ),
  );
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split('\n').find((l) => l.trim() !== '') ?? text).slice(0, 200);
}

/** The text report: one line saying verified or not, then one line per broken link. */
export function renderVerifyReport(report: VerifyReport): string {
  const at = report.commit === undefined ? '' : ` at ${report.commit.slice(0, 12)}`;
  if (report.verified) {
    const links = Object.keys(report.links).join(', ');
    const key = report.signedBy === undefined ? '' : `; signed by key ${report.signedBy.slice(0, 16)}…`;
    return `VERIFIED ${report.releaseId}${at} (${links}${key})`;
  }
  return [`NOT VERIFIED ${report.releaseId}${at}`, ...report.problems].join('\n');
}

export const register: RegisterCommands = (program, ctx) => {
  program
    .command('verify')
    .description(
      'prove a release from the GitOps repository: commit trailers, evidence digests, signed attestation, ML-BOM, approvals against approvers.yaml as of the release, and that the workload runs exactly the verified model and images',
    )
    .argument('<gitops-repo>', 'path or URL of the GitOps repository')
    .argument('<release-id>', 'e.g. release/credit-risk/1.0.0/production')
    .option(
      '--config <dir>',
      'config folder: signing-keys/*.pub are the trusted keys; approvers.yaml and policies/ when the evidence keeps no copy',
      DEFAULT_CONFIG_DIR,
    )
    .option('--branch <branch>', 'branch of the GitOps repository', 'main')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (repository: string, releaseId: string, opts: { config: string; branch: string; format: string }) => {
      let report: VerifyReport;
      try {
        report = await verifyRelease({ repository, releaseId, configDir: opts.config, branch: opts.branch });
      } catch (err) {
        if (!(err instanceof RepositoryUnreadableError)) throw err;
        ctx.io.err(`mrel: ${err.message}`);
        ctx.setExit(EXIT.usage);
        return;
      }
      const json = opts.format === 'json' || ctx.json();
      ctx.io.out(json ? JSON.stringify(report, null, 2) : renderVerifyReport(report));
      ctx.setExit(report.verified ? EXIT.ok : EXIT.fail);
    });
};
