/**
 * Severity of an advisory for a package: the highest CVSS base score among its vectors (v4.0, v3.x, v2), mapped to
 * the qualitative scale of CVSS v3/v4 (0 none/info, <4 low, <7 medium, <9 high, else critical); without a vector,
 * the database's own rating (GHSA's LOW/MODERATE/HIGH/CRITICAL, Debian's urgency, Ubuntu's priority).
 */
import cvss from 'ae-cvss-calculator';
import type { Severity } from '../../../contract/types';
import type { OsvAdvisory, OsvAffected, OsvSeverity } from './osv';

export interface ScoredSeverity {
  severity: Severity;
  score?: number;
  vector?: string;
  /** Where the rating came from: `CVSS_V3`, `CVSS_V4`, `database`, `default`. */
  source: string;
}

/** CVSS base score of a vector, or undefined when the vector is not one the calculator reads. */
export function cvssBaseScore(vector: string): number | undefined {
  try {
    const parsed = (
      cvss as unknown as { fromVector(v: string): { calculateScores(): { base?: number } } | null }
    ).fromVector(vector.trim());
    const base = parsed?.calculateScores().base;
    return typeof base === 'number' && Number.isFinite(base) ? base : undefined;
  } catch {
    return undefined;
  }
}

/** The CVSS v3/v4 qualitative rating of a base score. */
export function severityOfScore(score: number): Severity {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  if (score > 0) return 'low';
  return 'info';
}

const WORDS: Record<string, Severity> = {
  critical: 'critical',
  high: 'high',
  important: 'high',
  moderate: 'medium',
  medium: 'medium',
  low: 'low',
  negligible: 'info',
  unimportant: 'info',
  'not yet assigned': 'medium',
};

/** The severity of `advisory` for the package its `affected` entry describes. */
export function advisorySeverity(
  advisory: OsvAdvisory,
  affected: OsvAffected | undefined,
  fallback: Severity,
): ScoredSeverity {
  // Per-package severities (OSV 1.5+) are more specific than the advisory's.
  const vectors: OsvSeverity[] = [...(affected?.severity ?? []), ...(advisory.severity ?? [])];
  let best: ScoredSeverity | undefined;
  for (const s of vectors) {
    if (!s.type.startsWith('CVSS_')) continue;
    const score = cvssBaseScore(s.score);
    if (score === undefined) continue;
    if (!best || (best.score ?? -1) < score) {
      best = { severity: severityOfScore(score), score, vector: s.score, source: s.type };
    }
  }
  if (best) return best;
  for (const s of vectors) {
    const word = WORDS[s.score.toLowerCase()];
    if (word) return { severity: word, source: s.type };
  }
  const rated = [
    affected?.database_specific?.severity,
    affected?.ecosystem_specific?.severity,
    affected?.ecosystem_specific?.urgency,
    advisory.database_specific?.severity,
  ];
  for (const r of rated) {
    const word = typeof r === 'string' ? WORDS[r.toLowerCase()] : undefined;
    if (word) return { severity: word, source: 'database' };
  }
  return { severity: fallback, source: 'default' };
}
