/**
 * A CSV scanner for the drift reader: RFC 4180 as csv-parse reads it with the options `mrel drift` used (a BOM,
 * quoted fields with doubled quotes and line breaks inside, LF or CRLF, empty lines skipped, every record as wide as
 * the header, a quote inside an unquoted field refused), but it slices out only the fields a caller wants and reuses
 * one record array, instead of building every record: several times faster on files of millions of rows, which is
 * most of the time of a drift report.
 */

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

/** A malformed file: csv-parse's error codes, and the line, never the content. */
export class CsvFormatError extends Error {
  constructor(
    readonly code: string,
    readonly lines: number,
  ) {
    super(`malformed CSV (${code}) at line ${lines}`);
    this.name = 'CsvFormatError';
  }
}

export interface CsvSink {
  /** The header's fields; returns the indexes of the fields each record must carry on to `record`. */
  header(fields: string[], line: number): readonly number[];
  /** One record: `fields[i]` holds the field at each wanted index i (the others are stale). */
  record(fields: readonly string[], line: number): void;
}

/** Reads text chunks (already decoded) record by record into `sink`. Resolves false when there was no header. */
export async function scanCsv(input: AsyncIterable<string>, sink: CsvSink): Promise<boolean> {
  let carry = '';
  let first = true;
  let line = 1;
  let width = -1;
  let wanted: Uint8Array | undefined;
  const headerFields: string[] = [];
  let row: string[] = [];

  /** Scans whole records of `text`; returns where the first incomplete one starts (all of it when `final`). */
  const scan = (text: string, final: boolean): number => {
    const len = text.length;
    let pos = 0;
    while (pos < len) {
      const recordStart = pos;
      let c = text.charCodeAt(pos);
      // skip_empty_lines
      if (c === LF) {
        pos++;
        line++;
        continue;
      }
      if (c === CR && (pos + 1 < len ? text.charCodeAt(pos + 1) === LF : final)) {
        pos += pos + 1 < len ? 2 : 1;
        line++;
        continue;
      }
      // A CR at the end of the chunk may be the first half of a CRLF.
      if (c === CR && pos + 1 >= len && !final) return recordStart;
      if (wanted === undefined) headerFields.length = 0;
      let field = 0;
      let breaks = 0;
      for (;;) {
        let value: string | undefined;
        const keep = wanted === undefined || (field < wanted.length && wanted[field] === 1);
        if (pos < len && text.charCodeAt(pos) === QUOTE) {
          let segment = pos + 1;
          let parts = '';
          for (;;) {
            const q = text.indexOf('"', segment);
            if (q === -1 || (q + 1 >= len && !final)) {
              if (!final) return recordStart;
              throw new CsvFormatError('CSV_QUOTE_NOT_CLOSED', line);
            }
            if (q + 1 < len && text.charCodeAt(q + 1) === QUOTE) {
              parts += text.slice(segment, q + 1);
              segment = q + 2;
              continue;
            }
            if (keep) value = parts + text.slice(segment, q);
            for (let i = pos + 1; i < q; i++) if (text.charCodeAt(i) === LF) breaks++;
            pos = q + 1;
            break;
          }
          c = pos < len ? text.charCodeAt(pos) : -1;
          if (c === CR) {
            if (pos + 1 >= len && !final) return recordStart;
            if (pos + 1 < len && text.charCodeAt(pos + 1) === LF) pos++;
            c = LF;
          } else if (c !== COMMA && c !== LF && c !== -1) {
            throw new CsvFormatError('CSV_INVALID_CLOSING_QUOTE', line + breaks);
          }
        } else {
          let i = pos;
          c = -1;
          while (i < len) {
            const d = text.charCodeAt(i);
            if (d === COMMA || d === LF) {
              c = d;
              break;
            }
            if (d === QUOTE) throw new CsvFormatError('INVALID_OPENING_QUOTE', line + breaks);
            i++;
          }
          if (c === -1 && !final) return recordStart;
          if (keep) {
            const end = i > pos && text.charCodeAt(i - 1) === CR ? i - 1 : i;
            value = text.slice(pos, end);
          }
          pos = i;
        }
        if (wanted === undefined) headerFields.push(value!);
        else if (keep) row[field] = value!;
        field++;
        if (c === COMMA) {
          pos++;
          continue;
        }
        if (c === LF) pos++;
        break;
      }
      if (wanted === undefined) {
        width = field;
        const indexes = sink.header(headerFields, line);
        wanted = new Uint8Array(width);
        for (const i of indexes) wanted[i] = 1;
        row = new Array<string>(width).fill('');
      } else {
        if (field !== width) throw new CsvFormatError('CSV_RECORD_INCONSISTENT_FIELDS_LENGTH', line);
        sink.record(row, line);
      }
      line += 1 + breaks;
    }
    return len;
  };

  for await (const chunk of input) {
    let text = carry.length > 0 ? carry + chunk : chunk;
    if (first) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      first = false;
    }
    carry = text.slice(scan(text, false));
  }
  if (carry.length > 0) scan(carry, true);
  return wanted !== undefined;
}
