/**
 * The risk premium: an expected cost of failure per month, from how strong the release's evidence is.
 *
 *   premium = incidentCost × exposure(environment) × Σ over the policy's gates of weight(g) × p(verdict of g)
 *
 * where p is the policy's monthly incident probability for the gate's verdict (`missing` when the gate did not run
 * for this release). A release with warn or missing evidence thus carries a higher expected cost than one whose
 * gates all passed. It is reported apart from compute and added into the total cost of ownership. Pure.
 */
import type { CostPolicy } from './policy';
import type { EarlierGate } from '../../contract/types';

export interface RiskTerm {
  gate: string;
  state: 'pass' | 'warn' | 'fail' | 'error' | 'missing';
  probability: number;
  weight: number;
  /** USD per month this gate's term adds. */
  expectedCost: number;
}

export interface RiskPremium {
  monthly: number;
  incidentCost: number;
  exposure: number;
  terms: RiskTerm[];
}

export function riskPremium(
  earlier: Pick<EarlierGate, 'gate' | 'verdict'>[],
  environment: string,
  policy: CostPolicy['riskPremium'],
): RiskPremium {
  const exposure = Object.hasOwn(policy.environmentExposure, environment)
    ? (policy.environmentExposure[environment] as number)
    : policy.defaultExposure;
  const terms = Object.entries(policy.gates).map(([gate, weight]): RiskTerm => {
    // The last result of a gate counts (a gate re-run after a waiver replaces the earlier one).
    const result = [...earlier].reverse().find((g) => g.gate === gate);
    const state = result?.verdict ?? 'missing';
    const probability = policy.monthlyIncidentProbability[state];
    return { gate, state, probability, weight, expectedCost: policy.incidentCost * exposure * weight * probability };
  });
  return {
    monthly: terms.reduce((s, t) => s + t.expectedCost, 0),
    incidentCost: policy.incidentCost,
    exposure,
    terms,
  };
}
