/**
 * Where a model says what its license is: the model card's YAML front matter (Hugging Face's `license`,
 * `license_name`, `license_link`), LICENSE / COPYING files (identified by their text), and package metadata
 * (package.json, setup.cfg, pyproject.toml, config.json).
 */
import { parse as parseIni } from 'ini';
import { parse as parseToml } from 'smol-toml';
import { parse as parseYaml } from 'yaml';
import {
  allOf,
  formatLicense,
  leavesOf,
  LicenseExpressionError,
  parseLicenseExpression,
  resolveLicenseId,
  type LicenseLeaf,
  type LicenseNode,
} from './expression';
import type { ModelFile, ModelFiles } from './model-files';
import { modelLicenseByLink } from './model-licenses';
import { identifyLicenseText, type TextMatch } from './text-match';

export type SourceKind =
  'model-card' | 'license-file' | 'package.json' | 'setup.cfg' | 'pyproject.toml' | 'config.json';

/** One place that says something about the license. */
export interface LicenseSource {
  kind: SourceKind;
  /** The file, with the field where there is one: `README.md (license)`, `LICENSE`, `package.json (license)`. */
  location: string;
  path: string;
  /** At the model root (nested license files usually cover a vendored part, e.g. a tokenizer). */
  root: boolean;
  /** What the source says, as written (for license files: the match). */
  said: string;
  /** The license it names, resolved; absent when it names none. */
  license?: LicenseNode;
  /** License files: how the text was identified. */
  match?: TextMatch;
  /** Model card: the custom license's name and link, for `license: other`. */
  licenseName?: string;
  licenseLink?: string;
}

/** Something a reviewer should know about the sources; `incomplete` ones mean the gate could not decide. */
export interface SourceNote {
  ruleId: string;
  location: string;
  message: string;
  incomplete?: boolean;
}

export interface CollectedSources {
  sources: LicenseSource[];
  notes: SourceNote[];
}

export interface CollectOptions {
  textMatchThreshold: number;
  signal?: AbortSignal;
  onProgress?: (progress: { file: string; done: number; total: number }) => void;
}

/** Text sources larger than this are not license texts or metadata we can trust to read whole. */
export const MAX_SOURCE_BYTES = 1024 * 1024;

const LICENSE_FILE = /^(licen[cs]e|copying|unlicense)([-_.][a-z0-9._-]*)?$/i;
const NOT_LICENSE_TEXT = /\.(py|js|ts|json|ya?ml|toml|sh|ipynb|pdf|bin|safetensors|pt|pth|h5|onnx|gguf)$/i;
const CARD = /^readme\.md$/i;
const METADATA: Record<string, SourceKind> = {
  'package.json': 'package.json',
  'setup.cfg': 'setup.cfg',
  'pyproject.toml': 'pyproject.toml',
  'config.json': 'config.json',
};

function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Whether a path is a license text the gate reads (LICENSE, LICENSE.txt, LICENSE-MIT, COPYING.LESSER, …). */
export function isLicenseFile(path: string): boolean {
  const name = baseName(path);
  return LICENSE_FILE.test(name) && !NOT_LICENSE_TEXT.test(name);
}

/** Reads every license source among the model's files. */
export async function collectSources(model: ModelFiles, options: CollectOptions): Promise<CollectedSources> {
  const wanted = model.files.filter(
    (f) => isLicenseFile(f.path) || (!f.path.includes('/') && (CARD.test(f.path) || METADATA[f.path])),
  );
  // Root files first, the card before the rest, so the evidence reads in the order a reviewer would look.
  wanted.sort((a, b) => rank(a) - rank(b) || a.path.localeCompare(b.path));
  const collected: CollectedSources = { sources: [], notes: [] };
  let done = 0;
  for (const file of wanted) {
    options.signal?.throwIfAborted();
    const text = await readText(model, file, collected.notes);
    if (text !== undefined) {
      if (CARD.test(file.path) && !file.path.includes('/')) readCard(file.path, text, collected);
      else if (isLicenseFile(file.path)) readLicenseFile(file.path, text, options.textMatchThreshold, collected);
      else readMetadata(file.path, METADATA[file.path] as SourceKind, text, collected);
    }
    done++;
    options.onProgress?.({ file: file.path, done, total: wanted.length });
  }
  return collected;
}

function rank(file: ModelFile): number {
  if (file.path.includes('/')) return 3;
  if (CARD.test(file.path)) return 0;
  return isLicenseFile(file.path) ? 1 : 2;
}

async function readText(model: ModelFiles, file: ModelFile, notes: SourceNote[]): Promise<string | undefined> {
  if (file.size > MAX_SOURCE_BYTES) {
    notes.push({
      ruleId: 'license.source-too-large',
      location: file.path,
      message: `${file.path} is ${file.size} bytes, over the ${MAX_SOURCE_BYTES}-byte limit for license sources; it was not read`,
      incomplete: true,
    });
    return undefined;
  }
  return (await model.read(file.path)).toString('utf8').replace(/^\uFEFF/, '');
}

/** Parses a license as written; text that is no expression becomes an unrecognised license (unknown), noted. */
function parseSaid(said: string, location: string, notes: SourceNote[]): LicenseNode {
  try {
    return parseLicenseExpression(said);
  } catch (err) {
    if (!(err instanceof LicenseExpressionError)) throw err;
    notes.push({ ruleId: 'license.invalid-expression', location, message: `${location}: ${err.message}` });
    return { type: 'license', id: said.trim(), kind: 'unrecognised', category: 'unknown' };
  }
}

function noteCorrections(node: LicenseNode, location: string, notes: SourceNote[]): void {
  const leaves = leavesOf(node);
  for (const leaf of leaves) {
    if (leaf.corrected) {
      notes.push({
        ruleId: 'license.corrected-id',
        location,
        message: `${location} says "${leaf.corrected}", read as the SPDX id ${leaf.id}`,
      });
    } else if (leaf.kind === 'unrecognised') {
      notes.push({
        ruleId: 'license.unrecognised-id',
        location,
        message: `${location} names "${leaf.id}", which is neither an SPDX id nor a known model license`,
      });
    }
  }
}

const FRONT_MATTER = /^---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(\r?\n|$)/;

function readCard(path: string, text: string, collected: CollectedSources): void {
  const block = FRONT_MATTER.exec(text);
  if (!block) {
    if (/^---[ \t]*\r?\n/.test(text)) {
      collected.notes.push({
        ruleId: 'license.card-unreadable',
        location: path,
        message: `${path} opens a YAML front matter block that never closes (no second "---" line)`,
        incomplete: true,
      });
    } else {
      collected.notes.push({
        ruleId: 'license.card-without-metadata',
        location: path,
        message: `${path} has no YAML front matter, so the model card names no license`,
      });
    }
    return;
  }
  let meta: unknown;
  try {
    meta = parseYaml(block[1] ?? '');
  } catch (err) {
    collected.notes.push({
      ruleId: 'license.card-unreadable',
      location: path,
      message: `${path}: the front matter is not valid YAML (${(err as Error).message.split('\n')[0]})`,
      incomplete: true,
    });
    return;
  }
  const fields = (typeof meta === 'object' && meta !== null ? meta : {}) as Record<string, unknown>;
  const licenseName = typeof fields.license_name === 'string' ? fields.license_name.trim() : undefined;
  const licenseLink = typeof fields.license_link === 'string' ? fields.license_link.trim() : undefined;
  const raw = fields.license;
  const said = Array.isArray(raw) ? raw.map(String) : typeof raw === 'string' ? [raw] : [];
  if (raw !== undefined && raw !== null && said.length === 0) {
    collected.notes.push({
      ruleId: 'license.invalid-expression',
      location: `${path} (license)`,
      message: `${path}: license is ${JSON.stringify(raw)}, not a license id`,
    });
  }
  const location = `${path} (license)`;
  // A card that lists several licenses (as datasets do) is read as all of them applying.
  let license = allOf(said.filter((s) => s.trim() !== '').map((s) => parseSaid(s, location, collected.notes)));
  if (license) noteCorrections(license, location, collected.notes);

  // `license: other` (or none) with a license_name or license_link we know: that is the license.
  const deferring = !license || (license.type === 'license' && license.deferring === true);
  if (deferring && licenseName) {
    const named = resolveLicenseId(licenseName);
    if (named && named.kind !== 'unrecognised' && !named.deferring) license = named;
  }
  if (deferring && licenseLink && (!license || (license.type === 'license' && license.deferring))) {
    const linked = modelLicenseByLink(licenseLink);
    if (linked) license = resolveLicenseId(linked.id);
  }
  if (!license && (licenseName || licenseLink)) license = resolveLicenseId('other');
  if (!license) {
    collected.notes.push({
      ruleId: 'license.card-without-license',
      location: path,
      message: `${path} has front matter but no license field`,
    });
    return;
  }
  collected.sources.push({
    kind: 'model-card',
    location,
    path,
    root: true,
    said: [
      said.length > 0 ? `license: ${said.join(', ')}` : undefined,
      licenseName ? `license_name: ${licenseName}` : undefined,
      licenseLink ? `license_link: ${licenseLink}` : undefined,
    ]
      .filter(Boolean)
      .join('; '),
    ...(license ? { license } : {}),
    ...(licenseName ? { licenseName } : {}),
    ...(licenseLink ? { licenseLink } : {}),
  });
}

function readLicenseFile(path: string, text: string, threshold: number, collected: CollectedSources): void {
  const match = identifyLicenseText(text, threshold);
  const root = !path.includes('/');
  const best = match.candidates[0];
  if (match.id) {
    const license = resolveLicenseId(match.id) as LicenseLeaf;
    const how =
      match.method === 'similarity'
        ? `text matches ${match.id} (similarity ${match.score})`
        : `${match.method} "${match.phrase ?? ''}" identifies ${match.id}`;
    collected.sources.push({ kind: 'license-file', location: path, path, root, said: how, license, match });
    return;
  }
  const unknown: LicenseLeaf = { type: 'license', id: 'unknown', kind: 'model', category: 'unknown' };
  const nearest = best ? `; the nearest SPDX text is ${best.id} at similarity ${best.score}` : '';
  collected.sources.push({
    kind: 'license-file',
    location: path,
    path,
    root,
    said: `unrecognised text${nearest}`,
    license: unknown,
    match,
  });
  collected.notes.push({
    ruleId: 'license.unrecognised-text',
    location: path,
    message: `${path} is not a license text we recognise (below the ${threshold} similarity threshold${nearest}); its terms count as unknown`,
  });
}

function readMetadata(path: string, kind: SourceKind, text: string, collected: CollectedSources): void {
  let found: { field: string; said: string }[];
  try {
    found = metadataLicenses(kind, text);
  } catch (err) {
    collected.notes.push({
      ruleId: kind === 'config.json' ? 'license.config-unreadable' : 'license.metadata-unreadable',
      location: path,
      message: `${path} cannot be parsed (${(err as Error).message.split('\n')[0]})`,
      // config.json is the model's configuration and rarely names a license; the package files declare one.
      incomplete: kind !== 'config.json',
    });
    return;
  }
  for (const { field, said } of found) {
    const location = `${path} (${field})`;
    if (/^see licen[cs]e in /i.test(said)) {
      collected.notes.push({ ruleId: 'license.see-file', location, message: `${location} defers to a file: ${said}` });
      continue;
    }
    const license = parseSaid(said, location, collected.notes);
    noteCorrections(license, location, collected.notes);
    collected.sources.push({ kind, location, path, root: true, said, license });
  }
}

/** The license fields of one metadata file, as written. Throws on a file that does not parse. */
function metadataLicenses(kind: SourceKind, text: string): { field: string; said: string }[] {
  const out: { field: string; said: string }[] = [];
  const push = (field: string, value: unknown): void => {
    if (typeof value === 'string' && value.trim() !== '') out.push({ field, said: value.trim() });
  };
  if (kind === 'package.json' || kind === 'config.json') {
    const data = JSON.parse(text) as Record<string, unknown> | null;
    const license = data?.license;
    push('license', typeof license === 'object' && license !== null ? (license as { type?: unknown }).type : license);
    if (kind === 'package.json' && Array.isArray(data?.licenses)) {
      // npm's deprecated `licenses` array means a choice among them.
      const types = (data.licenses as { type?: unknown }[]).map((l) => l?.type).filter((t) => typeof t === 'string');
      if (types.length > 0) push('licenses', types.length === 1 ? types[0] : `(${types.join(') OR (')})`);
    }
  } else if (kind === 'setup.cfg') {
    const metadata = (parseIni(text).metadata ?? {}) as Record<string, unknown>;
    push('metadata.license_expression', metadata.license_expression);
    push('metadata.license', metadata.license);
  } else if (kind === 'pyproject.toml') {
    const data = parseToml(text) as Record<string, Record<string, unknown> | undefined>;
    const project = data.project;
    const license = project?.license;
    // PEP 639: a string is an SPDX expression; the older table form has text (or a file, which we read anyway).
    if (typeof license === 'object' && license !== null)
      push('project.license.text', (license as { text?: unknown }).text);
    else push('project.license', license);
    const poetry = (data.tool as Record<string, Record<string, unknown> | undefined> | undefined)?.poetry;
    push('tool.poetry.license', poetry?.license);
  }
  return out;
}

/** The license of a source, as text (for messages and the evidence). */
export function sourceLicense(source: LicenseSource): string | undefined {
  return source.license ? formatLicense(source.license) : undefined;
}
