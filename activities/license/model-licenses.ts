/**
 * Licenses that models ship under but that SPDX lacks or lists late, with the ids the Hugging Face Hub uses for
 * them in model cards, and fingerprints that recognise their texts in a LICENSE file.
 *
 * Fingerprints run over lightly normalised text (lower case, whitespace collapsed, straight quotes). They are the
 * titles and identifying lines of each license; they are checked in table order, so the more specific versions
 * (Llama 3.1 before Llama 3) come first.
 */
import type { LicenseCategory } from './policy';

export interface ModelLicense {
  /** The id we report (the Hub's id where it has one). */
  id: string;
  name: string;
  category: LicenseCategory;
  /** Other spellings seen in model cards and metadata, matched case-insensitively. */
  aliases?: string[];
  /** Patterns that identify the license's text; `head` ones must occur in the first part of the file. */
  fingerprints?: { pattern: RegExp; head?: boolean }[];
  /** Patterns that identify a `license_link` URL as this license. */
  links?: RegExp[];
  /** Placeholders that say "see the license file" rather than naming a license. */
  deferring?: boolean;
}

/** How much of a file counts as its head for header fingerprints. */
export const FINGERPRINT_HEAD_CHARS = 3_000;

const llama = (version: string, date: string): ModelLicense => ({
  id: `llama${version}`,
  name: `Llama ${version} Community License Agreement`,
  category: 'use-restricted',
  aliases: [`llama-${version}`, `llama ${version}`, `llama${version}-community`, `meta-llama-${version}`],
  fingerprints: [
    {
      pattern: new RegExp(`\\b(meta )?llama ${version.replace('.', '\\.')} community license( agreement)?\\b`),
      head: true,
    },
    { pattern: new RegExp(`\\bllama ${version.replace('.', '\\.')} version release date: ${date}`) },
  ],
  links: [new RegExp(`llama\\.(meta\\.com|com)/(docs/)?llama${version.replace('.', '_')}/(license|use-policy)`)],
});

/** Known model licenses, most specific first. */
export const MODEL_LICENSES: readonly ModelLicense[] = [
  llama('4', 'april 5, 2025'),
  llama('3.3', 'december 6, 2024'),
  llama('3.2', 'september 25, 2024'),
  llama('3.1', 'july 23, 2024'),
  llama('3', 'april 18, 2024'),
  llama('2', 'july 18, 2023'),
  {
    id: 'gemma',
    name: 'Gemma Terms of Use',
    category: 'use-restricted',
    aliases: ['gemma-terms', 'gemma-terms-of-use'],
    fingerprints: [{ pattern: /\bgemma terms of use\b/, head: true }, { pattern: /ai\.google\.dev\/gemma\/terms/ }],
    links: [/ai\.google\.dev\/gemma\/(terms|prohibited_use_policy)/],
  },
  {
    id: 'creativeml-openrail-m',
    name: 'CreativeML Open RAIL-M',
    category: 'use-restricted',
    fingerprints: [{ pattern: /\bcreativeml open rail-m\b/, head: true }],
  },
  {
    id: 'openrail++',
    name: 'CreativeML Open RAIL++-M',
    category: 'use-restricted',
    aliases: ['openrail++-m', 'creativeml-openrail++-m'],
    fingerprints: [{ pattern: /\bopen ?rail\+\+(-m)?\b/, head: true }],
  },
  {
    id: 'bigscience-bloom-rail-1.0',
    name: 'BigScience BLOOM RAIL 1.0',
    category: 'use-restricted',
    aliases: ['bloom-rail-1.0', 'bigscience-rail-1.0'],
    fingerprints: [{ pattern: /\bbigscience (bloom )?rail license v?1\.0\b/, head: true }],
    links: [/bigscience\/license/],
  },
  {
    id: 'bigscience-openrail-m',
    name: 'BigScience Open RAIL-M',
    category: 'use-restricted',
    fingerprints: [{ pattern: /\bbigscience open ?rail-m\b/, head: true }],
  },
  {
    id: 'openrail',
    name: 'Open RAIL (Responsible AI License)',
    category: 'use-restricted',
    aliases: ['openrail-m', 'open-rail', 'open-rail-m', 'rail', 'openrail-s', 'openrail-d', 'openrail-a'],
    fingerprints: [
      { pattern: /\bopen ?rail(-[msda])? license\b/, head: true },
      { pattern: /\bresponsible ai licen[cs]e\b/, head: true },
    ],
  },
  {
    id: 'deepfloyd-if-license',
    name: 'DeepFloyd IF License Agreement',
    category: 'non-commercial',
    fingerprints: [{ pattern: /\bdeepfloyd if licen[cs]e agreement\b/, head: true }],
  },
  {
    id: 'fair-noncommercial-research-license',
    name: 'FAIR Noncommercial Research License',
    category: 'non-commercial',
    fingerprints: [{ pattern: /\bfair noncommercial research licen[cs]e\b/, head: true }],
  },
  { id: 'apple-amlr', name: 'Apple Machine Learning Research Model License', category: 'non-commercial' },
  { id: 'apple-ascl', name: 'Apple Sample Code License', category: 'permissive' },
  { id: 'intel-research', name: 'Intel Research Use License', category: 'non-commercial' },
  { id: 'h-research', name: 'H Research License', category: 'non-commercial' },
  { id: 'grok2-community', name: 'Grok 2 Community License', category: 'use-restricted' },
  { id: 'c-uda', name: 'Computational Use of Data Agreement', category: 'use-restricted' },
  { id: 'lgpl-lr', name: 'LGPL for Linguistic Resources', category: 'weak-copyleft' },
  { id: 'openmdw-1.0', name: 'OpenMDW License 1.0', category: 'permissive' },
  // Hub ids that name a family rather than one SPDX license; the family decides the category.
  { id: 'bsd', name: 'BSD (unspecified clause count)', category: 'permissive' },
  { id: 'gpl', name: 'GNU GPL (unspecified version)', category: 'strong-copyleft' },
  { id: 'lgpl', name: 'GNU LGPL (unspecified version)', category: 'weak-copyleft' },
  { id: 'gfdl', name: 'GNU FDL (unspecified version)', category: 'strong-copyleft' },
  { id: 'cc', name: 'Creative Commons (unspecified variant)', category: 'unknown' },
  {
    id: 'proprietary',
    name: 'Proprietary (no rights granted)',
    category: 'proprietary',
    // npm's UNLICENSED means "not licensed to anyone"; it is not the Unlicense.
    aliases: ['unlicensed', 'commercial', 'all rights reserved', 'licenseref-proprietary'],
  },
  { id: 'other', name: 'Other (custom terms)', category: 'unknown', deferring: true },
  { id: 'unknown', name: 'Unknown', category: 'unknown', deferring: true },
];

/**
 * Short notices that name a license without carrying its text (common in model repositories); checked only when no
 * full text matched.
 */
export const NOTICE_FINGERPRINTS: readonly { id: string; pattern: RegExp }[] = [
  { id: 'CC-BY-NC-SA-4.0', pattern: /\battribution-noncommercial-sharealike 4\.0 international\b/ },
  { id: 'CC-BY-NC-ND-4.0', pattern: /\battribution-noncommercial-noderivatives 4\.0 international\b/ },
  { id: 'CC-BY-NC-4.0', pattern: /\battribution-noncommercial 4\.0 international\b/ },
  { id: 'CC-BY-SA-4.0', pattern: /\battribution-sharealike 4\.0 international\b/ },
  { id: 'CC-BY-ND-4.0', pattern: /\battribution-noderivatives 4\.0 international\b/ },
  { id: 'CC-BY-4.0', pattern: /\bcreative commons attribution 4\.0 international\b/ },
];

const byName = new Map<string, ModelLicense>();
for (const license of MODEL_LICENSES) {
  for (const name of [license.id, ...(license.aliases ?? [])]) byName.set(name.toLowerCase(), license);
}

/** The model license a card id or alias names (case-insensitive), if it is one of ours. */
export function modelLicenseById(id: string): ModelLicense | undefined {
  return byName.get(id.trim().toLowerCase());
}

/** The model license a `license_link` URL points at, if we know it. */
export function modelLicenseByLink(link: string): ModelLicense | undefined {
  const url = link.toLowerCase();
  return MODEL_LICENSES.find((l) => l.links?.some((p) => p.test(url)));
}
