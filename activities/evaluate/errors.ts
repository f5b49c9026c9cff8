/** Errors of the evaluation stage: each a stable code, so the activity and the CLI can map them. */
import { ProductError } from '../../contract/errors';

export type EvaluationErrorCode =
  /** The dataset is missing, unreadable, or a value in it is wrong (the message names column and row). */
  | 'InvalidDataset'
  /** The model cannot be found in the manifest, cannot be loaded, or does not fit its feature spec. */
  | 'InvalidModel'
  /** The policy's evaluation section or the request's evaluation block is wrong (the message names the field). */
  | 'InvalidEvaluationConfig'
  /** No tfjs backend could be loaded. */
  | 'BackendUnavailable'
  /** The dataset lies outside the file roots of config/sources.yaml (or under /proc, /sys, /dev). */
  | 'SourceNotAllowed';

/** A permanent problem with the evaluation's inputs: retrying cannot fix it. */
export class EvaluationError extends ProductError {
  readonly permanent = true;
  constructor(
    readonly code: EvaluationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, { ...options });
  }
}

/** A dataset problem at one place: `column income row 17: "abc" is not a number`. */
export function dataError(column: string | undefined, row: number | undefined, problem: string): EvaluationError {
  const where = [column === undefined ? undefined : `column ${column}`, row === undefined ? undefined : `row ${row}`]
    .filter(Boolean)
    .join(' ');
  return new EvaluationError('InvalidDataset', where ? `${where}: ${problem}` : problem);
}
