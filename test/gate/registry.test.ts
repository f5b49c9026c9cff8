import { describe, expect, it } from 'vitest';
import { GATE_POLICY_SECTIONS } from '../../activities/gate-policies';
import { GATE_SECTIONS, GATES, gateActivities } from '../../activities/gates';
import { createEvaluationActivities } from '../../activities/evaluate';
import { createReleaseActivities } from '../../activities';
import { FilesystemStore } from '../../activities/store';
import { tmpdir } from 'node:os';

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
