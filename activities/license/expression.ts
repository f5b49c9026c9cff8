/**
 * License ids and SPDX expressions: resolving what a card or metadata file says into known licenses, parsing
 * `AND` / `OR` / `WITH` expressions with `spdx-expression-parse`, and evaluating them against a policy
 * (`OR` takes the most favourable branch, `AND` the least favourable).
 */
import { createRequire } from 'node:module';
import spdxCorrect from 'spdx-correct';
import { ProductError } from '../../contract/errors';
import parseSpdx from 'spdx-expression-parse';
import spdxFull from 'spdx-license-list/full';
import {
  LICENSE_CATEGORIES,
  LICENSE_DECISIONS,
  type LicenseCategory,
  type LicenseDecision,
  type LicensePolicy,
} from './policy';
import { spdxCategory } from './categories';
import { modelLicenseById } from './model-licenses';
import { sameTextIds } from './text-match';

const require = createRequire(import.meta.url);
const SPDX_IDS = new Map<string, string>();
for (const id of [
  ...Object.keys(spdxFull),
  ...(require('spdx-license-ids') as string[]),
  ...(require('spdx-license-ids/deprecated.json') as string[]),
]) {
  SPDX_IDS.set(id.toLowerCase(), id);
}
const SPDX_EXCEPTIONS = new Map<string, string>();
for (const id of [
  ...(require('spdx-exceptions') as string[]),
  ...(require('spdx-exceptions/deprecated.json') as string[]),
]) {
  SPDX_EXCEPTIONS.set(id.toLowerCase(), id);
}

/** One license in an expression, resolved. */
export interface LicenseLeaf {
  type: 'license';
  /** Canonical id: an SPDX id, one of our model license ids, a LicenseRef, or the text as written when unknown. */
  id: string;
  kind: 'spdx' | 'model' | 'ref' | 'unrecognised';
  category: LicenseCategory;
  plus?: boolean;
  exception?: string;
  /** The text as written, when it differs from the canonical id beyond case (e.g. "Apache License 2.0"). */
  corrected?: string;
  /** `other` and `unknown`: a placeholder that points at the license file rather than naming a license. */
  deferring?: boolean;
}

export interface LicenseConjunction {
  type: 'and' | 'or';
  left: LicenseNode;
  right: LicenseNode;
}

export type LicenseNode = LicenseLeaf | LicenseConjunction;

/** Resolves a single license id as written in a card or metadata file; undefined for an empty string. */
export function resolveLicenseId(raw: string): LicenseLeaf | undefined {
  const text = raw.trim();
  if (text === '') return undefined;
  const model = modelLicenseById(text);
  if (model) {
    return {
      type: 'license',
      id: model.id,
      kind: 'model',
      category: model.category,
      ...(model.deferring ? { deferring: true } : {}),
    };
  }
  const plus = text.endsWith('+') && !SPDX_IDS.has(text.toLowerCase());
  const bare = plus ? text.slice(0, -1) : text;
  const spdx = SPDX_IDS.get(bare.toLowerCase());
  if (spdx) return { type: 'license', id: spdx, kind: 'spdx', category: spdxCategory(spdx), ...(plus ? { plus } : {}) };
  if (/^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$/.test(text)) {
    return { type: 'license', id: text, kind: 'ref', category: 'unknown' };
  }
  const corrected = spdxCorrect(text);
  if (corrected && SPDX_IDS.has(corrected.toLowerCase())) {
    return { type: 'license', id: corrected, kind: 'spdx', category: spdxCategory(corrected), corrected: text };
  }
  return { type: 'license', id: text, kind: 'unrecognised', category: 'unknown' };
}

/** Thrown for text that is neither one license id nor a well-formed SPDX expression. */
export class LicenseExpressionError extends ProductError {
  readonly code = 'INVALID_LICENSE_EXPRESSION';
  readonly permanent = true;
}

const OPERATORS = new Set(['and', 'or', 'with']);

/**
 * Parses a license as written: one id (`apache-2.0`, `llama3.1`, `Apache License 2.0`) or an SPDX expression
 * (`MIT OR Apache-2.0`, `(MIT AND BSD-3-Clause) OR GPL-2.0-only WITH Classpath-exception-2.0`). Ids are matched
 * case-insensitively and may be model license ids, which SPDX's own parser would refuse: they stand in as
 * LicenseRefs while `spdx-expression-parse` checks the structure.
 */
export function parseLicenseExpression(raw: string): LicenseNode {
  const text = raw.trim();
  if (text === '') throw new LicenseExpressionError('empty license');
  const tokens = text.split(/(\s+|\(|\))/).filter((t) => t.trim() !== '');
  if (!tokens.some((t) => OPERATORS.has(t.toLowerCase()) || t === '(' || t === ')')) {
    // A single license, perhaps written as words ("Apache License 2.0"): resolve it whole.
    return resolveLicenseId(text) as LicenseLeaf;
  }
  const stand: LicenseLeaf[] = [];
  const rewritten: string[] = [];
  tokens.forEach((token, i) => {
    const lower = token.toLowerCase();
    if (OPERATORS.has(lower)) rewritten.push(lower.toUpperCase());
    else if (token === '(' || token === ')') rewritten.push(token);
    else if (tokens[i - 1]?.toLowerCase() === 'with') {
      const exception = SPDX_EXCEPTIONS.get(lower);
      if (!exception) throw new LicenseExpressionError(`"${token}" is not an SPDX license exception`);
      rewritten.push(exception);
    } else {
      const leaf = resolveLicenseId(token) as LicenseLeaf;
      stand.push(leaf);
      rewritten.push(`LicenseRef-mrel${stand.length - 1}`);
    }
  });
  let parsed: parseSpdx.Info;
  try {
    parsed = parseSpdx(rewritten.join(' '));
  } catch (err) {
    // Prose such as "GNU GPL v3 or later" reads like an expression but names one license. Only prose, though: a
    // broken expression of real ids ("MIT AND OR Apache-2.0") must not be guessed into one of them.
    const prose = stand.every((leaf) => leaf.kind === 'unrecognised' || leaf.corrected !== undefined);
    const whole = prose ? resolveLicenseId(text) : undefined;
    if (whole?.corrected) return whole;
    throw new LicenseExpressionError(`"${text}" is not a valid SPDX expression (${(err as Error).message})`, {
      cause: err,
    });
  }
  const convert = (info: parseSpdx.Info): LicenseNode => {
    if ('conjunction' in info) return { type: info.conjunction, left: convert(info.left), right: convert(info.right) };
    const index = Number(/^LicenseRef-mrel(\d+)$/.exec(info.license)?.[1]);
    const leaf = stand[index] as LicenseLeaf;
    const exception = info.exception;
    return {
      ...leaf,
      ...(info.plus ? { plus: true } : {}),
      ...(exception ? { exception, category: leafCategory(leaf, exception) } : {}),
    };
  };
  return convert(parsed);
}

function leafCategory(leaf: LicenseLeaf, exception: string): LicenseCategory {
  return leaf.kind === 'spdx' ? spdxCategory(leaf.id, exception) : leaf.category;
}

/** The expression as text, with parentheses only where the structure needs them. */
export function formatLicense(node: LicenseNode): string {
  if (node.type === 'license') {
    return `${node.id}${node.plus ? '+' : ''}${node.exception ? ` WITH ${node.exception}` : ''}`;
  }
  const side = (child: LicenseNode): string =>
    child.type !== 'license' && child.type !== node.type ? `(${formatLicense(child)})` : formatLicense(child);
  return `${side(node.left)} ${node.type.toUpperCase()} ${side(node.right)}`;
}

/** Every license named in an expression, left to right. */
export function leavesOf(node: LicenseNode): LicenseLeaf[] {
  return node.type === 'license' ? [node] : [...leavesOf(node.left), ...leavesOf(node.right)];
}

/** Joins expressions with AND (every one of them applies). */
export function allOf(nodes: LicenseNode[]): LicenseNode | undefined {
  return nodes.reduce<LicenseNode | undefined>((acc, n) => (acc ? { type: 'and', left: acc, right: n } : n), undefined);
}

/**
 * A key that is equal for licenses that are the same terms: SPDX ids with identical texts (GPL-3.0-only,
 * GPL-3.0-or-later, GPL-3.0) share one, compared case-insensitively.
 */
export function sameLicenseKey(leaf: LicenseLeaf): string {
  const base = leaf.kind === 'spdx' ? (sameTextIds(leaf.id)[0] ?? leaf.id) : leaf.id;
  return `${base}${leaf.exception ? ` with ${leaf.exception}` : ''}`.toLowerCase();
}

/** The policy, with its per-license keys resolved to canonical ids. */
export interface PreparedPolicy {
  policy: LicensePolicy;
  overrides: Map<string, { decision: LicenseDecision; key: string }>;
}

/**
 * Resolves the policy's `licenses:` keys. Returns problems (naming the field) for keys that are not a license we
 * know: a typo there would otherwise silently fall back to the category decision.
 */
export function preparePolicy(policy: LicensePolicy): { prepared: PreparedPolicy; problems: string[] } {
  const overrides = new Map<string, { decision: LicenseDecision; key: string }>();
  const problems: string[] = [];
  for (const [key, decision] of Object.entries(policy.licenses)) {
    let node: LicenseNode;
    try {
      node = parseLicenseExpression(key);
    } catch (err) {
      problems.push(`license.licenses["${key}"]: ${(err as Error).message}; use one SPDX or model license id`);
      continue;
    }
    if (node.type !== 'license') {
      problems.push(`license.licenses["${key}"] is an expression; give each license its own entry`);
    } else if (node.kind === 'unrecognised') {
      problems.push(
        `license.licenses["${key}"] is not an SPDX id, a model license id (e.g. llama3.1, gemma, openrail) or a LicenseRef-; fix the spelling`,
      );
    } else {
      overrides.set(sameLicenseKey(node), { decision, key });
    }
  }
  return { prepared: { policy, overrides }, problems };
}

/** How one license in the effective expression was decided. */
export interface LeafDecision {
  license: string;
  category: LicenseCategory;
  decision: LicenseDecision;
  /** The policy rule that decided: `license.licenses["MIT"]` or `license.categories.permissive`. */
  rule: string;
}

export interface Evaluation {
  decision: LicenseDecision;
  category: LicenseCategory;
  /** The licenses whose terms apply after choosing OR branches (every AND operand). */
  leaves: LeafDecision[];
  /** Each step of the decision, in order, for the evidence. */
  trail: string[];
}

const decisionRank = (d: LicenseDecision): number => LICENSE_DECISIONS.indexOf(d);
const categoryRank = (c: LicenseCategory): number => LICENSE_CATEGORIES.indexOf(c);

function better(a: Evaluation, b: Evaluation): boolean {
  return (
    decisionRank(a.decision) < decisionRank(b.decision) ||
    (a.decision === b.decision && categoryRank(a.category) <= categoryRank(b.category))
  );
}

/** Evaluates an expression against the policy: OR → the most favourable branch, AND → the least favourable. */
export function evaluateLicense(node: LicenseNode, prepared: PreparedPolicy): Evaluation {
  if (node.type === 'license') {
    const license = formatLicense(node);
    const override =
      prepared.overrides.get(sameLicenseKey(node)) ??
      (node.exception ? prepared.overrides.get(sameLicenseKey({ ...node, exception: undefined })) : undefined);
    const decision = override?.decision ?? prepared.policy.categories[node.category];
    const rule = override ? `license.licenses["${override.key}"]` : `license.categories.${node.category}`;
    return {
      decision,
      category: node.category,
      leaves: [{ license, category: node.category, decision, rule }],
      trail: [`${license} is ${node.category}: ${decision} (${rule})`],
    };
  }
  const left = evaluateLicense(node.left, prepared);
  const right = evaluateLicense(node.right, prepared);
  const trail = [...left.trail, ...right.trail];
  const text = formatLicense(node);
  if (node.type === 'or') {
    const [chosen, other] = better(left, right) ? [left, right] : [right, left];
    trail.push(
      `${text}: OR takes the more favourable branch, ${chosen.leaves.map((l) => l.license).join(' AND ')} (${chosen.decision}) over ${other.leaves.map((l) => l.license).join(' AND ')} (${other.decision})`,
    );
    return { ...chosen, trail };
  }
  const worse = better(left, right) ? right : left;
  trail.push(`${text}: AND takes the less favourable, ${worse.decision} (${worse.category})`);
  return { decision: worse.decision, category: worse.category, leaves: [...left.leaves, ...right.leaves], trail };
}
