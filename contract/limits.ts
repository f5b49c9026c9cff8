/**
 * Bounds on everything that reaches a release's history and status. Signals have no validator, so a payload of any
 * size can arrive; these keep the status (and so every query, update answer and the UI's details) under a fixed size
 * whatever comes in. Deterministic: imported by workflow code.
 */

/** Approver ids in approvers.yaml; longer is never a real id. */
export const MAX_APPROVER_CHARS = 128;
/** Decision comments and waiver justifications. */
export const MAX_COMMENT_CHARS = 2000;
/** Reasons, summaries and finding messages kept in the status. */
export const MAX_TEXT_CHARS = 1000;
/** Finding locations (paths with offsets). */
export const MAX_LOCATION_CHARS = 512;
/** Findings kept per gate in the status; the gate's evidence file keeps all of them. */
export const MAX_FINDINGS_PER_GATE = 50;
/** Findings a gate activity returns in its result (history); the evidence in the store keeps all of them. */
export const MAX_RESULT_FINDINGS = 200;
/** Metrics kept per gate in the status. */
export const MAX_METRICS_PER_GATE = 64;
/** Refused decisions kept in the status: the first ones and the latest ones; the rest are only counted. */
export const MAX_REFUSED = 20;
/** Waivers one release holds at most (each up to ~11 KB with its signature): enough for every gate's findings. */
export const MAX_WAIVERS = 20;
/** Undelivered notifications kept in the status. */
export const MAX_NOTIFICATION_FAILURES = 10;
/** A generous ceiling that a test checks the serialized status against, whatever arrives. */
export const MAX_STATUS_BYTES = 512 * 1024;

/** `text` cut to `max` characters, saying how much was cut. */
export function clip(text: string, max: number = MAX_TEXT_CHARS): string {
  if (text.length <= max) return text;
  const note = `… (${text.length - max} more characters)`;
  return text.slice(0, Math.max(0, max - note.length)) + note;
}
