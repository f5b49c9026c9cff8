/** Version ordering per ecosystem, checked against each ecosystem's published examples. */
import { describe, expect, it } from 'vitest';
import {
  compareApkVersions,
  compareDebianVersions,
  isApkVersion,
  isDebianVersion,
  versionScheme,
} from '../../activities/scan/image/versions';

const sign = (n: number): number => (n > 0 ? 1 : n < 0 ? -1 : 0);

describe('Debian versions (dpkg)', () => {
  it('orders ~ before everything, even the end of the part (Debian Policy 5.6.12)', () => {
    // Policy's example: ~~, ~~a, ~, the empty part, a — in that order.
    const ordered = ['1.0~~', '1.0~~a', '1.0~', '1.0', '1.0a'];
    for (let i = 0; i + 1 < ordered.length; i++) {
      expect(sign(compareDebianVersions(ordered[i]!, ordered[i + 1]!)), `${ordered[i]} < ${ordered[i + 1]}`).toBe(-1);
    }
  });

  it.each([
    ['1.0~rc1', '1.0', -1], // pre-releases with ~ sort before the release
    ['1:1.0', '2.0', 1], // the epoch wins over everything
    ['0:1.0', '1.0', 0], // epoch 0 is the default
    ['1.0', '1.0-0', 0], // an absent revision compares like "0"
    ['1.0-1', '1.0-1ubuntu1', -1],
    ['2.30', '2.3', 1], // digit runs compare numerically
    ['1.0.0', '1.0', 1],
    ['1.0+dfsg1', '1.0', 1], // non-letters sort after the end
    ['1.0a', '1.0+', -1], // letters sort before non-letters
    ['3.0.11-1~deb12u1', '3.0.11-1~deb12u2', -1], // stable security updates
    ['3.0.11-1~deb12u2', '3.0.11-1', -1],
    ['2.36-9+deb12u3', '2.36-9', 1],
    ['1.2-3-4', '1.2-3', 1], // the last hyphen starts the revision: upstream "1.2-3" > "1.2"
    ['007', '7', 0], // leading zeros do not count
  ])('%s vs %s → %i', (a, b, expected) => {
    expect(sign(compareDebianVersions(a, b))).toBe(expected);
    expect(sign(compareDebianVersions(b, a))).toBe(0 - expected);
  });

  it('rejects what dpkg rejects, and compare throws rather than guess', () => {
    for (const bad of ['', 'a1.0', '1.0-', 'x:1.0', '1 .0', '1.0-a_b']) expect(isDebianVersion(bad), bad).toBe(false);
    expect(() => compareDebianVersions('a1.0', '1.0')).toThrow(/not a valid Debian version/);
  });
});

describe('Alpine versions (apk-tools)', () => {
  // Lines from apk-tools' test/version.data.
  const examples = `
2.34 > 0.1.0_alpha
23_foo > 4_beta
1.0 < 1.0bc
0.1.0_alpha = 0.1.0_alpha
0.1.0_alpha < 0.1.3_alpha
0.1.0_alpha2 > 0.1.0_alpha
2.2.39-r1 > 1.0.4-r3
1.0.4-r3 < 1.0.4-r4
1.1 > 1.1_alpha1
1.2.1 > 1.2
1.3_alpha2 < 1.3_alpha3
0.7.0 < 0.8_beta1
3.10.18-r1 > 2.3.0b-r1
2.3.0b-r1 < 2.3.0b-r2
0.12.3 > 0.12
3.1_p16 < 3.1_p17
1.06-r6 < 006
006 > 1.0.0
1.2.2-r1 > 1.2.2
2.59 < 20050718-r1
2.01.01_alpha10 > 0.94
1.0 > 0.99.3.20040818
1.00_beta2 > 0.9.2
4.2.52_p2-r1 < 4.2.52_p4-r2
1.02.07 < 1.02.10-r1
3.6.19-r1 > 3.6.19
2.0.0_rc3-r1 > 1.5
3.9_pre20060124 > 0.01
0.10.0 < 0.10.1_rc1
1.1a < 1.3a
0.15.1b-r2 > 0.15.1b
22.7.3-r1 > 22.7
2.10.1 > 02.08.01b
1.6d > 1.2.07.8
0.20070118 < 0.20070207_rc1
4.5_p1-r1 > 4.5_p1
0.9.8c-r1 < 0.9.8d
1.7 < 1.7b
1.8.5 < 1.8.5_p2
2.9.11_pre20051101-r3 > 2.9.11_pre20051101
1.6.8_p12-r1 > 1.6.8_p9-r2
0.9.28.1 < 087-r1
104-r11 > 104-r9
2.12r-r4 < 2.12r-r5
7.0.17 < 7.0.174
1.3-r0 < 1.3.1-r0
1.3_pre1-r1 < 1.3.2
1.0_p10-r0 > 1.0_p9-r0
0.1.0_alpha_pre2 < 0.1.0_alpha
1.0.0_pre20191002222144-r0 < 1.0.0_pre20210530193627-r0
`;
  const cases = examples
    .trim()
    .split('\n')
    .map((l) => l.split(' ') as [string, '<' | '>' | '=', string]);

  it.each(cases)('%s %s %s', (a, op, b) => {
    const expected = op === '<' ? -1 : op === '>' ? 1 : 0;
    expect(sign(compareApkVersions(a, b))).toBe(expected);
    expect(sign(compareApkVersions(b, a))).toBe(0 - expected);
  });

  it('validates versions as apk does', () => {
    for (const ok of ['1.2.4-r2', '3.1_p16', '1.0_alpha_pre2', '2.12r-r5']) expect(isApkVersion(ok), ok).toBe(true);
    for (const bad of ['', '1.0-x', 'a1', '1.0_foo', '1.0+1']) expect(isApkVersion(bad), bad).toBe(false);
  });
});

describe('schemes by OSV ecosystem', () => {
  it('PyPI follows PEP 440', () => {
    const pep = versionScheme('PyPI')!;
    const ordered = ['1!0.1', '1.0.dev0', '1.0a1', '1.0b1', '1.0rc1', '1.0', '1.0.post1', '1.1'];
    // The epoch puts 1!0.1 after everything without one.
    const sorted = [...ordered].sort((a, b) => pep.compare(a, b));
    expect(sorted).toEqual(['1.0.dev0', '1.0a1', '1.0b1', '1.0rc1', '1.0', '1.0.post1', '1.1', '1!0.1']);
    expect(pep.compare('1.0', '1.0.0')).toBe(0);
    expect(pep.valid('not a version')).toBe(false);
  });

  it('npm and SEMVER ranges follow SemVer 2.0', () => {
    const npm = versionScheme('npm')!;
    expect(npm.compare('1.0.0-alpha', '1.0.0')).toBe(-1);
    expect(npm.compare('1.0.0-alpha.1', '1.0.0-alpha.beta')).toBe(-1);
    expect(npm.compare('4.17.20', '4.17.21')).toBe(-1);
    expect(versionScheme('PyPI', 'SEMVER')!.name).toBe('semver');
  });

  it('release-qualified ecosystems use their family rules; unknown ones have none', () => {
    expect(versionScheme('Debian:12')!.name).toBe('dpkg');
    expect(versionScheme('Alpine:v3.19')!.name).toBe('apk');
    expect(versionScheme('Maven')).toBeUndefined();
  });
});
