import { describe, expect, it } from 'vitest';
import { GATE_POLICY_SECTIONS } from '../../activities/gate-policies';
import { GATE_SECTIONS, GATES, gateActivities } from '../../activities/gates';
import { createEvaluationActivities } from '../../activities/evaluate';
import { createReleaseActivities } from '../../activities';
import { FilesystemStore } from '../../activities/store';
import { tmpdir } from 'node:os';
import { phasesFor } from '../../workflows/plan';

describe('the gate registry', () => {
  it('names each gate, activity and section once', () => {
    const names = GATES.map((g) => g.name);
    expect(new Set(names).size).toBe(names.length);
    expect(new Set(GATES.map((g) => g.activity)).size).toBe(GATES.length);
    expect(names).toEqual(['scan', 'license', 'image', 'fairness', 'robustness', 'explain', 'cost']);
  });

  it('is what the config check validates: every gate section has a validator and no validator lacks a gate', () => {
    expect(Object.keys(GATE_POLICY_SECTIONS).sort()).toEqual([...GATE_SECTIONS].sort());
  });

  it('is what the workers register: each queue serves exactly its gates', () => {
    const store = new FilesystemStore(tmpdir());
    const release = createReleaseActivities({
      storeRoot: tmpdir(),
      store,
      gitops: { repository: tmpdir(), branch: 'main' } as never,
    });
    for (const activity of gateActivities('release'))
      expect(typeof release[activity as keyof typeof release]).toBe('function');
    const evaluation = createEvaluationActivities({ store, backend: { name: 'cpu' } as never });
    expect(Object.keys(evaluation).sort()).toEqual(gateActivities('evaluation').sort());
  });

  it("rejects an invalid section the same way the gate's own parser does", () => {
    for (const gate of GATES) {
      expect(() => gate.parsePolicy({ notAField: true }, 'config/policies/x.yaml'), gate.name).toThrow(
        /notAField|unknown|unrecognized/i,
      );
    }
  });
});

describe('the release plan and the registry', () => {
  it('run the same gates, with the same activities, policy sections, queues and conditions', () => {
    const full = {
      model: { name: 'demo', version: '1.0.0', source: 'file:///models/demo' },
      image: { ref: '127.0.0.1:5000/serve:1' },
      environment: 'staging',
      policy: 'default',
      evaluation: { dataset: 'file:///data/eval.csv', label: 'y', protected: ['group'], favorable: 1 },
      requestedBy: 'ci',
    };
    const version = {
      hardened: true,
      notifying: true,
      contentGates: true,
      planned: true,
      delivering: true,
      monitoring: true,
    };
    const planned = phasesFor(full, version)
      .flatMap((phase) => phase.gates)
      .filter((step) => step.activity !== undefined);
    expect(planned.map((s) => s.name)).toEqual(GATES.map((g) => g.name));
    for (const step of planned) {
      const gate = GATES.find((g) => g.name === step.name);
      expect(step.activity, step.name).toBe(gate?.activity);
      expect(step.section ?? step.name, step.name).toBe(gate?.section);
      expect(step.profile === 'evaluation' ? 'evaluation' : 'release', step.name).toBe(gate?.queue);
    }
    // Without an image or an evaluation, the plan drops exactly the gates whose `when` says so.
    const bare = { ...full, image: undefined, evaluation: undefined };
    const bareNames = phasesFor(bare, version).flatMap((p) => p.gates.map((g) => g.name));
    const expected = ['acquire', ...GATES.filter((g) => g.when?.(bare) ?? true).map((g) => g.name)];
    expect(bareNames).toEqual(expected);
  });
});
