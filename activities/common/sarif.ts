/**
 * The one SARIF 2.1.0 writer: the model-file scan and the image scan both describe their rules and results here, so
 * both logs have the shape GitHub code scanning accepts (rules with ids, results with ruleId, ruleIndex and level, a
 * physical location whose artifact URI is a valid URI reference, suppressions for waived findings).
 */
import type { Severity } from '../../contract/types';
import { SARIF_LEVEL } from './gate-kit';

export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';
export const SARIF_VERSION = '2.1.0';

/** GitHub ranks alerts by `security-severity` (0–10, as a string) where a rule has no score of its own. */
export const SECURITY_SEVERITY: Record<Severity, string> = {
  critical: '9.5',
  high: '8.0',
  medium: '5.5',
  low: '3.0',
  info: '0.0',
};

export interface SarifRuleInput {
  id: string;
  /** PascalCase name, where the rule has one. */
  name?: string;
  shortDescription: string;
  fullDescription?: string;
  helpUri?: string;
  /** The level results of this rule have unless they say otherwise. */
  severity?: Severity;
  /** 0–10; see SECURITY_SEVERITY. */
  securitySeverity?: string;
  tags?: string[];
  properties?: Record<string, unknown>;
}

export interface SarifResultInput {
  ruleId: string;
  severity: Severity;
  message: string;
  /** The artifact: a relative or absolute path, or an image reference; percent-encoded here. */
  path: string;
  region?: { startLine: number; byteOffset?: number };
  /** What inside the artifact (a package in an image). */
  logicalLocation?: { name: string; kind: string };
  partialFingerprints?: Record<string, string>;
  /** Set for a waived finding: who accepted the risk and why. */
  suppression?: string;
  properties?: Record<string, unknown>;
}

export interface SarifTool {
  name: string;
  version: string;
}

interface SarifRule {
  id: string;
  name?: string;
  shortDescription: { text: string };
  fullDescription?: { text: string };
  helpUri?: string;
  defaultConfiguration?: { level: 'error' | 'warning' | 'note' };
  properties: Record<string, unknown>;
}

interface SarifResult {
  ruleId: string;
  ruleIndex: number;
  level: 'error' | 'warning' | 'note';
  message: { text: string };
  locations: {
    physicalLocation: { artifactLocation: { uri: string }; region?: { startLine: number; byteOffset?: number } };
    logicalLocations?: { name: string; kind: string }[];
  }[];
  partialFingerprints?: Record<string, string>;
  suppressions?: { kind: 'external'; justification: string }[];
  properties?: Record<string, unknown>;
}

/** A SARIF 2.1.0 log with one run. */
export interface SarifLog {
  $schema: string;
  version: typeof SARIF_VERSION;
  runs: {
    tool: { driver: { name: string; version: string; semanticVersion?: string; rules: SarifRule[] } };
    results: SarifResult[];
    properties?: Record<string, unknown>;
  }[];
}

const SEMVER = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/;

/**
 * Writes the log. Every result's rule must be among `rules` (a result without one is a bug in the caller, and
 * SARIF consumers would drop it silently, so it throws).
 */
export function sarifLog(
  tool: SarifTool,
  rules: SarifRuleInput[],
  results: SarifResultInput[],
  runProperties?: Record<string, unknown>,
): SarifLog {
  const index = new Map(rules.map((r, i) => [r.id, i] as const));
  return {
    $schema: SARIF_SCHEMA,
    version: SARIF_VERSION,
    runs: [
      {
        tool: {
          driver: {
            name: tool.name,
            version: tool.version,
            ...(SEMVER.test(tool.version) ? { semanticVersion: tool.version } : {}),
            rules: rules.map(sarifRule),
          },
        },
        ...(runProperties ? { properties: runProperties } : {}),
        results: results.map((r) => {
          const ruleIndex = index.get(r.ruleId);
          if (ruleIndex === undefined) throw new Error(`SARIF result for rule ${r.ruleId}, which is not in the rules`);
          return sarifResult(r, ruleIndex);
        }),
      },
    ],
  };
}

function sarifRule(r: SarifRuleInput): SarifRule {
  return {
    id: r.id,
    ...(r.name ? { name: r.name } : {}),
    shortDescription: { text: r.shortDescription },
    ...(r.fullDescription ? { fullDescription: { text: r.fullDescription } } : {}),
    ...(r.helpUri ? { helpUri: r.helpUri } : {}),
    ...(r.severity ? { defaultConfiguration: { level: SARIF_LEVEL[r.severity] } } : {}),
    properties: {
      ...(r.tags ? { tags: r.tags } : {}),
      ...(r.securitySeverity === undefined ? {} : { 'security-severity': r.securitySeverity }),
      ...r.properties,
    },
  };
}

function sarifResult(r: SarifResultInput, ruleIndex: number): SarifResult {
  return {
    ruleId: r.ruleId,
    ruleIndex,
    level: SARIF_LEVEL[r.severity],
    message: { text: r.message },
    locations: [
      {
        physicalLocation: {
          artifactLocation: { uri: uriReference(r.path) },
          ...(r.region ? { region: r.region } : {}),
        },
        ...(r.logicalLocation ? { logicalLocations: [r.logicalLocation] } : {}),
      },
    ],
    ...(r.partialFingerprints ? { partialFingerprints: r.partialFingerprints } : {}),
    ...(r.suppression === undefined ? {} : { suppressions: [{ kind: 'external', justification: r.suppression }] }),
    ...(r.properties ? { properties: r.properties } : {}),
  };
}

/**
 * A path as a URI reference: each segment percent-encoded, slashes kept. An image reference's `host:port` and
 * `@sha256:` so cannot be read as a URI scheme.
 */
export function uriReference(path: string): string {
  return path
    .replace(/\\/g, '/')
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}
