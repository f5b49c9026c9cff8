import { describe, expect, it } from 'vitest';
import { storePath, UnsafePathError } from '../../activities/acquire';
import { assertSafeRelativePath } from '../../activities/acquire/paths';

describe('assertSafeRelativePath', () => {
  it.each(['config.json', 'a/b/c.bin', '.gitattributes', 'dir/..hidden', 'weird name (1).txt'])('accepts %j', (p) => {
    expect(() => assertSafeRelativePath(p, 'file')).not.toThrow();
  });

  it.each([
    ['', /empty/],
    ['/etc/passwd', /absolute/],
    ['../evil', /"\.\."/],
    ['a/../../evil', /"\.\."/],
    ['a\\b', /backslash/],
    ['a\0b', /NUL/],
    ['./a', /normalised/],
    ['a//b', /normalised/],
    ['dir/', /normalised/],
  ])('refuses %j', (p, why) => {
    expect(() => assertSafeRelativePath(p, 'file')).toThrow(UnsafePathError);
    expect(() => assertSafeRelativePath(p, 'file')).toThrow(why);
  });
});

describe('storePath', () => {
  it('addresses blobs by digest under sha256/<first 2 hex>/', () => {
    const digest = 'ab'.repeat(32);
    expect(storePath('/store', digest)).toBe(`/store/sha256/ab/${digest}`);
  });

  it('refuses anything but a hex sha256', () => {
    expect(() => storePath('/store', '../../etc/passwd')).toThrow(RangeError);
  });
});
