import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { EvidenceBundleInput, EvidenceEntry } from '../../activities/gitops/evidence-bundle';
import { readableJson as canonicalJson } from '../../activities/common/canonical-json';
import { EvidenceBundleError, renderEvidenceBundle, verifyBundle } from '../../activities/gitops/evidence-bundle';

const DIR = 'releases/sentiment/1.4.0/production';

function entry(name: string, content: string | Buffer): EvidenceEntry {
  const bytes = Buffer.from(content);
  return { name, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

const scan = entry('gates/scan.json', '{"gate":"scan","findings":[]}\n');
const sbom = entry('sbom.cdx.json', '{"bomFormat":"CycloneDX","specVersion":"1.6"}\n');
const binary = entry('mlbom/weights.sig', Buffer.from([0, 255, 1, 254, 10, 13]));

function bundleInput(entries: EvidenceEntry[] = [scan, sbom, binary]): EvidenceBundleInput {
  return {
    model: 'sentiment',
    version: '1.4.0',
    environment: 'production',
    releaseId: 'release/sentiment/1.4.0/production',
    entries,
    index: {
      policy: { name: 'default', file: 'policies/default.yaml', digest: 'd'.repeat(64) },
      approvers: { file: 'approvers.yaml', digest: 'a'.repeat(64) },
      pricing: { file: 'pricing.yaml', digest: 'e'.repeat(64) },
      decisions: [
        {
          approver: 'alice',
          role: 'release-manager',
          roles: ['release-manager'],
          decision: 'approve',
          at: '2025-01-01T11:00:00.000Z',
        },
      ],
      refusedDecisions: [
        { approver: 'eve', decision: 'approve', at: '2025-01-01T10:30:00.000Z', reason: 'not an approver' },
      ],
      gates: [
        { gate: 'scan', verdict: 'pass', summary: 'no findings', evidenceSha256: `sha256:${scan.sha256}` },
        { gate: 'cost', verdict: 'warn', summary: 'above the soft budget' },
      ],
    },
  };
}

function asMap(files: { path: string; content: Buffer }[]): Map<string, string> {
  return new Map(files.map((f) => [f.path, f.content.toString('base64')]));
}

describe('renderEvidenceBundle', () => {
  it('writes each blob under its sha256 and an index whose digest is the bundle digest', () => {
    const { files, digest } = renderEvidenceBundle(bundleInput());
    expect(files.map((f) => f.path)).toEqual([
      ...[
        `${DIR}/evidence/${scan.sha256}.json`,
        `${DIR}/evidence/${sbom.sha256}.json`,
        `${DIR}/evidence/${binary.sha256}.sig`,
      ].sort(),
      `${DIR}/bundle.json`,
    ]);
    const bundle = files.at(-1)!.content;
    expect(digest).toBe(`sha256:${createHash('sha256').update(bundle).digest('hex')}`);
    for (const e of [scan, sbom, binary]) {
      expect(files.find((f) => f.path.includes(e.sha256))!.content.equals(e.bytes)).toBe(true);
    }

    const index = JSON.parse(bundle.toString('utf8'));
    expect(index.files).toEqual(
      [scan, sbom, binary]
        .map((e) => ({
          name: e.name,
          path: `evidence/${e.sha256}.${e.name.split('.').pop()}`,
          sha256: e.sha256,
          size: e.bytes.length,
        }))
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
    expect(index.index.gates[0].evidenceSha256).toBe(scan.sha256);
    expect(index.index.refusedDecisions[0].approver).toBe('eve');
    // Canonical: sorted keys at every level, so that a reader can re-derive the digest.
    expect(bundle.toString('utf8')).toBe(canonicalJson(index));
    expect(Object.keys(index)).toEqual([...Object.keys(index)].sort());
  });

  it('gives byte-identical files whatever the order of the entries, and for a repeated entry', () => {
    const first = renderEvidenceBundle(bundleInput([scan, sbom, binary]));
    const reordered = renderEvidenceBundle(bundleInput([binary, scan, sbom, scan]));
    expect(asMap(reordered.files)).toEqual(asMap(first.files));
    expect(reordered.digest).toBe(first.digest);

    // Fresh copies of every byte and field: nothing depends on object identity or on when it runs.
    const copies = bundleInput([scan, sbom, binary].map((e) => ({ ...e, bytes: Buffer.from(e.bytes) })));
    const again = renderEvidenceBundle({ ...copies, index: structuredClone(copies.index) });
    expect(asMap(again.files)).toEqual(asMap(first.files));
  });

  it('keeps one file for two names of the same content, and lists both names', () => {
    const copy = { ...scan, name: 'gates/scan-copy.json' };
    const { files } = renderEvidenceBundle(bundleInput([scan, copy]));
    expect(files.filter((f) => f.path.includes('/evidence/'))).toHaveLength(1);
    const index = JSON.parse(files.at(-1)!.content.toString('utf8'));
    expect(index.files.map((f: { name: string }) => f.name)).toEqual(['gates/scan-copy.json', 'gates/scan.json']);
  });

  it('changes the bundle digest when any evidence byte changes', () => {
    const changed = entry('gates/scan.json', '{"gate":"scan","findings":[1]}\n');
    const input = bundleInput([changed, sbom, binary]);
    input.index.gates[0]!.evidenceSha256 = changed.sha256;
    expect(renderEvidenceBundle(input).digest).not.toBe(renderEvidenceBundle(bundleInput()).digest);
  });

  it('refuses bytes that do not match their digest, a name given twice, and gate evidence that is not an entry', () => {
    const forged = { ...scan, bytes: Buffer.from('something else') };
    expect(() => renderEvidenceBundle(bundleInput([forged, sbom, binary]))).toThrow(EvidenceBundleError);
    expect(() => renderEvidenceBundle(bundleInput([forged, sbom, binary]))).toThrow(
      /entries\[0\] \(gates\/scan\.json\)/,
    );

    const clash = { ...sbom, name: 'gates/scan.json' };
    expect(() => renderEvidenceBundle(bundleInput([scan, clash]))).toThrow(/given to two different blobs/);

    expect(() => renderEvidenceBundle(bundleInput([sbom, binary]))).toThrow(/index\.gates\[0\] \(scan\).*not among/);
    expect(() => renderEvidenceBundle(bundleInput([{ ...scan, sha256: 'ABC' }]))).toThrow(/lower-case hex sha256/);
  });
});

describe('verifyBundle', () => {
  const rendered = () => renderEvidenceBundle(bundleInput()).files;

  it('accepts a bundle as rendered, with paths from the repository root or from the release folder', () => {
    const files = rendered();
    const result = verifyBundle(files);
    expect(result).toMatchObject({ ok: true, problems: [], digest: renderEvidenceBundle(bundleInput()).digest });
    expect(result.document?.releaseId).toBe('release/sentiment/1.4.0/production');
    const relative = files.map((f) => ({ path: f.path.slice(DIR.length + 1), content: f.content }));
    expect(verifyBundle(relative).ok).toBe(true);
  });

  it('names a changed, missing or unlisted evidence file', () => {
    const files = rendered();
    const target = files.findIndex((f) => f.path.endsWith('.sig'));
    const tampered = files.map((f, i) => (i === target ? { ...f, content: Buffer.from([1, 2, 3]) } : f));
    const changed = verifyBundle(tampered);
    expect(changed.ok).toBe(false);
    expect(changed.problems.join('\n')).toMatch(
      /mlbom\/weights\.sig: .* hashes to sha256:[0-9a-f]{64}, the index says/,
    );

    const missing = verifyBundle(files.filter((_, i) => i !== target));
    expect(missing.problems).toEqual([`mlbom/weights.sig: evidence/${binary.sha256}.sig is missing`]);

    const extra = verifyBundle([
      ...files,
      { path: `${DIR}/evidence/${'0'.repeat(64)}.json`, content: Buffer.from('{}') },
    ]);
    expect(extra.problems).toEqual([`evidence/${'0'.repeat(64)}.json is not listed in the index`]);
  });

  it('refuses an index that was edited, even when it still parses', () => {
    const files = rendered();
    const bundle = files.at(-1)!;
    const index = JSON.parse(bundle.content.toString('utf8'));
    index.index.gates[1].verdict = 'pass';
    // Re-serialised canonically the digest changes; written by hand it is no longer canonical either.
    const edited = [...files.slice(0, -1), { path: bundle.path, content: Buffer.from(JSON.stringify(index)) }];
    const result = verifyBundle(edited);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([
      `${bundle.path} is not in canonical form (sorted keys, 2-space indent, final newline)`,
    ]);
    expect(result.digest).not.toBe(renderEvidenceBundle(bundleInput()).digest);
    index.index.gates[0].evidenceSha256 = 'f'.repeat(64);
    const dangling = verifyBundle([
      ...files.slice(0, -1),
      { path: bundle.path, content: Buffer.from(canonicalJson(index)) },
    ]);
    expect(dangling.problems).toEqual([`gate scan: its evidence sha256:${'f'.repeat(64)} is not in the bundle`]);
  });

  it('says so when there is no index, or it is not one', () => {
    expect(verifyBundle([])).toEqual({ ok: false, problems: ['expected one bundle.json, found 0'] });
    expect(verifyBundle([{ path: 'bundle.json', content: 'nope' }]).problems).toEqual(['bundle.json is not JSON']);
    expect(verifyBundle([{ path: 'bundle.json', content: '{}' }]).problems).toEqual([
      'bundle.json is not a modelrelease.io/evidence-bundle/v1 index',
    ]);
  });
});
