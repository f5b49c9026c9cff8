/**
 * The `drift:` part of a policy's `monitor:` section: Evidently's defaults unless the policy says otherwise, per
 * feature or per column type.
 *
 *   monitor:
 *     drift:
 *       driftShare: 0.5                       # dataset drift when this share of the features drifted
 *       numerical: { method: psi, threshold: 0.2 }
 *       features:
 *         age: { method: wasserstein, threshold: 0.15 }
 *         zip: { type: categorical }
 */
import { InvalidPolicy } from '../../gate/gate';
import type { ColumnType } from './read';

export const NUMERICAL_METHODS = ['ks', 'wasserstein', 'psi'] as const;
export const CATEGORICAL_METHODS = ['chisquare', 'jensenshannon', 'psi'] as const;
export type DriftMethod = (typeof NUMERICAL_METHODS)[number] | (typeof CATEGORICAL_METHODS)[number];

/** p-value tests drift below their threshold; distances drift at or above it. */
export const P_VALUE_METHODS: readonly DriftMethod[] = ['ks', 'chisquare'];

/** Evidently's default threshold of each method. */
export const DEFAULT_THRESHOLDS: Record<DriftMethod, number> = {
  ks: 0.05,
  chisquare: 0.05,
  wasserstein: 0.1,
  jensenshannon: 0.1,
  psi: 0.1,
};

/** Evidently switches from the tests to the distances above this many reference rows. */
export const SMALL_REFERENCE_ROWS = 1000;

export interface MethodChoice {
  method?: DriftMethod;
  threshold?: number;
}

export interface FeatureChoice extends MethodChoice {
  type?: ColumnType;
}

export interface DriftPolicy {
  driftShare: number;
  numerical: MethodChoice;
  categorical: MethodChoice;
  features: Record<string, FeatureChoice>;
}

export const DEFAULT_DRIFT_POLICY: DriftPolicy = { driftShare: 0.5, numerical: {}, categorical: {}, features: {} };

/** Parses `monitor:` (other keys of it belong to the monitor's metrics and are not read here). */
export function parseDriftPolicy(section: unknown, file: string): DriftPolicy {
  if (section === undefined || section === null) return DEFAULT_DRIFT_POLICY;
  const problems: string[] = [];
  if (!isMapping(section)) throw new InvalidPolicy(file, 'monitor', ['monitor: must be a mapping']);
  const drift = section.drift;
  if (drift === undefined || drift === null) return DEFAULT_DRIFT_POLICY;
  if (!isMapping(drift)) throw new InvalidPolicy(file, 'monitor', ['monitor.drift: must be a mapping']);
  const policy: DriftPolicy = { driftShare: 0.5, numerical: {}, categorical: {}, features: {} };
  for (const key of Object.keys(drift)) {
    if (!['driftShare', 'numerical', 'categorical', 'features'].includes(key)) {
      problems.push(`monitor.drift.${key}: unknown field (known: driftShare, numerical, categorical, features)`);
    }
  }
  if (drift.driftShare !== undefined) {
    const share = drift.driftShare;
    if (typeof share !== 'number' || !(share > 0 && share <= 1)) {
      problems.push('monitor.drift.driftShare: must be a number in (0, 1]');
    } else policy.driftShare = share;
  }
  for (const type of ['numerical', 'categorical'] as const) {
    if (drift[type] !== undefined) policy[type] = parseChoice(drift[type], `monitor.drift.${type}`, type, problems);
  }
  if (drift.features !== undefined) {
    if (!isMapping(drift.features)) problems.push('monitor.drift.features: must be a mapping of column → settings');
    else {
      for (const [name, value] of Object.entries(drift.features)) {
        const field = `monitor.drift.features.${name}`;
        if (!isMapping(value)) {
          problems.push(`${field}: must be a mapping (type, method, threshold)`);
          continue;
        }
        const type = value.type;
        if (type !== undefined && type !== 'numerical' && type !== 'categorical') {
          problems.push(`${field}.type: must be numerical or categorical`);
          continue;
        }
        const { type: _type, ...rest } = value;
        policy.features[name] = { ...parseChoice(rest, field, type, problems), ...(type ? { type } : {}) };
      }
    }
  }
  if (problems.length > 0) throw new InvalidPolicy(file, 'monitor', problems);
  return policy;
}

function parseChoice(value: unknown, field: string, type: ColumnType | undefined, problems: string[]): MethodChoice {
  if (!isMapping(value)) {
    problems.push(`${field}: must be a mapping (method, threshold)`);
    return {};
  }
  const choice: MethodChoice = {};
  for (const key of Object.keys(value)) {
    if (key !== 'method' && key !== 'threshold')
      problems.push(`${field}.${key}: unknown field (known: method, threshold)`);
  }
  const allowed: readonly string[] =
    type === 'numerical'
      ? NUMERICAL_METHODS
      : type === 'categorical'
        ? CATEGORICAL_METHODS
        : [...NUMERICAL_METHODS, ...CATEGORICAL_METHODS.slice(0, 2)];
  if (value.method !== undefined) {
    if (typeof value.method !== 'string' || !allowed.includes(value.method)) {
      problems.push(`${field}.method: must be one of ${allowed.join(', ')}`);
    } else choice.method = value.method as DriftMethod;
  }
  if (value.threshold !== undefined) {
    if (typeof value.threshold !== 'number' || !(value.threshold > 0)) {
      problems.push(`${field}.threshold: must be a positive number`);
    } else choice.threshold = value.threshold;
  }
  return choice;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
