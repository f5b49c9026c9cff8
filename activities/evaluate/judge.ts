/**
 * Turns each gate's report into findings and a verdict under the policy. Pure: the same report and policy always
 * give the same verdict, which is what lets the evidence be replayed.
 */
import { MAX_RESULT_FINDINGS } from '../../contract/limits';
import type { FairnessPolicy, MetricBound, ExplainabilityPolicy, RobustnessPolicy } from './policy';
import { applyWaivers, severityCounts, verdictFor } from '../common/gate-kit';
import type { Finding, GateResult, Severity, Waiver } from '../../contract/types';
import type { BetweenGroupMetricName } from './fairness';
import type { FairnessReport } from './fairness-report';
import type { RobustnessReport } from './run-robustness';
import type { ExplainReport } from './run-explain';

export const GATES = { fairness: 'fairness', robustness: 'robustness', explain: 'explain' } as const;

export interface Judgement {
  findings: Finding[];
  incomplete: boolean;
  summary: string;
  metrics: Record<string, number | string | boolean>;
}

const fmt = (v: number): string => (Number.isFinite(v) ? String(Math.round(v * 10_000) / 10_000) : String(v));

/** Fairness: every bounded metric of every attribute, on the point estimate or the conservative CI end. */
export function judgeFairness(report: FairnessReport, policy: FairnessPolicy): Judgement {
  const findings: Finding[] = [];
  let incomplete = false;
  const metrics: Record<string, number | string | boolean> = {};
  const gate = GATES.fairness;
  const insufficientSeverity: Severity = policy.insufficientData === 'fail' ? 'high' : 'medium';
  const worst: Partial<Record<BetweenGroupMetricName, number>> = {};
  for (const [attribute, a] of Object.entries(report.attributes)) {
    metrics[`${attribute}.groups`] = Object.keys(a.groups).length;
    for (const value of a.insufficientGroups) {
      if (policy.insufficientData === 'error') incomplete = true;
      findings.push({
        gate,
        ruleId: 'fairness.insufficient-data',
        severity: insufficientSeverity,
        location: `${attribute}=${value}`,
        message: `group ${attribute}=${value} has ${a.groups[value]!.count} rows, fewer than minGroupSize ${policy.minGroupSize}: it is not compared`,
        waivable: true,
      });
    }
    for (const [name, bound] of Object.entries(policy.bounds) as [BetweenGroupMetricName, MetricBound][]) {
      const point = a[name];
      // AIF360's metrics need a declared privileged group; without one they are not judged.
      if (point === undefined) continue;
      metrics[`${attribute}.${name}`] = Number.isFinite(point) ? point : String(point);
      if (!Number.isFinite(point)) {
        incomplete = true;
        findings.push({
          gate,
          ruleId: 'fairness.undefined-metric',
          severity: 'medium',
          location: attribute,
          message: `${name} for ${attribute} is undefined (fewer than two groups with enough data, or every rate zero): it cannot be judged`,
          waivable: false,
        });
        continue;
      }
      const ci = a.ci[name];
      const useCi = policy.judge === 'ci' && ci !== undefined && Number.isFinite(ci.lower);
      const low = useCi ? ci.lower : point;
      const high = useCi ? ci.upper : point;
      const judged = useCi
        ? `the ${Math.round(policy.confidence * 100)}% CI [${fmt(low)}, ${fmt(high)}]`
        : 'the point estimate';
      const problems: string[] = [];
      if (bound.max !== undefined && high > bound.max) problems.push(`above the maximum ${bound.max}`);
      if (bound.min !== undefined && low < bound.min) problems.push(`below the minimum ${bound.min}`);
      if (bound.max !== undefined) worst[name] = Math.max(worst[name] ?? -Infinity, high);
      else if (bound.min !== undefined) worst[name] = Math.min(worst[name] ?? Infinity, low);
      if (problems.length > 0) {
        findings.push({
          gate,
          ruleId: `fairness.${name}`,
          severity: 'high',
          location: attribute,
          message: `${name} for ${attribute} is ${fmt(point)}; judged on ${judged}, it is ${problems.join(' and ')}`,
          waivable: true,
        });
      }
    }
  }
  for (const [name, v] of Object.entries(worst)) metrics[`judged.${name}`] = v;
  const violations = findings.filter((f) => f.severity === 'high' && f.ruleId !== 'fairness.insufficient-data');
  const summary =
    violations.length > 0
      ? `${violations.length} fairness bound(s) exceeded: ${violations
          .slice(0, 3)
          .map((f) => `${f.ruleId.slice('fairness.'.length)} (${f.location})`)
          .join(', ')}`
      : `fairness within bounds over ${Object.keys(report.attributes).join(', ')} (judged on ${policy.judge === 'ci' ? 'CI bounds' : 'point estimates'})`;
  return { findings, incomplete, summary, metrics };
}

/** Robustness: adversarial accuracy at the policy's ε, and the gap between groups. */
export function judgeRobustness(report: RobustnessReport, policy: RobustnessPolicy, minGroupSize: number): Judgement {
  const gate = GATES.robustness;
  const findings: Finding[] = [];
  const at = report.epsilons.find((e) => e.epsilon === policy.epsilon);
  const metrics: Record<string, number | string | boolean> = {
    attack: report.attack,
    epsilon: policy.epsilon,
    rowsAttacked: report.rows,
    movableColumns: report.movableColumns.length,
  };
  if (!at) {
    return {
      findings: [],
      incomplete: true,
      summary: `no result at the judged epsilon ${policy.epsilon}`,
      metrics,
    };
  }
  metrics.cleanAccuracy = at.cleanAccuracy;
  metrics.adversarialAccuracy = at.adversarialAccuracy;
  metrics.attackSuccessRate = at.attackSuccessRate;
  for (const e of report.epsilons) metrics[`adversarialAccuracy@${e.epsilon}`] = e.adversarialAccuracy;
  if (report.movableColumns.length === 0) {
    findings.push({
      gate,
      ruleId: 'robustness.nothing-to-attack',
      severity: 'info',
      location: 'features',
      message: 'no continuous, mutable, unprotected feature: the attack could not move any input',
      waivable: false,
    });
  }
  if (at.adversarialAccuracy < policy.minAdversarialAccuracy) {
    findings.push({
      gate,
      ruleId: 'robustness.adversarial-accuracy',
      severity: 'high',
      location: `epsilon=${policy.epsilon}`,
      message: `${report.attack.toUpperCase()} at ε=${policy.epsilon} leaves an accuracy of ${fmt(at.adversarialAccuracy)} (clean ${fmt(at.cleanAccuracy)}), below the minimum ${policy.minAdversarialAccuracy}`,
      waivable: true,
    });
  }
  for (const [attribute, groups] of Object.entries(at.groups)) {
    const sized = Object.entries(groups).filter(([, g]) => g.rows >= minGroupSize);
    if (sized.length < 2) continue;
    const accs = sized.map(([value, g]) => [value, g.adversarialAccuracy] as const);
    const lo = accs.reduce((a, b) => (b[1] < a[1] ? b : a));
    const hi = accs.reduce((a, b) => (b[1] > a[1] ? b : a));
    const gap = hi[1] - lo[1];
    metrics[`${attribute}.adversarialAccuracyGap`] = gap;
    if (gap > policy.maxGroupGap) {
      findings.push({
        gate,
        ruleId: 'robustness.group-gap',
        severity: 'medium',
        location: attribute,
        message: `adversarial accuracy at ε=${policy.epsilon} differs by ${fmt(gap)} between ${attribute}=${hi[0]} (${fmt(hi[1])}) and ${attribute}=${lo[0]} (${fmt(lo[1])}), more than ${policy.maxGroupGap}`,
        waivable: true,
      });
    }
  }
  const summary = `${report.attack.toUpperCase()} ε=${policy.epsilon}: adversarial accuracy ${fmt(at.adversarialAccuracy)} (clean ${fmt(at.cleanAccuracy)}, minimum ${policy.minAdversarialAccuracy})`;
  return { findings, incomplete: false, summary, metrics };
}

/** Explainability: protected attributes and their proxies among the top-k features. */
export function judgeExplain(report: ExplainReport, policy: ExplainabilityPolicy): Judgement {
  const gate = GATES.explain;
  const findings: Finding[] = [];
  const metrics: Record<string, number | string | boolean> = { method: report.method, rowsExplained: report.rows };
  const rankings: [string, string[]][] = [
    ['attribution', report.topByAttribution],
    ['permutation importance', report.topByPermutation],
  ];
  report.topByAttribution.forEach((f, i) => (metrics[`top${i + 1}`] = f));
  const flagged = new Set<string>();
  for (const [how, top] of rankings) {
    for (const name of top.slice(0, policy.topK)) {
      const feature = report.features.find((f) => f.feature === name)!;
      if (flagged.has(name)) continue;
      if (feature.protected) {
        flagged.add(name);
        findings.push({
          gate,
          ruleId: 'explain.protected-attribute',
          severity: 'medium',
          location: name,
          message: `the protected attribute ${name} is among the top ${policy.topK} features by ${how}`,
          waivable: true,
        });
      } else if (feature.proxyOf) {
        flagged.add(name);
        findings.push({
          gate,
          ruleId: 'explain.proxy',
          severity: 'medium',
          location: name,
          message: `${name} predicts the protected attribute ${feature.proxyOf.attribute} (AUC ${fmt(feature.proxyOf.auc)} ≥ ${policy.proxyThreshold}) and is among the top ${policy.topK} features by ${how}`,
          waivable: true,
        });
      }
    }
  }
  const summary =
    findings.length > 0
      ? `${findings.map((f) => f.location).join(', ')} among the top ${policy.topK} features (protected or proxy)`
      : `top ${policy.topK} features: ${report.topByAttribution.slice(0, policy.topK).join(', ')}; no protected attribute or proxy among them`;
  return { findings, incomplete: false, summary, metrics };
}

/**
 * The compact GateResult of a judgement (waivers applied, fail-closed verdict, findings capped at
 * MAX_RESULT_FINDINGS) and the full list of findings for the evidence.
 */
export function gateResult(options: {
  gate: string;
  judgement: Judgement;
  waivers: Waiver[];
  extraMetrics: Record<string, number | string | boolean>;
  evidence?: string;
  annotations?: Record<string, string>;
  startedAt: string;
  finishedAt: string;
}): { result: GateResult; findings: Finding[] } {
  const { judgement } = options;
  const findings = applyWaivers(judgement.findings, options.waivers, options.finishedAt);
  const verdict = verdictFor({ findings, failOn: 'high', warnOn: 'medium', incomplete: judgement.incomplete });
  const kept = findings.slice(0, MAX_RESULT_FINDINGS);
  const result: GateResult = {
    gate: options.gate,
    verdict,
    summary: judgement.summary,
    metrics: {
      ...judgement.metrics,
      ...options.extraMetrics,
      ...Object.fromEntries(Object.entries(severityCounts(findings)).map(([k, v]) => [`findings.${k}`, v])),
      findingsOmitted: findings.length - kept.length,
    },
    findings: kept,
    ...(options.evidence ? { evidence: options.evidence } : {}),
    ...(options.annotations ? { annotations: options.annotations } : {}),
    startedAt: options.startedAt,
    finishedAt: options.finishedAt,
  };
  return { result, findings };
}
