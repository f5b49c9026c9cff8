/**
 * Identifies a license text (a LICENSE or COPYING file) against the SPDX license list and our model licenses.
 *
 * SPDX texts come from the `spdx-license-list` package. Both sides are normalised the same way (copyright lines and
 * template placeholders dropped, case, punctuation and whitespace folded, a few spelling variants unified) and
 * compared as sets of word pairs with the Sørensen–Dice coefficient: 1 is the same text, reflowed or re-punctuated
 * text stays near 1, and an added or removed clause lowers it by roughly its share of the text.
 */
import { createRequire } from 'node:module';
import spdxFull from 'spdx-license-list/full';
import { FINGERPRINT_HEAD_CHARS, MODEL_LICENSES, NOTICE_FINGERPRINTS } from './model-licenses';

/** How a text was identified. */
export interface TextMatch {
  /** The license id, or undefined when nothing reached the threshold. */
  id?: string;
  method: 'similarity' | 'fingerprint' | 'notice' | 'none';
  /** Dice similarity of the best SPDX candidate (0..1), also reported when a fingerprint decided. */
  score: number;
  /** The fingerprint phrase that matched (fingerprint and notice methods). */
  phrase?: string;
  /** The best SPDX candidates with their scores, best first (ids with identical texts are listed once). */
  candidates: { id: string; score: number }[];
  /** SPDX ids whose texts are identical to the match (e.g. GPL-3.0-only and GPL-3.0-or-later). */
  equivalent?: string[];
}

interface Template {
  /** Preferred id of a group of identical texts. */
  id: string;
  /** All SPDX ids with this text. */
  ids: string[];
  /** The full text, and without its how-to-apply appendix where it has one (SPDX treats that part as optional). */
  variants: Set<number>[];
}

const DEPRECATED = new Set<string>(createRequire(import.meta.url)('spdx-license-ids/deprecated.json') as string[]);
/** Word ids of the SPDX texts, shared so that equal words get equal ids; scanned files never add to it. */
const vocabulary = new Map<string, number>();
const PAIR_BASE = 2 ** 24;
/** Words a scanned file has but no SPDX text has get ids from here up, local to that file. */
const LOCAL_WORDS = 2 ** 23;

let corpus: Template[] | undefined;
/** Where the terms of Apache-2.0 and the GNU licenses end; what follows is how to apply them, often left out. */
const END_OF_TERMS = 'end of terms and conditions';
const groupOf = new Map<string, string[]>();

/** Normalises a license text into the words that are compared. */
export function normaliseLicenseText(text: string): string[] {
  const lines = text
    .replace(/^\uFEFF/, '')
    .replace(/\r\n?/g, '\n')
    .split('\n')
    // Copyright lines name holders and years that differ in every copy; they say nothing about the terms.
    .filter((line) => !/^(copyright\b|\(c\)|©|all rights reserved)/i.test(line.replace(/^[\s#*/;>-]+/, '')));
  return (
    lines
      .join('\n')
      .toLowerCase()
      // Template placeholders (<year>, [name of copyright owner]) are filled in by every real copy.
      .replace(/<[^<>\n]{1,60}>|\[[^[\]\n]{1,60}\]/g, ' ')
      .replace(/https?:\/\/(www\.)?/g, '')
      .replace(/\blicen[cs]/g, 'licens')
      .replace(/\bnon-?commercial/g, 'noncommercial')
      .replace(/&/g, ' and ')
      .split(/[^a-z0-9]+/)
      .filter((w) => w !== '')
  );
}

function wordPairs(words: string[], learn: boolean): Set<number> {
  const pairs = new Set<number>();
  const local = new Map<string, number>();
  let previous = -1;
  for (const word of words) {
    let id = vocabulary.get(word) ?? local.get(word);
    if (id === undefined) {
      id = learn ? vocabulary.size + 1 : LOCAL_WORDS + local.size;
      (learn ? vocabulary : local).set(word, id);
    }
    // A text of one word still gets one pair, so that it is comparable at all.
    pairs.add((previous < 0 ? 0 : previous) * PAIR_BASE + id);
    previous = id;
  }
  return pairs;
}

/** Prefer current ids over deprecated ones, and `-only` over `-or-later` (the text alone never grants "or later"). */
function preference(id: string): number {
  return (DEPRECATED.has(id) ? 2 : 0) + (/-or-later$|\+$/.test(id) ? 1 : 0);
}

function loadCorpus(): Template[] {
  if (corpus) return corpus;
  const byText = new Map<string, string[]>();
  for (const [id, license] of Object.entries(spdxFull)) {
    const key = normaliseLicenseText(license.licenseText).join(' ');
    if (key === '') continue;
    const ids = byText.get(key);
    if (ids) ids.push(id);
    else byText.set(key, [id]);
  }
  corpus = [...byText].map(([key, ids]) => {
    ids.sort((a, b) => preference(a) - preference(b) || a.localeCompare(b));
    for (const id of ids) groupOf.set(id, ids);
    const words = key.split(' ');
    const variants = [wordPairs(words, true)];
    const end = key.indexOf(END_OF_TERMS);
    if (end >= 0) variants.push(wordPairs(key.slice(0, end + END_OF_TERMS.length).split(' '), true));
    return { id: ids[0] as string, ids, variants };
  });
  return corpus;
}

/** SPDX ids whose license text is identical to `id`'s (including itself); just `[id]` for others. */
export function sameTextIds(id: string): string[] {
  loadCorpus();
  return groupOf.get(id) ?? [id];
}

function dice(a: Set<number>, b: Set<number>): number {
  const [small, large] = a.size <= b.size ? [a, b] : [b, a];
  let common = 0;
  for (const pair of small) if (large.has(pair)) common++;
  return (2 * common) / (a.size + b.size);
}

/** Lower case, whitespace collapsed, straight quotes: enough for fingerprints, which keep their punctuation. */
function lightNormalise(text: string): string {
  return text
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[\u201C\u201D]/g, '"')
    .replace(/\s+/g, ' ');
}

/**
 * Identifies `text`: a model-license header fingerprint first (those texts are not in SPDX), then the best SPDX
 * text at or above `threshold`, then a short license notice; otherwise no id, with the best candidates for the
 * reviewer.
 */
export function identifyLicenseText(text: string, threshold: number): TextMatch {
  const templates = loadCorpus();
  const pairs = wordPairs(normaliseLicenseText(text), false);
  const scored: { id: string; score: number }[] = [];
  for (const template of templates) {
    let score = -1;
    for (const variant of template.variants) {
      // Dice can be no higher than this from the sizes alone; skipping hopeless candidates keeps big files quick.
      const bound = (2 * Math.min(pairs.size, variant.size)) / (pairs.size + variant.size);
      if (bound >= 0.3 && bound > score) score = Math.max(score, dice(pairs, variant));
    }
    if (score >= 0) scored.push({ id: template.id, score });
  }
  scored.sort((a, b) => b.score - a.score || a.id.localeCompare(b.id));
  const candidates = scored.slice(0, 3).map((c) => ({ id: c.id, score: round(c.score) }));
  const best = candidates[0];
  const score = best?.score ?? 0;

  const light = lightNormalise(text);
  const head = light.slice(0, FINGERPRINT_HEAD_CHARS);
  for (const license of MODEL_LICENSES) {
    for (const { pattern, head: inHead } of license.fingerprints ?? []) {
      const found = (inHead ? head : light).match(pattern);
      if (found) return { id: license.id, method: 'fingerprint', score, phrase: found[0], candidates };
    }
  }
  if (best && best.score >= threshold) {
    const equivalent = sameTextIds(best.id);
    return {
      id: best.id,
      method: 'similarity',
      score,
      candidates,
      ...(equivalent.length > 1 ? { equivalent } : {}),
    };
  }
  for (const notice of NOTICE_FINGERPRINTS) {
    const found = light.match(notice.pattern);
    if (found) return { id: notice.id, method: 'notice', score, phrase: found[0], candidates };
  }
  return { method: 'none', score, candidates };
}

function round(score: number): number {
  return Math.round(score * 10_000) / 10_000;
}
