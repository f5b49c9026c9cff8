/**
 * The release commit's message: a subject people read in `git log --oneline`, a short body, and trailers that
 * machines read. The `Release-Id` trailer is the idempotency key of the gitops activity.
 */
import type { GitOpsReleaseInput } from '../../contract/types';
import { approvedBy, sha256Ref } from './render';

export const RELEASE_ID_TRAILER = 'Release-Id';
export const APPROVED_BY_TRAILER = 'Approved-by';

export function commitMessage(input: GitOpsReleaseInput): string {
  const { request, manifest, policy } = input;
  const gates = input.gates.map((g) => `${g.gate}=${g.verdict}`).join(', ') || 'none';
  const subject = `release ${request.model.name}@${request.model.version} to ${request.environment}`;
  const body = [
    `Manifest ${sha256Ref(manifest.manifestDigest)} (${'files' in manifest ? manifest.files.length : manifest.fileCount} files) from ${manifest.source}@${manifest.resolvedRevision}.`,
    `Policy ${policy.name}@${sha256Ref(policy.digest)}; gates ${gates}.`,
  ];
  const trailers = [
    `${RELEASE_ID_TRAILER}: ${input.releaseId}`,
    ...approvedBy(input).map((a) => `${APPROVED_BY_TRAILER}: ${a.approver} (${a.role})`),
  ];
  // Every value is flattened to one line: a newline in an approver's name must not forge a trailer of its own.
  return [oneLine(subject), '', ...body.map(oneLine), '', ...trailers.map(oneLine), ''].join('\n');
}

/**
 * True when the message's trailer block (its last paragraph) has `Release-Id: <releaseId>` as a whole line, so that
 * `release/a/1/prod` does not match a commit of `release/a/1/prod2`, nor a message that merely quotes the trailer.
 */
export function hasReleaseIdTrailer(message: string, releaseId: string): boolean {
  return hasTrailer(message, RELEASE_ID_TRAILER, releaseId);
}

/** True when the message's trailer block (its last paragraph) holds `<key>: <value>` as a whole line. */
export function hasTrailer(message: string, key: string, value: string): boolean {
  const paragraphs = message
    .replace(/\r\n/g, '\n')
    .trimEnd()
    .split(/\n[ \t]*\n/);
  const trailerBlock = paragraphs.length > 1 ? (paragraphs[paragraphs.length - 1] ?? '') : '';
  const wanted = `${key}: ${value}`;
  return trailerBlock.split('\n').some((line) => line.trimEnd() === wanted);
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}
