/**
 * The gate registry: every gate of the release, in plan order. Worker registration (which activities each task
 * queue serves), the policy sections the config check knows, the GitOps annotations (`<gate>-verdict`) and the
 * release plan's gate steps all derive from this list; test/gates checks that they agree.
 *
 * Adding a gate: write its module on the gate contract (activities/gate/gate.ts), add it here, and add its step to
 * the release plan (workflows/plan.ts).
 */
import { costGate } from './cost/gate';
import { modelGate } from './evaluate/model-gates';
import type { Gate } from './gate/gate';
import { licenseGate } from './license/gate';
import { scanGate } from './scan/gate';
import { imageGate } from './scan/image/image-gate';

/** What is known of a gate without a worker: its name, policy section, activity, queue and when it applies. */
export type GateDescriptor = Pick<Gate, 'name' | 'section' | 'activity' | 'queue' | 'when' | 'parsePolicy'>;

function describe(gate: Gate<never, never>): GateDescriptor {
  const { name, section, activity, queue, when, parsePolicy } = gate as unknown as Gate;
  return { name, section, activity, queue, ...(when ? { when } : {}), parsePolicy };
}

/** Every gate after acquire, in the order the release plan runs them. */
export const GATES: readonly GateDescriptor[] = [
  scanGate,
  licenseGate,
  imageGate({}),
  modelGate('fairness'),
  modelGate('robustness'),
  modelGate('explain'),
  costGate({}),
].map((gate) => describe(gate as unknown as Gate<never, never>));

/** The policy sections gates read (`scan`, `license`, `image`, `evaluation`, `cost`). */
export const GATE_SECTIONS: readonly string[] = [...new Set(GATES.map((g) => g.section))];

/** The activities each task queue's worker registers for gates. */
export function gateActivities(queue: Gate['queue']): string[] {
  return GATES.filter((g) => g.queue === queue).map((g) => g.activity);
}
