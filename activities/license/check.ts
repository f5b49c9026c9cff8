/**
 * The license gate's decision, without Temporal: collect what the model says about its license, combine it into
 * one expression, evaluate that against the policy, and turn the result into findings and a verdict.
 *
 * Combining: every declaration (model card, package metadata) applies, so they are joined with AND; a license file
 * whose license a declaration already names is explained by it (the usual dual-license layout: `MIT OR Apache-2.0`
 * in metadata, LICENSE-MIT and LICENSE-APACHE beside it), any other license file adds its terms with AND. A card
 * that says `other` or `unknown` defers to the license files. Nothing anywhere → the license is `unknown`.
 */
import { ProductError } from '../../contract/errors';
import type { LicenseCategory, LicenseDecision, LicensePolicy } from './policy';
import type { Finding, RoleRequirement, Severity, Verdict, Waiver } from '../../contract/types';
import { applyWaivers, verdictFor } from '../common/gate-kit';
import {
  allOf,
  evaluateLicense,
  formatLicense,
  leavesOf,
  preparePolicy,
  sameLicenseKey,
  type LeafDecision,
  type LicenseNode,
} from './expression';
import type { ModelFiles } from './model-files';
import { collectSources, sourceLicense, type LicenseSource, type SourceNote } from './sources';

export const GATE = 'license';

/** Stable rule ids of the findings this gate reports (waivers name them). */
export const LICENSE_RULES = {
  review: 'license.review',
  deny: 'license.deny',
  conflict: 'license.conflict',
  missing: 'license.missing',
} as const;

/** A policy whose `licenses:` entries name licenses we do not know. */
export class LicensePolicyError extends ProductError {
  readonly code = 'INVALID_LICENSE_POLICY';
  readonly permanent = true;
  constructor(readonly problems: string[]) {
    super(problems.join('\n'), { details: { problems } });
  }
}

export interface Conflict {
  /** What one source says, and where. */
  a: { location: string; license: string };
  b: { location: string; license: string };
}

/** One operand of the combined expression, with every source that named it. */
export interface LicensePart {
  license: string;
  locations: string[];
}

/** The gate's full outcome: what goes into the evidence, and what the GateResult and the CLI summarise. */
export interface LicenseReport {
  /** The combined expression (`Apache-2.0`, `MIT OR Apache-2.0`, `llama3 AND CC-BY-NC-4.0`), or `unknown`. */
  license: string;
  category: LicenseCategory;
  /** The policy's decision before waivers: allow, review or deny. */
  decision: LicenseDecision;
  verdict: Verdict;
  summary: string;
  sources: (Omit<LicenseSource, 'license'> & { license?: string })[];
  parts: LicensePart[];
  leaves: LeafDecision[];
  trail: string[];
  conflicts: Conflict[];
  /** Every finding, with waivers applied. */
  findings: Finding[];
  notes: SourceNote[];
  /** Something could not be read: the verdict is error (or fail when a denial already stands). */
  incomplete: boolean;
  requiredApprovals: RoleRequirement[];
  policy: LicensePolicy;
}

export interface CheckOptions {
  /** ISO time that waivers are checked against. */
  now: string;
  waivers?: Waiver[];
  signal?: AbortSignal;
  onProgress?: (progress: { file: string; done: number; total: number }) => void;
}

/** Decides a model's license under `policy`. Throws LicensePolicyError for unknown ids in `policy.licenses`. */
export async function checkModelLicense(
  model: ModelFiles,
  policy: LicensePolicy,
  options: CheckOptions,
): Promise<LicenseReport> {
  const { prepared, problems } = preparePolicy(policy);
  if (problems.length > 0) throw new LicensePolicyError(problems);
  const { sources, notes } = await collectSources(model, {
    textMatchThreshold: policy.textMatchThreshold,
    signal: options.signal,
    onProgress: options.onProgress,
  });

  const { parts, conflicts, missing } = combine(sources);
  const combined = allOf(parts.map((p) => p.node)) as LicenseNode;
  const evaluation = evaluateLicense(combined, prepared);
  const license = formatLicense(combined);

  const findings: Finding[] = [];
  /** Why a finding asks for the review role's approval, by the finding's index. */
  const reviewReasons = new Map<number, string>();
  const finding = (ruleId: string, severity: Severity, location: string, message: string, waivable = true): number =>
    findings.push({ gate: GATE, ruleId, severity, location, message, waivable }) - 1;
  const locationsOf = (leaf: LeafDecision): string => {
    const all = parts.filter((p) => p.leafLicenses.includes(leaf.license)).flatMap((p) => p.locations);
    // The finding goes into workflow history; the evidence lists every location.
    const shown = all.length > 5 ? [...all.slice(0, 5), `and ${all.length - 5} more`] : all;
    return shown.join(', ') || '(model)';
  };

  if (missing) {
    finding(
      LICENSE_RULES.missing,
      'info',
      '(model)',
      'no license in the model card front matter, LICENSE/COPYING files or package metadata',
    );
  }
  const seen = new Set<string>();
  for (const leaf of evaluation.leaves) {
    if (leaf.decision === 'allow' || seen.has(leaf.license)) continue;
    seen.add(leaf.license);
    const what = `license ${leaf.license} (${leaf.category})`;
    if (leaf.decision === 'deny') {
      finding(LICENSE_RULES.deny, 'high', locationsOf(leaf), `${what} is denied by ${leaf.rule}`);
    } else {
      const at = finding(
        LICENSE_RULES.review,
        'medium',
        locationsOf(leaf),
        `${what} needs review by ${policy.reviewRole} (${leaf.rule})`,
      );
      reviewReasons.set(at, `license ${leaf.license} needs review`);
    }
  }
  for (const c of conflicts) {
    const at = finding(
      LICENSE_RULES.conflict,
      policy.onConflict === 'deny' ? 'high' : 'medium',
      `${c.a.location}, ${c.b.location}`,
      `${c.a.location} says ${c.a.license} but ${c.b.location} says ${c.b.license}; both are taken to apply (license.onConflict: ${policy.onConflict})`,
    );
    if (policy.onConflict === 'review') {
      reviewReasons.set(
        at,
        `license sources disagree: ${c.a.location} says ${c.a.license}, ${c.b.location} says ${c.b.license}`,
      );
    }
  }
  for (const note of notes) {
    finding(note.ruleId, note.incomplete ? 'medium' : 'info', note.location, note.message, !note.incomplete);
  }

  const waived = applyWaivers(findings, options.waivers ?? [], options.now);
  const incomplete = notes.some((n) => n.incomplete);
  const verdict = verdictFor({ findings: waived, failOn: 'high', warnOn: 'medium', incomplete });
  const reasons = [...reviewReasons].filter(([i]) => !waived[i]?.waivedBy).map(([, reason]) => reason);
  const requiredApprovals: RoleRequirement[] =
    reasons.length > 0 ? [{ role: policy.reviewRole, count: 1, reason: reasons.join('; ') }] : [];

  return {
    license,
    category: evaluation.category,
    decision: evaluation.decision,
    verdict,
    summary: summarise(verdict, license, evaluation.category, waived, policy, conflicts.length),
    sources: sources.map((s) => ({ ...s, license: sourceLicense(s) })),
    parts: parts.map((p) => ({ license: formatLicense(p.node), locations: p.locations })),
    leaves: evaluation.leaves,
    trail: evaluation.trail,
    conflicts,
    findings: waived,
    notes,
    incomplete,
    requiredApprovals,
    policy,
  };
}

interface Part {
  node: LicenseNode;
  locations: string[];
  leafLicenses: string[];
}

/** Joins the sources into the operands of one AND, and finds the sources that disagree. */
function combine(sources: LicenseSource[]): { parts: Part[]; conflicts: Conflict[]; missing: boolean } {
  const parts: Part[] = [];
  const add = (node: LicenseNode, location: string): void => {
    const key = keyOf(node);
    const existing = parts.find((p) => keyOf(p.node) === key);
    if (existing) existing.locations.push(location);
    else parts.push({ node, locations: [location], leafLicenses: leavesOf(node).map((l) => formatLicense(l)) });
  };
  const named = sources.filter((s): s is LicenseSource & { license: LicenseNode } => s.license !== undefined);
  const deferring = (s: { license: LicenseNode }): boolean => s.license.type === 'license' && !!s.license.deferring;
  const declarations = named.filter((s) => s.kind !== 'license-file' && !deferring(s));
  const files = named.filter((s) => s.kind === 'license-file');
  const declared = new Set(declarations.flatMap((d) => leavesOf(d.license).map(sameLicenseKey)));

  for (const d of declarations) add(d.license, d.location);
  const conflicts: Conflict[] = [];
  for (const f of files) {
    const identified = f.match?.id !== undefined;
    const covered = identified && leavesOf(f.license).every((l) => declared.has(sameLicenseKey(l)));
    if (covered) {
      // Attribute the file to the declaration that names its license, for the reviewer.
      for (const p of parts)
        if (leavesOf(p.node).some((l) => sameLicenseKey(l) === keyOf(f.license))) p.locations.push(f.location);
      continue;
    }
    add(f.license, f.location);
    const card = declarations[0];
    if (identified && f.root && card) {
      conflicts.push({
        a: { location: card.location, license: formatLicense(card.license) },
        b: { location: f.location, license: formatLicense(f.license) },
      });
    }
  }
  for (let i = 0; i < declarations.length; i++) {
    for (let j = i + 1; j < declarations.length; j++) {
      const [a, b] = [declarations[i], declarations[j]] as [(typeof declarations)[0], (typeof declarations)[0]];
      const ka = new Set(leavesOf(a.license).map(sameLicenseKey));
      const kb = new Set(leavesOf(b.license).map(sameLicenseKey));
      const subset = (x: Set<string>, y: Set<string>): boolean => [...x].every((k) => y.has(k));
      if (!subset(ka, kb) && !subset(kb, ka)) {
        conflicts.push({
          a: { location: a.location, license: formatLicense(a.license) },
          b: { location: b.location, license: formatLicense(b.license) },
        });
      }
    }
  }
  if (parts.length > 0) return { parts, conflicts, missing: false };
  // Only placeholders (`other`, `unknown`) or nothing at all.
  const placeholder = named.find(deferring);
  if (placeholder)
    return {
      parts: [{ ...partOf(placeholder.license), locations: [placeholder.location] }],
      conflicts,
      missing: false,
    };
  const unknown: LicenseNode = { type: 'license', id: 'unknown', kind: 'model', category: 'unknown' };
  return { parts: [{ ...partOf(unknown), locations: ['(model)'] }], conflicts, missing: true };
}

function partOf(node: LicenseNode): Omit<Part, 'locations'> {
  return { node, leafLicenses: leavesOf(node).map((l) => formatLicense(l)) };
}

/** Equal for the same licenses in the same structure, whatever the spelling or text-identical SPDX variant. */
function keyOf(node: LicenseNode): string {
  if (node.type === 'license') return sameLicenseKey(node);
  return `(${keyOf(node.left)} ${node.type} ${keyOf(node.right)})`;
}

function summarise(
  verdict: Verdict,
  license: string,
  category: LicenseCategory,
  findings: Finding[],
  policy: LicensePolicy,
  conflicts: number,
): string {
  const what = `license ${license} (${category})`;
  const disagree = conflicts > 0 ? `; ${conflicts} conflicting source${conflicts === 1 ? '' : 's'}` : '';
  const waived = findings.filter((f) => f.waivedBy).length;
  const waivedNote = waived > 0 ? ` (${waived} finding${waived === 1 ? '' : 's'} waived)` : '';
  switch (verdict) {
    case 'pass':
      return `${what}: allowed${waivedNote}`;
    case 'warn':
      return `${what}: needs review by ${policy.reviewRole}${disagree}${waivedNote}`;
    case 'fail':
      return `${what}: denied by policy${disagree}${waivedNote}`;
    case 'error': {
      const unread = findings.find((f) => f.severity === 'medium' && !f.waivable);
      return `could not decide the license: ${unread?.message ?? 'a license source could not be read'}`;
    }
  }
}
