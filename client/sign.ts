/**
 * Signing a decision on the approver's machine with OpenSSH's own `ssh-keygen -Y sign`: the private key never passes
 * through this process, passphrases are asked by ssh-keygen itself, and a public key file signs through ssh-agent
 * (SSH_AUTH_SOCK), hardware-backed agents included.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import {
  DECISION_NAMESPACE,
  DECISION_PAYLOAD_TYPE,
  MAX_SIGNATURE_CHARS,
  decisionPayload,
  decisionSignatureSchema,
  sha256Ref,
  type DecisionSignature,
  type SignedDecision,
  type SignedWaiver,
} from '../contract/decision-payload';
import { ReleaseClientError } from './errors';

export interface SignOptions {
  /**
   * A private key file, or a public key file (`.pub`) whose private half ssh-agent holds. ssh-keygen uses the agent
   * whenever it holds the key.
   */
  keyFile: string;
  /** The agent's socket; default: SSH_AUTH_SOCK. */
  agentSocket?: string;
  /** The ssh-keygen to run; default: the one on PATH. */
  sshKeygen?: string;
}

/** How long ssh-keygen may take, a passphrase typed at its prompt included. */
const SIGN_TIMEOUT_MS = 120_000;

/** Signs `payload` as `ssh-keygen -Y sign -n modelrelease-decision -f <key>` and returns the armored signature. */
export async function signDecision(payload: Uint8Array, options: SignOptions): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mrel-sign-'));
  const message = join(dir, 'decision.json');
  try {
    await writeFile(message, payload, { mode: 0o600 });
    const env = { ...process.env, ...(options.agentSocket ? { SSH_AUTH_SOCK: options.agentSocket } : {}) };
    await new Promise<void>((resolve, reject) => {
      // stdin closed: a passphrase prompt reads the terminal, never a pipe someone else fills.
      const child = execFile(
        options.sshKeygen ?? 'ssh-keygen',
        ['-q', '-Y', 'sign', '-n', DECISION_NAMESPACE, '-f', options.keyFile, message],
        { env, timeout: SIGN_TIMEOUT_MS },
        (err, _stdout, stderr) => {
          if (!err) return resolve();
          const notFound = (err as NodeJS.ErrnoException).code === 'ENOENT';
          reject(
            new ReleaseClientError(
              'INVALID_REQUEST',
              notFound
                ? 'ssh-keygen was not found: install OpenSSH (8.1 or later) to sign decisions'
                : `ssh-keygen could not sign with ${options.keyFile}: give a private key file, or the .pub of a key that ssh-agent holds (SSH_AUTH_SOCK)`,
              notFound ? [] : lastLines(stderr),
              { cause: err },
            ),
          );
        },
      );
      child.stdin?.end();
    });
    return await readFile(`${message}.sig`, 'utf8');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** What a decision to sign says beyond the release it is about. */
export interface DecisionToSign {
  decision: SignedDecision;
  comment?: string;
  waiver?: SignedWaiver;
}

/**
 * The payload of a decision about a running release: reads the release's run and the manifest digest its gates
 * judged, and builds the canonical bytes an approver signs (with `--sign-with`, or by hand with ssh-keygen).
 */
export async function releaseDecisionPayload(
  client: Client,
  releaseId: string,
  decision: DecisionToSign,
  now: Date = new Date(),
): Promise<{ fields: Omit<Required<DecisionSignature>, 'signature'>; payload: Uint8Array }> {
  const { getRelease } = await import('./release-client');
  const [status, description] = await Promise.all([
    getRelease(client, releaseId),
    client.workflow.getHandle(releaseId).describe(),
  ]);
  const digest = status.manifest?.manifestDigest;
  if (digest === undefined) {
    throw new ReleaseClientError(
      'INVALID_REQUEST',
      `release ${releaseId} has no acquired model yet (stage ${status.stage}), so there is nothing to sign a decision about`,
    );
  }
  const fields = {
    releaseId,
    runId: description.runId,
    manifestDigest: sha256Ref(digest),
    signedAt: now.toISOString(),
  };
  return { fields, payload: decisionPayload({ ...fields, ...decision }) };
}

/**
 * Signs a decision about a running release: builds its payload (releaseDecisionPayload) and signs it. Returns the
 * fields the approve, reject or waive message carries beside the decision.
 */
export async function signReleaseDecision(
  client: Client,
  releaseId: string,
  decision: DecisionToSign,
  options: SignOptions & { now?: Date },
): Promise<Required<DecisionSignature>> {
  const { fields, payload } = await releaseDecisionPayload(client, releaseId, decision, options.now);
  const signature = await signDecision(payload, options);
  return { ...fields, signature };
}

/** A payload file is one small JSON object; anything larger is not one. */
const MAX_PAYLOAD_FILE_BYTES = 16 * 1024;

/**
 * A decision signed by hand: `<payloadFile>` as `mrel approve|reject|waive … --payload-out` wrote it, and
 * `<payloadFile>.sig` as `ssh-keygen -Y sign -n modelrelease-decision -f <key> <payloadFile>` wrote it beside it.
 * Checks that the file is a canonical decision payload about this release and this decision (a payload edited
 * after signing, or for another release, is refused here, before the release refuses it), and returns the fields to
 * send with the decision; for a waive, also the waiver it signs. Errors name the file, never echo its content.
 */
export async function readHandSignedDecision(
  payloadFile: string,
  expected: { releaseId: string; decision: SignedDecision; comment?: string; waiver?: Partial<SignedWaiver> },
): Promise<{ signature: Required<DecisionSignature>; comment?: string; waiver?: SignedWaiver }> {
  const problem = (why: string) => new ReleaseClientError('INVALID_REQUEST', `--signed-payload ${payloadFile}: ${why}`);
  const bytes = await readFile(payloadFile).catch((err: NodeJS.ErrnoException) => {
    throw problem(`cannot be read (${err.code ?? 'error'}); give the file --payload-out wrote`);
  });
  if (bytes.length > MAX_PAYLOAD_FILE_BYTES)
    throw problem('is larger than a decision payload; give the file --payload-out wrote');
  const signatureText = await readFile(`${payloadFile}.sig`, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw problem(
      `has no signature beside it (${payloadFile}.sig: ${err.code ?? 'error'}); sign it with ` +
        `\`ssh-keygen -Y sign -n ${DECISION_NAMESPACE} -f <key> ${payloadFile}\``,
    );
  });
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw problem('is not JSON; give the file --payload-out wrote, unchanged');
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.type !== DECISION_PAYLOAD_TYPE) {
    throw problem(`is not a decision payload (type ${DECISION_PAYLOAD_TYPE})`);
  }
  const fields = decisionSignatureSchema.safeParse({
    signature: signatureText.length > MAX_SIGNATURE_CHARS ? '' : signatureText,
    signedAt: parsed.signedAt,
    runId: parsed.runId,
    manifestDigest: parsed.manifestDigest,
  });
  if (!fields.success) {
    throw problem(fields.error.issues.map((i) => `${i.path.join('.') || 'signature'}: ${i.message}`).join('; '));
  }
  const { signature, signedAt, runId, manifestDigest } = fields.data;
  if (!signature || !signedAt || !runId || !manifestDigest)
    throw problem('lacks the run, model digest or time it signs');
  if (parsed.releaseId !== expected.releaseId) throw problem(`is about another release, not ${expected.releaseId}`);
  if (parsed.decision !== expected.decision) throw problem(`signs another decision, not ${expected.decision}`);
  const comment = typeof parsed.comment === 'string' && parsed.comment !== '' ? parsed.comment : undefined;
  if (expected.comment !== undefined && expected.comment !== (comment ?? '')) {
    throw problem('signs another --comment than the one given; leave --comment out to send the signed one');
  }
  const waiver = parsed.waiver as SignedWaiver | undefined;
  if (expected.decision === 'waive') {
    if (
      waiver === undefined ||
      typeof waiver !== 'object' ||
      typeof waiver.gate !== 'string' ||
      typeof waiver.justification !== 'string' ||
      typeof waiver.expiresAt !== 'string' ||
      !Array.isArray(waiver.ruleIds) ||
      !waiver.ruleIds.every((r) => typeof r === 'string')
    ) {
      throw problem('signs no waiver (gate, ruleIds, justification, expiresAt)');
    }
    const given = expected.waiver ?? {};
    for (const key of ['gate', 'justification', 'expiresAt'] as const) {
      if (given[key] !== undefined && given[key] !== waiver[key]) {
        throw problem(`signs another ${key} than the one given; leave it out to send the signed one`);
      }
    }
    if (given.ruleIds !== undefined && given.ruleIds.join('\n') !== (waiver.ruleIds ?? []).join('\n')) {
      throw problem('signs other rule ids than the --rule given; leave --rule out to send the signed ones');
    }
  }
  const decision = {
    decision: expected.decision,
    ...(comment === undefined ? {} : { comment }),
    ...(waiver ? { waiver } : {}),
  };
  // The signature is over the exact bytes: a file reformatted after signing would never verify.
  const canonical = decisionPayload({ releaseId: expected.releaseId, runId, manifestDigest, signedAt, ...decision });
  if (!Buffer.from(canonical).equals(bytes)) {
    throw problem('is not the canonical payload (it was edited or reformatted after --payload-out wrote it)');
  }
  return {
    signature: { signature, signedAt, runId, manifestDigest },
    ...(comment === undefined ? {} : { comment }),
    ...(waiver ? { waiver } : {}),
  };
}

/** ssh-keygen's own complaint, trimmed: it names the key file and the reason (bad passphrase, no agent, no key). */
function lastLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .slice(-3)
    .map((line) => (line.length > 200 ? `${line.slice(0, 200)}…` : line));
}
