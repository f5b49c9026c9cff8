/**
 * The release plan and the workflow's frozen request checks, without Temporal: which phases a request gets, which
 * queue and timeouts each plan version schedules on, and that the door's schema can change without changing the
 * check a running release replays with.
 */
import { describe, expect, it } from 'vitest';
import { EVALUATION_TASK_QUEUE } from '../../contract/definitions';
import { releaseRequestSchema, type ReleaseRequest } from '../../contract/types';
import { evidenceBundle } from '../../workflows/evidence';
import { activityOptions, GATE_STAGES, phasesFor, type PlanVersion } from '../../workflows/plan';
import { ReleaseState } from '../../workflows/release-state';
import { requestSchemaFor } from '../../workflows/request-check';

const NEW: PlanVersion = {
  hardened: true,
  notifying: true,
  contentGates: true,
  planned: true,
  delivering: true,
  monitoring: true,
};
const HARDENED: PlanVersion = { ...NEW, planned: false, delivering: false, monitoring: false };
const V0: PlanVersion = {
  hardened: false,
  notifying: false,
  contentGates: false,
  planned: false,
  delivering: false,
  monitoring: false,
};

const request: ReleaseRequest = {
  model: { name: 'credit-risk', version: '1.0.0', source: 'file:///models/credit-risk' },
  environment: 'production',
  policy: 'default',
  requestedBy: 'ci',
};
const evaluation = { dataset: 'file:///data/holdout.csv', label: 'label', protected: ['group'], favorable: 1 };
const digest = 'a'.repeat(64);

describe('phases', () => {
  it('gives every combination of optional gates a stage of its own, in plan order', () => {
    const stages = (r: ReleaseRequest) => phasesFor(r, NEW).map((p) => p.stage);
    expect(stages(request)).toEqual(['acquire', 'scan+license', 'cost']);
    expect(stages({ ...request, image: { ref: 'registry/serving:1' }, evaluation })).toEqual([
      'acquire',
      'scan+license+image',
      'fairness+robustness+explain',
      'cost',
    ]);
    for (const phase of phasesFor({ ...request, image: { ref: 'r' }, evaluation }, NEW))
      expect(GATE_STAGES).toContain(phase.gates.map((g) => g.name).join('+'));
  });

  it('keeps releases from before the content gates at acquire only', () => {
    expect(phasesFor({ ...request, evaluation }, V0).map((p) => p.stage)).toEqual(['acquire']);
  });
});

describe('activity options', () => {
  const config = { taskQueues: { release: 'cpu', evaluation: 'gpu-pool' }, scheduleToStartTimeout: '5s' };

  it('routes new releases to the configured evaluation queue, with its schedule-to-start timeout', () => {
    expect(activityOptions('evaluation', NEW, config)).toMatchObject({
      taskQueue: 'gpu-pool',
      scheduleToStartTimeout: 5_000,
    });
    expect(activityOptions('long', NEW, config).taskQueue).toBeUndefined();
  });

  it('keeps releases started before the plan on the queue and timeouts they began with', () => {
    expect(activityOptions('evaluation', HARDENED, config)).toMatchObject({
      taskQueue: EVALUATION_TASK_QUEUE,
      scheduleToStartTimeout: '2 minutes',
    });
    expect(activityOptions('evaluation', V0, config).taskQueue).toBe(EVALUATION_TASK_QUEUE);
    expect(activityOptions('evaluation', V0, config).scheduleToStartTimeout).toBeUndefined();
  });
});

describe('request checks', () => {
  it('pins the dataset digest only for releases of the release plan', () => {
    const pinned = { ...request, evaluation: { ...evaluation, sha256: digest } };
    expect(requestSchemaFor(NEW).parse(pinned).evaluation).toMatchObject({ sha256: digest });
    expect(requestSchemaFor(HARDENED).parse(pinned).evaluation).not.toHaveProperty('sha256');
    expect(requestSchemaFor(NEW).safeParse({ ...pinned, evaluation: { ...evaluation, sha256: 'x' } }).success).toBe(
      false,
    );
  });

  it('accepts today what the door accepts, in every plan version (the door may only tighten from here)', () => {
    const full = { ...request, image: { ref: 'r' }, evaluation, team: 'risk', costCenter: 'cc-1' };
    expect(releaseRequestSchema.safeParse(full).success).toBe(true);
    for (const version of [NEW, HARDENED, V0]) expect(requestSchemaFor(version).safeParse(full).success).toBe(true);
    // Bounds that hardening-v1 introduced stay in its frozen copy.
    const long = { ...request, requestedBy: 'x'.repeat(129) };
    expect(requestSchemaFor(HARDENED).safeParse(long).success).toBe(false);
    expect(requestSchemaFor(V0).safeParse(long).success).toBe(true);
  });
});

describe('evidence bundle', () => {
  it('names each gate evidence and attachment by digest and indexes config, decisions and verdicts', () => {
    const state = new ReleaseState(request, 'release/credit-risk/1.0.0/production', [], '2025-01-01T00:00:00.000Z');
    const at = '2025-01-01T00:00:01.000Z';
    const gate = { metrics: {}, findings: [], startedAt: at, finishedAt: at };
    state.recordGate({ ...gate, gate: 'acquire', verdict: 'pass', summary: '4 file(s)' }, at);
    state.recordGate(
      {
        ...gate,
        gate: 'image',
        verdict: 'warn',
        summary: '1 medium',
        evidence: `sha256:${digest}`,
        attachments: [{ name: 'sbom.cdx.json', digest: `sha256:${'b'.repeat(64)}` }],
      },
      at,
    );
    state.status.approvals.push({ approver: 'amara', role: 'release-manager', roles: [], decision: 'approve', at });
    const bundle = evidenceBundle(state, {
      policy: { name: 'default', file: 'policies/default.yaml', digest: 'p' },
      approversFile: { file: 'approvers.yaml', digest: 'q' },
      waiversFile: { file: 'waivers.yaml', digest: 'w' },
      approval: { environment: 'production', minApprovers: 1, allowedRoles: [], requiredRoles: [], timeout: '72h' },
      approvers: {},
      gatePolicies: {},
      waivers: [],
    });
    expect(bundle.entries).toEqual([
      { name: 'gates/image.json', sha256: `sha256:${digest}` },
      { name: 'gates/image/sbom.cdx.json', sha256: `sha256:${'b'.repeat(64)}` },
    ]);
    expect(bundle.index).toMatchObject({
      policy: { name: 'default', file: 'policies/default.yaml', digest: 'p' },
      approvers: { file: 'approvers.yaml', digest: 'q' },
      waivers: { file: 'waivers.yaml', digest: 'w' },
      decisions: [{ approver: 'amara' }],
      refusedDecisions: [],
      gates: [
        { gate: 'acquire', verdict: 'pass', summary: '4 file(s)' },
        { gate: 'image', verdict: 'warn', evidenceSha256: `sha256:${digest}` },
      ],
    });
  });
});
