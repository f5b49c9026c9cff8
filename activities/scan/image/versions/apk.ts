/**
 * Alpine (apk-tools) version comparison: `digit{.digit}...{letter}{_suffix{digits}}...{-r#}`. Components are read as
 * tokens and compared in order; `_alpha`, `_beta`, `_pre`, `_rc` sort before the release and `_cvs`, `_svn`, `_git`,
 * `_hg`, `_p` after it; a component that starts with 0 compares as a fraction (so 1.02 < 1.1); a longer version is
 * greater unless what follows is a pre-release suffix.
 */

/** Token kinds, in the order apk-tools ranks them when one version has more components than the other. */
const enum Token {
  Invalid = -1,
  DigitOrZero = 0,
  Digit = 1,
  Letter = 2,
  Suffix = 3,
  SuffixNo = 4,
  RevisionNo = 5,
  End = 6,
}

const PRE_SUFFIXES = ['alpha', 'beta', 'pre', 'rc'];
const POST_SUFFIXES = ['cvs', 'svn', 'git', 'hg', 'p'];

class Reader {
  pos = 0;
  type: Token = Token.Digit;
  constructor(readonly text: string) {}

  private isDigit(i: number): boolean {
    const c = this.text.charCodeAt(i);
    return c >= 0x30 && c <= 0x39;
  }

  private isLower(i: number): boolean {
    const c = this.text.charCodeAt(i);
    return c >= 0x61 && c <= 0x7a;
  }

  /** Decides the kind of the next token from the separator at `pos` (which it consumes). */
  private nextType(): void {
    let next = Token.Invalid;
    const t = this.type;
    if (this.pos >= this.text.length) {
      next = Token.End;
    } else if ((t === Token.Digit || t === Token.DigitOrZero) && this.isLower(this.pos)) {
      next = Token.Letter;
    } else if (t === Token.Letter && this.isDigit(this.pos)) {
      next = Token.Digit;
    } else if (t === Token.Suffix && this.isDigit(this.pos)) {
      next = Token.SuffixNo;
    } else {
      const c = this.text[this.pos];
      if (c === '.') next = Token.DigitOrZero;
      else if (c === '_') next = Token.Suffix;
      else if (c === '-' && this.text[this.pos + 1] === 'r') {
        next = Token.RevisionNo;
        this.pos++;
      }
      this.pos++;
    }
    // Tokens only move forward (digits, letter, suffixes, revision), with these few ways back.
    if (
      next < t &&
      !(
        (next === Token.DigitOrZero && t === Token.Digit) ||
        (next === Token.Suffix && t === Token.SuffixNo) ||
        (next === Token.Digit && t === Token.Letter)
      )
    ) {
      next = Token.Invalid;
    }
    this.type = next;
  }

  /** The value of the suffix token at `pos` without consuming it: negative for pre-release suffixes. */
  peekSuffix(): number {
    const rest = this.text.slice(this.pos);
    const pre = PRE_SUFFIXES.findIndex((s) => rest.startsWith(s));
    return pre >= 0 ? pre - PRE_SUFFIXES.length : 0;
  }

  /** Reads the value of the current token and advances to the next one. */
  value(): number {
    if (this.pos >= this.text.length) {
      this.type = Token.End;
      return 0;
    }
    let v = 0;
    let zeroFraction = false;
    const start = this.pos;
    const readNumber = (): number => {
      let n = 0;
      while (this.pos < this.text.length && this.isDigit(this.pos)) {
        n = n * 10 + (this.text.charCodeAt(this.pos) - 0x30);
        this.pos++;
      }
      return n;
    };
    switch (this.type) {
      case Token.DigitOrZero:
        if (this.text[this.pos] === '0') {
          // A component with leading zeros is a fraction: more zeros sort lower.
          while (this.pos < this.text.length && this.text[this.pos] === '0') this.pos++;
          v = -(this.pos - start);
          zeroFraction = true;
        } else {
          v = readNumber();
        }
        break;
      case Token.Digit:
      case Token.SuffixNo:
      case Token.RevisionNo:
        v = readNumber();
        break;
      case Token.Letter:
        v = this.text.charCodeAt(this.pos);
        this.pos++;
        break;
      case Token.Suffix: {
        const rest = this.text.slice(this.pos);
        const pre = PRE_SUFFIXES.findIndex((s) => rest.startsWith(s));
        if (pre >= 0) {
          v = pre - PRE_SUFFIXES.length;
          this.pos += PRE_SUFFIXES[pre]!.length;
          break;
        }
        const post = POST_SUFFIXES.findIndex((s) => rest.startsWith(s));
        if (post >= 0) {
          v = post;
          this.pos += POST_SUFFIXES[post]!.length;
          break;
        }
        this.type = Token.Invalid;
        return -1;
      }
      default:
        this.type = Token.Invalid;
        return -1;
    }
    if (this.pos >= this.text.length) this.type = Token.End;
    else if (zeroFraction) this.type = Token.Digit;
    else this.nextType();
    return v;
  }
}

/** True when apk-tools would accept `version`. */
export function isApkVersion(version: string): boolean {
  // apk-tools 3 requires a leading digit; the older reader would accept "a1".
  if (!/^[0-9]/.test(version)) return false;
  const r = new Reader(version);
  while (r.type !== Token.End && r.type !== Token.Invalid) r.value();
  return r.type === Token.End;
}

/** Compares two Alpine package versions: negative when a < b, 0 when equal, positive when a > b. */
export function compareApkVersions(a: string, b: string): number {
  const ra = new Reader(a);
  const rb = new Reader(b);
  let av = 0;
  let bv = 0;
  while (ra.type === rb.type && ra.type !== Token.End && ra.type !== Token.Invalid && av === bv) {
    av = ra.value();
    bv = rb.value();
  }
  if (av !== bv) return av < bv ? -1 : 1;
  if (ra.type === rb.type) return 0;
  // Equal so far: the longer version is greater, unless it continues with a pre-release suffix.
  if (ra.type === Token.Suffix && ra.peekSuffix() < 0) return -1;
  if (rb.type === Token.Suffix && rb.peekSuffix() < 0) return 1;
  if (ra.type > rb.type) return -1;
  if (rb.type > ra.type) return 1;
  return 0;
}
