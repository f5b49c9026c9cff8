/**
 * The drift reader's CSV scanner reads what csv-parse reads (with the options `mrel drift` used before it), whatever
 * the chunk boundaries, and refuses what csv-parse refuses with the same error code.
 */
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import { CsvFormatError, scanCsv } from '../../../activities/monitor/drift/csv-scan';

async function* chunks(text: string, size: number): AsyncGenerator<string> {
  for (let i = 0; i < text.length; i += size) yield text.slice(i, i + size);
}

/** Every record (header included) as the scanner hands it over, with all fields wanted. */
async function scanAll(text: string, size: number): Promise<{ records: string[][]; lines: number[] }> {
  const records: string[][] = [];
  const lines: number[] = [];
  await scanCsv(chunks(text, size), {
    header: (fields, line) => {
      records.push([...fields]);
      lines.push(line);
      return fields.map((_, i) => i);
    },
    record: (fields, line) => {
      records.push([...fields]);
      lines.push(line);
    },
  });
  return { records, lines };
}

const reference = (text: string): string[][] =>
  parse(text, { bom: true, skip_empty_lines: true, relax_column_count: false }) as string[][];

const GOOD: Record<string, string> = {
  plain: 'a,b,c\n1,2,3\n4,5,6\n',
  'no final newline': 'a,b\n1,2\n3,4',
  crlf: 'a,b\r\n1,2\r\n3,4\r\n',
  bom: '\uFEFFa,b\n1,2\n',
  'empty lines': 'a,b\n\n1,2\n\n\n3,4\n\n',
  'empty lines, crlf': 'a,b\r\n\r\n1,2\r\n\r\n',
  'empty fields': 'a,b,c\n,,\n1,,3\n',
  quoted: 'name,note\n"Smith, J","said ""hi"""\n"",x\n',
  'quoted line breaks': 'a,b\n"line one\nline two",2\n3,"x\r\ny"\n5,6\n',
  'quoted at the end': 'a,b\n1,"2"',
  unicode: 'city,v\nZürich,1\n東京,2\n"São, Paulo",3\n',
};

describe('scanCsv', () => {
  it.each(Object.keys(GOOD))('reads %s as csv-parse does, at any chunk size', async (name) => {
    const text = GOOD[name]!;
    const want = reference(text);
    for (const size of [1, 2, 3, 5, 7, text.length]) {
      const { records } = await scanAll(text, size);
      expect(records, `chunks of ${size}`).toEqual(want);
    }
  });

  it('numbers records by the line they start on', async () => {
    const { lines } = await scanAll('a,b\n\n1,2\n"x\ny",3\n4,5\n', 4);
    expect(lines).toEqual([1, 3, 4, 6]);
  });

  it.each([
    ['a,b\n1,2,3\n', 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', 2],
    ['a,b\n1\n', 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', 2],
    ['a,b\n1,"2\n', 'CSV_QUOTE_NOT_CLOSED', 2],
    ['a,b\n1,"2"x\n', 'CSV_INVALID_CLOSING_QUOTE', 2],
    ['a,b\n1,2"x\n', 'INVALID_OPENING_QUOTE', 2],
  ])('refuses %j with %s (line %i), as csv-parse does', async (text, code, line) => {
    expect(() => reference(text)).toThrow(expect.objectContaining({ code }) as Error);
    for (const size of [1, 3, text.length]) {
      const err = await scanAll(text, size).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CsvFormatError);
      expect(err).toMatchObject({ code, lines: line });
    }
  });

  it('hands over only the wanted fields and says when there was no header', async () => {
    const seen: string[][] = [];
    const hadHeader = await scanCsv(chunks('a,b,c\n1,2,3\n4,5,6\n', 4), {
      header: () => [2, 0],
      record: (fields) => seen.push([fields[2]!, fields[0]!]),
    });
    expect(hadHeader).toBe(true);
    expect(seen).toEqual([
      ['3', '1'],
      ['6', '4'],
    ]);
    expect(await scanCsv(chunks('\n\n', 1), { header: () => [], record: () => undefined })).toBe(false);
  });
});
