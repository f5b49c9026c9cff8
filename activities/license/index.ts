/**
 * The license gate's activity: the gate module (./gate.ts) through the shared gate adapter, which reads the model's
 * files through the manifest (by digest, from the artifact store), heartbeats per source file and stores the full
 * evidence.
 */
import type { GateInput, GateResult } from '../../contract/types';
import { gateActivity } from '../gate/activity';
import type { ArtifactStore } from '../store/artifact-store';
import { licenseGate } from './gate';

export { checkModelLicense, GATE, LICENSE_RULES, LicensePolicyError } from './check';
export type { CheckOptions, Conflict, LicensePart, LicenseReport } from './check';
export { licenseGate } from './gate';
export { directoryFiles, manifestFiles } from './model-files';
export { licensePolicyProblems } from './policy-check';
export type { ModelFile, ModelFiles } from './model-files';

export interface LicenseDeps {
  /** Where the artifacts are read and the evidence is stored. */
  store: ArtifactStore;
}

export function createLicenseActivities(deps: LicenseDeps) {
  return {
    /**
     * The license gate. Verdicts: `pass` (allowed), `warn` (review: `requiredApprovals` asks for the policy's review
     * role), `fail` (denied), `error` (a source could not be read; never `pass`). Idempotent: reads the store and
     * stores the same evidence blob. Heartbeats `{ step, file, done, total }` per source file and stops when
     * cancelled. An invalid policy is a non-retryable InvalidConfig failure; store read errors are retried.
     */
    checkLicense: gateActivity(licenseGate, deps) as (input: GateInput) => Promise<GateResult>,
  };
}

export type LicenseActivities = ReturnType<typeof createLicenseActivities>;
