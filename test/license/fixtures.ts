/**
 * Real parts for the license tests: model directories on disk, real SPDX texts from the spdx-license-list
 * package, and license texts of our own for the model licenses that SPDX lacks.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import spdxFull from 'spdx-license-list/full';
import { stringify } from 'yaml';
import { test as base } from 'vitest';
import { checkModelLicense, directoryFiles, type LicenseReport } from '../../activities/license';
import { parseLicensePolicy } from '../../activities/license/policy';
import type { Waiver } from '../../contract/types';

export const test = base.extend<{ tmp: string }>({
  tmp: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'modelrelease-license-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
});

/** Writes `{ 'a/b.txt': 'content' }` under `root` and returns `root`. */
export async function writeModel(root: string, files: Record<string, string>): Promise<string> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return root;
}

/** A Hugging Face model card: YAML front matter with `meta`, then prose. */
export function card(meta: Record<string, unknown>, body = '# A model\n\nIt classifies things.\n'): string {
  return `---\n${stringify(meta)}---\n\n${body}`;
}

/** The SPDX list's text of `id`, as the npm package ships it. */
export function spdxText(id: string): string {
  const license = spdxFull[id];
  if (!license) throw new Error(`no SPDX text for ${id}`);
  return license.licenseText;
}

/** The text as a real project ships it: its own copyright line instead of the template's. */
export function withCopyright(
  text: string,
  line = 'Copyright (c) 2019-2024 Example Labs GmbH and contributors',
): string {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => /^\s*copyright\b/i.test(l));
  if (at >= 0) lines[at] = line;
  else lines.unshift(line, '');
  return lines.join('\n');
}

/** Re-wraps every paragraph at `width` columns with CRLF line ends, as an editor or a website copy would. */
export function reflow(text: string, width = 58): string {
  return text
    .split(/\n\s*\n/)
    .map((paragraph) => {
      const out: string[] = [];
      let line = '';
      for (const word of paragraph.split(/\s+/).filter(Boolean)) {
        if (line && line.length + word.length + 1 > width) {
          out.push(line);
          line = word;
        } else line = line ? `${line} ${word}` : word;
      }
      if (line) out.push(line);
      return out.join('\r\n');
    })
    .join('\r\n\r\n');
}

/**
 * Texts in the shape of the model licenses, written for these tests: the identifying title lines the real ones
 * carry, and terms of our own.
 */
export const MODEL_LICENSE_TEXTS = {
  llama3: [
    'META LLAMA 3 COMMUNITY LICENSE AGREEMENT',
    'Meta Llama 3 Version Release Date: April 18, 2024',
    '',
    'This test text stands in for the agreement. It grants a limited license to use and redistribute the',
    'materials, asks that derived models carry the name of the original, and points to an acceptable use policy.',
  ].join('\n'),
  'llama3.1': [
    'LLAMA 3.1 COMMUNITY LICENSE AGREEMENT',
    'Llama 3.1 Version Release Date: July 23, 2024',
    '',
    'A stand-in for the agreement, written for the tests of the license gate.',
  ].join('\n'),
  llama2: 'LLAMA 2 COMMUNITY LICENSE AGREEMENT\n\nA stand-in text with the title of the Llama 2 agreement.\n',
  gemma: 'Gemma Terms of Use\n\nA stand-in text: use of the model is subject to a prohibited use policy.\n',
  'creativeml-openrail-m': [
    'CreativeML Open RAIL-M',
    'dated August 22, 2022',
    '',
    'A stand-in text: the model may be used, shared and changed, except for the uses listed in Attachment A.',
  ].join('\n'),
  'bigscience-bloom-rail-1.0': 'BigScience RAIL License v1.0\n\nA stand-in text with use restrictions.\n',
} as const;

/** Runs the license check on a directory with a policy section (defaults when absent). */
export async function check(dir: string, policy: unknown = undefined, waivers: Waiver[] = []): Promise<LicenseReport> {
  return checkModelLicense(await directoryFiles(dir), parseLicensePolicy(policy), {
    now: '2026-06-01T00:00:00.000Z',
    waivers,
  });
}

/** The rule ids of a report's findings, in order. */
export function ruleIds(report: LicenseReport): string[] {
  return report.findings.map((f) => f.ruleId);
}
