/**
 * Debian version comparison, as dpkg does it (deb-version(7), Debian Policy §5.6.12):
 * `[epoch:]upstream_version[-debian_revision]`, compared epoch first (numerically), then upstream and revision with
 * dpkg's verrevcmp: alternating non-digit runs (letters sort before non-letters, `~` before everything, even the
 * end of the string) and digit runs compared numerically.
 */

/** A parsed Debian version. */
export interface DebianVersion {
  epoch: number;
  upstream: string;
  revision: string;
}

/** Parses a Debian version; returns undefined when it is not one dpkg would accept. */
export function parseDebianVersion(version: string): DebianVersion | undefined {
  const text = version.trim();
  if (text === '' || /\s/.test(text)) return undefined;
  let epoch = 0;
  let rest = text;
  const colon = text.indexOf(':');
  if (colon >= 0) {
    const epochText = text.slice(0, colon);
    if (!/^\d+$/.test(epochText)) return undefined;
    epoch = Number(epochText);
    rest = text.slice(colon + 1);
  }
  const hyphen = rest.lastIndexOf('-');
  const upstream = hyphen >= 0 ? rest.slice(0, hyphen) : rest;
  const revision = hyphen >= 0 ? rest.slice(hyphen + 1) : '';
  // dpkg requires the upstream part to start with a digit and allows only these characters.
  if (!/^[0-9][A-Za-z0-9.+~:-]*$/.test(upstream)) return undefined;
  if (hyphen >= 0 && !/^[A-Za-z0-9.+~]+$/.test(revision)) return undefined;
  return { epoch, upstream, revision };
}

/** True when `version` is a valid Debian version. */
export function isDebianVersion(version: string): boolean {
  return parseDebianVersion(version) !== undefined;
}

function order(code: number): number {
  if (code >= 0x30 && code <= 0x39) return 0;
  if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) return code;
  if (code === 0x7e) return -1;
  return code + 256;
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

/** dpkg's verrevcmp over one part (upstream or revision). */
function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let firstDiff = 0;
    while ((i < a.length && !isDigit(a.charCodeAt(i))) || (j < b.length && !isDigit(b.charCodeAt(j)))) {
      // The end of a string orders like a digit run (0), so "1.0" < "1.0a" but "1.0~rc1" < "1.0".
      const ac = i < a.length ? order(a.charCodeAt(i)) : 0;
      const bc = j < b.length ? order(b.charCodeAt(j)) : 0;
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (i < a.length && a.charCodeAt(i) === 0x30) i++;
    while (j < b.length && b.charCodeAt(j) === 0x30) j++;
    while (i < a.length && isDigit(a.charCodeAt(i)) && j < b.length && isDigit(b.charCodeAt(j))) {
      if (!firstDiff) firstDiff = a.charCodeAt(i) - b.charCodeAt(j);
      i++;
      j++;
    }
    if (i < a.length && isDigit(a.charCodeAt(i))) return 1;
    if (j < b.length && isDigit(b.charCodeAt(j))) return -1;
    if (firstDiff) return firstDiff;
  }
  return 0;
}

/**
 * Compares two Debian versions: negative when a < b, 0 when equal, positive when a > b. Throws on an invalid
 * version, so a malformed advisory or package database never silently compares as "not affected".
 */
export function compareDebianVersions(a: string, b: string): number {
  const va = parseDebianVersion(a);
  const vb = parseDebianVersion(b);
  if (!va) throw new Error(`"${a}" is not a valid Debian version`);
  if (!vb) throw new Error(`"${b}" is not a valid Debian version`);
  if (va.epoch !== vb.epoch) return va.epoch - vb.epoch;
  return Math.sign(verrevcmp(va.upstream, vb.upstream)) || Math.sign(verrevcmp(va.revision, vb.revision));
}
