/**
 * The scan gate's activity: the gate module (./gate.ts) run through the shared gate adapter, which reads every
 * manifest file from the artifact store, heartbeats progress, honours cancellation and stores the full evidence.
 */
import type { GateInput, GateResult } from '../../contract/types';
import { gateActivity } from '../gate/activity';
import type { ArtifactStore } from '../store/artifact-store';
import { scanGate } from './gate';

export { RULES, type RuleId, type ScanFinding } from './findings';
export { DEFAULT_ALLOWLIST, DENYLIST, GlobalPolicy } from './globals';
export { GATE, gateFindings, scanJson, scanSarif, scanText, scanVerdict } from './report';
export { scanTargets, type FileReport, type ScanReport, type ScanTarget } from './scan';

export { scanGate } from './gate';

export interface ScanDeps {
  /** Where artifacts are read and the evidence is stored. */
  store: ArtifactStore;
}

export function createScanActivities(deps: ScanDeps) {
  return {
    /**
     * Scan every file of the release's manifest for code in disguise (pickles, Keras Lambdas, TF Python ops),
     * malformed headers, archive tricks and secrets, and decide per the policy's `scan:` section.
     *
     * Idempotent: reads only, and stores the same evidence blob. Heartbeats `{ step, file, filesDone, filesTotal,
     * bytes }`: give it a heartbeat timeout. A bad `scan:` policy section is a non-retryable InvalidConfig failure; a
     * file that could not be examined makes the verdict `error`, never `pass`.
     */
    scanModel: gateActivity(scanGate, deps) as (input: GateInput) => Promise<GateResult>,
  };
}
