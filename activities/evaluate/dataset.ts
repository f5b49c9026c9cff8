/**
 * Streams a CSV or JSON Lines dataset as batches of rows, picking out the columns the caller asks for. Memory holds
 * one batch at a time; the file's sha256 is computed on the way, so the evidence names the exact bytes evaluated.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse';
import { dataError, EvaluationError } from './errors';

export type DatasetFormat = 'csv' | 'jsonl';

export interface RowBatch {
  /** 1-based number of the first row in this batch (data rows: a CSV header is not counted). */
  firstRow: number;
  /** rows[i][j] is the value of the j-th requested column in row firstRow + i, as text. */
  rows: string[][];
}

export interface ReadOptions {
  format?: DatasetFormat;
  batchRows?: number;
  signal?: AbortSignal;
}

export interface DatasetInfo {
  path: string;
  format: DatasetFormat;
  rows: number;
  bytes: number;
  sha256: string;
}

/** Accepts a plain path or a file:// URI (the request's `evaluation.dataset`). */
export function datasetPath(uri: string): string {
  if (uri.startsWith('file://')) {
    try {
      return fileURLToPath(uri);
    } catch {
      throw new EvaluationError('InvalidDataset', `dataset ${uri} is not a local file URL: use file:///absolute/path`);
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) {
    throw new EvaluationError('InvalidDataset', `dataset ${uri}: only file:// datasets (or plain paths) can be read`);
  }
  return uri;
}

export function detectFormat(path: string): DatasetFormat {
  return /\.(jsonl|ndjson)$/i.test(path) ? 'jsonl' : 'csv';
}

/**
 * Reads `columns` from every row of the dataset, in batches. Throws an EvaluationError naming the column (and the
 * row, for a value) when a column is missing or a row is malformed. Messages name places, never content: a dataset
 * path can be pointed at a file that holds secrets, and the message ends up in release statuses. `done()` of the returned reader gives the file's
 * row count, size and sha256 once iteration has finished.
 */
export function readDataset(
  path: string,
  columns: readonly string[],
  options: ReadOptions = {},
): { batches: AsyncGenerator<RowBatch>; info: () => DatasetInfo } {
  const format = options.format ?? detectFormat(path);
  const hash = createHash('sha256');
  let bytes = 0;
  let rows = 0;
  let finished = false;
  const batchRows = options.batchRows ?? 8192;

  async function* generate(): AsyncGenerator<RowBatch> {
    try {
      await stat(path);
    } catch (err) {
      throw new EvaluationError('InvalidDataset', `dataset ${path} cannot be read: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const input = createReadStream(path, { highWaterMark: 1 << 20, signal: options.signal });
    input.on('data', (chunk) => {
      hash.update(chunk as Buffer);
      bytes += chunk.length;
    });
    // A read error (or an abort) must end the iteration with that error, not leave the parser waiting.
    let readError: unknown;
    input.on('error', (err) => {
      readError ??= err;
    });
    const source = format === 'csv' ? csvRows(input, columns) : jsonlRows(input, columns);
    let batch: string[][] = [];
    let firstRow = 1;
    try {
      for await (const row of source) {
        batch.push(row);
        rows++;
        if (batch.length >= batchRows) {
          yield { firstRow, rows: batch };
          firstRow += batch.length;
          batch = [];
        }
      }
    } finally {
      input.destroy();
    }
    if (readError) throw readError;
    if (batch.length > 0) yield { firstRow, rows: batch };
    if (rows === 0) throw dataError(undefined, undefined, `dataset ${path} has no data rows`);
    finished = true;
  }

  return {
    batches: generate(),
    info: () => {
      if (!finished) throw new Error('the dataset has not been read to the end yet');
      return { path, format, rows, bytes, sha256: hash.digest('hex') };
    },
  };
}

async function* csvRows(input: NodeJS.ReadableStream, columns: readonly string[]): AsyncGenerator<string[]> {
  const parser = parse({ bom: true, trim: true, skip_empty_lines: true, relax_column_count: false, cast: false });
  input.on('error', (err) => parser.destroy(err));
  input.pipe(parser);
  let indexes: number[] | undefined;
  let row = 0;
  try {
    for await (const record of parser as AsyncIterable<string[]>) {
      if (!indexes) {
        const header = record;
        indexes = columns.map((c) => header.indexOf(c));
        const missing = columns.filter((_, i) => indexes![i] === -1);
        if (missing.length > 0) {
          throw dataError(
            missing[0],
            undefined,
            `not in the CSV header (missing: ${missing.join(', ')}; ${describeHeader(header)})`,
          );
        }
        continue;
      }
      row++;
      const out = new Array<string>(indexes.length);
      for (let j = 0; j < indexes.length; j++) out[j] = record[indexes[j]!]!;
      yield out;
    }
  } catch (err) {
    if (err instanceof EvaluationError) throw err;
    const code = (err as { code?: string }).code;
    // csv-parse's own messages and context quote the offending record: only the code and the line are passed on.
    // csv-parse names one error without its CSV_ prefix: an opening quote inside an unquoted field.
    if (code?.startsWith('CSV_') || code === 'INVALID_OPENING_QUOTE') {
      const line = (err as { lines?: unknown }).lines;
      const at = typeof line === 'number' ? ` (line ${line} of the file)` : '';
      throw dataError(undefined, row + 1, `malformed CSV${at}: ${CSV_PROBLEMS[code] ?? code}`);
    }
    throw err;
  }
  if (!indexes) throw dataError(undefined, undefined, 'the CSV file is empty (no header row)');
}

async function* jsonlRows(input: NodeJS.ReadableStream, columns: readonly string[]): AsyncGenerator<string[]> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  input.on('error', () => lines.close());
  let row = 0;
  for await (const line of lines) {
    if (line.trim() === '') continue;
    row++;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      // JSON.parse quotes the text it could not parse; keep only the position.
      const position = /position (\d+)/.exec((err as Error).message)?.[1];
      throw dataError(undefined, row, `not valid JSON${position === undefined ? '' : ` (at character ${position})`}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw dataError(undefined, row, 'each line must be a JSON object of column → value');
    }
    const record = value as Record<string, unknown>;
    const out = new Array<string>(columns.length);
    for (let j = 0; j < columns.length; j++) {
      const v = record[columns[j]!];
      if (v === undefined || v === null) throw dataError(columns[j], row, 'missing value');
      if (typeof v === 'object') {
        throw dataError(
          columns[j],
          row,
          `expected a number or a string, got ${Array.isArray(v) ? 'an array' : 'an object'}`,
        );
      }
      out[j] = String(v);
    }
    yield out;
  }
}

const CSV_PROBLEMS: Record<string, string> = {
  CSV_RECORD_INCONSISTENT_FIELDS_LENGTH: 'the row has a different number of fields than the header',
  CSV_RECORD_INCONSISTENT_COLUMNS: 'the row has a different number of fields than the header',
  CSV_QUOTE_NOT_CLOSED: 'a quoted field is never closed',
  CSV_INVALID_CLOSING_QUOTE: 'a character follows a closing quote (quote the whole field and double inner quotes)',
  CSV_NON_TRIMABLE_CHAR_AFTER_CLOSING_QUOTE: 'a character follows a closing quote',
  CSV_MAX_RECORD_SIZE: 'a row is larger than the parser accepts',
};

/** Column names that look like names; anything else could be the content of a file that is not a dataset. */
const PLAIN_COLUMN = /^[A-Za-z0-9_ .-]{1,64}$/;
const MAX_LISTED_COLUMNS = 50;

/** The header for a message: its names when they are plainly column names, otherwise only how many there are. */
export function describeHeader(header: readonly string[]): string {
  if (header.length <= MAX_LISTED_COLUMNS && header.every((name) => PLAIN_COLUMN.test(name))) {
    return `header: ${header.join(', ')}`;
  }
  return `the header has ${header.length} column${header.length === 1 ? '' : 's'}`;
}

/**
 * The comparison key of a label or category value: numbers compare by value ("1", "1.0" and 1 are the same label),
 * everything else by its trimmed text.
 */
export function valueKey(value: string | number | boolean): string {
  if (typeof value === 'number') return String(value);
  const text = String(value).trim();
  if (text !== '' && Number.isFinite(Number(text))) return String(Number(text));
  return text;
}
