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
  decisionPayload,
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
 * Signs a decision about a running release: reads the release's run and the manifest digest its gates judged, builds
 * the payload and signs it. Returns the fields the approve, reject or waive message carries beside the decision.
 */
export async function signReleaseDecision(
  client: Client,
  releaseId: string,
  decision: DecisionToSign,
  options: SignOptions & { now?: Date },
): Promise<Required<DecisionSignature>> {
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
    signedAt: (options.now ?? new Date()).toISOString(),
  };
  const signature = await signDecision(decisionPayload({ ...fields, ...decision }), options);
  return { ...fields, signature };
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
