/**
 * Streams a CSV (csv-scan.ts) or JSON Lines file (by extension: .jsonl/.ndjson) into what the drift statistics need
 * per column: the numbers of a numerical column in a growing Float64Array (8 bytes a value: KS and Wasserstein are
 * exact, so the values themselves are kept, never row objects), the counts per category of a categorical one. Errors
 * name the file, the column and the line, never a cell's content: the file may not be the dataset the user meant.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { describeHeader, detectFormat, type DatasetFormat } from '../../evaluate/dataset';
import { CsvFormatError, scanCsv } from './csv-scan';

export type ColumnType = 'numerical' | 'categorical';

/** Bad input: a file that cannot be read, a missing column, a value that does not fit its column. */
export class DriftDataError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DriftDataError';
  }
}

export interface NumericalColumn {
  type: 'numerical';
  values: Float64Array;
  length: number;
}

export interface CategoricalColumn {
  type: 'categorical';
  counts: Map<string, number>;
  length: number;
}

export type ColumnData = NumericalColumn | CategoricalColumn;

export interface ReadRequest {
  /** The columns to read; undefined: every column of the file (the CSV header, or the first JSON object's keys). */
  columns?: readonly string[];
  /** Fixed column types; a column not named here is numerical when its first present value is a number. */
  types: Map<string, ColumnType>;
  /** The file's part in messages: `--reference` or `--current`. */
  role: string;
  /** The file's format when its name does not tell (a blob of the artifact store); by extension otherwise. */
  format?: DatasetFormat;
  /** How messages name the file when its path must not show (a blob of the artifact store); its path otherwise. */
  name?: string;
}

/** Cells pandas reads as missing: skipped, as Evidently drops them before testing. */
const MISSING = new Set(['', 'NA', 'N/A', 'NaN', 'nan', 'null', 'NULL', 'None']);

/** Why a value cannot join its column: an array or object, or a non-number in a numerical column. */
export type ValueProblem = 'not-scalar' | 'not-a-number';

/**
 * Collects values column by column into what the statistics need. A numerical column grows its Float64Array by half
 * again (not double) when full: the slack at the end is at most a third of what it holds, not a half, and finish()
 * trims it in place of a copy when little is left over. `mrel drift` and the drift provider both read through this.
 */
export class ColumnCollector {
  private readonly columns = new Map<string, ColumnData>();

  /** `types` fixes column types; a column not in it is typed by its first present value, written back into it. */
  constructor(private readonly types: Map<string, ColumnType>) {}

  /** Adds one cell (missing values are skipped); a value that does not fit is not added and its problem returned. */
  add(name: string, raw: unknown): ValueProblem | undefined {
    if (raw === undefined || raw === null) return undefined;
    const text = typeof raw === 'string' ? raw.trim() : raw;
    if (typeof text === 'string' && MISSING.has(text)) return undefined;
    if (typeof text === 'object') return 'not-scalar';
    let type = this.types.get(name);
    const number = typeof text === 'number' ? text : typeof text === 'string' ? Number(text) : Number.NaN;
    if (type === undefined) {
      type = Number.isFinite(number) ? 'numerical' : 'categorical';
      this.types.set(name, type);
    }
    let column = this.columns.get(name);
    if (!column) {
      column =
        type === 'numerical'
          ? { type, values: new Float64Array(1024), length: 0 }
          : { type, counts: new Map(), length: 0 };
      this.columns.set(name, column);
    }
    if (column.type === 'numerical') {
      if (!Number.isFinite(number) || typeof text === 'boolean') return 'not-a-number';
      if (column.length === column.values.length) {
        const grown = new Float64Array(Math.ceil(column.values.length * 1.5));
        grown.set(column.values);
        column.values = grown;
      }
      column.values[column.length++] = number;
    } else {
      const key = String(text);
      column.counts.set(key, (column.counts.get(key) ?? 0) + 1);
      column.length++;
    }
    return undefined;
  }

  /** Whether `raw` would be added to `name` without a problem (nothing is added). */
  accepts(name: string, raw: unknown): boolean {
    if (raw === undefined || raw === null) return true;
    const text = typeof raw === 'string' ? raw.trim() : raw;
    if (typeof text === 'string' && MISSING.has(text)) return true;
    if (typeof text === 'object') return false;
    if (this.types.get(name) !== 'numerical') return true;
    const number = typeof text === 'number' ? text : typeof text === 'string' ? Number(text) : Number.NaN;
    return Number.isFinite(number) && typeof text !== 'boolean';
  }

  /** How many values `name` holds so far. */
  count(name: string): number {
    return this.columns.get(name)?.length ?? 0;
  }

  /** The columns in `names` order; a column without a single value is refused (`where` names the data). */
  finish(names: readonly string[], where: string): Map<string, ColumnData> {
    for (const name of names) {
      const column = this.columns.get(name);
      if (!column || column.length === 0) {
        throw new DriftDataError(`${where}: column ${name} has no values (every row is empty or missing there)`);
      }
      if (column.type === 'numerical' && column.values.length !== column.length) {
        // A view keeps the whole buffer alive: worth it only while the slack is small.
        column.values =
          column.values.length - column.length <= column.length / 8
            ? column.values.subarray(0, column.length)
            : column.values.slice(0, column.length);
      }
    }
    return new Map(names.map((name) => [name, this.columns.get(name)!]));
  }
}

/** Reads the columns of one file. The types it settled on are written back into `request.types`. */
export async function readColumns(path: string, request: ReadRequest): Promise<Map<string, ColumnData>> {
  const where = `${request.role} ${request.name ?? path}`;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new Error('not a regular file');
  } catch (err) {
    // The error's own message holds the path, which a named file keeps to itself.
    const why =
      request.name === undefined ? (err as Error).message : ((err as NodeJS.ErrnoException).code ?? 'unreadable');
    throw new DriftDataError(`${where} cannot be read: ${why}; give a CSV or JSON Lines file`, { cause: err });
  }
  const collector = new ColumnCollector(request.types);
  let names: string[] | undefined;
  // A JSON object may leave out a key whose value is missing: there only a column without any value is refused.
  const start = (available: readonly string[], checked = true): string[] => {
    const wanted = request.columns ?? available;
    const missing = checked ? wanted.filter((c) => !available.includes(c)) : [];
    if (missing.length > 0) {
      throw new DriftDataError(
        `${where}: column ${missing.join(', ')} not found (${describeHeader(available)}); check --columns or the file`,
      );
    }
    if (wanted.length === 0) throw new DriftDataError(`${where}: no columns to compare`);
    names = [...wanted];
    return names;
  };
  const add = (name: string, raw: unknown, line: number): void => {
    const problem = collector.add(name, raw);
    if (problem === 'not-scalar') {
      throw new DriftDataError(`${where} line ${line}: column ${name} holds an array or object; give a scalar value`);
    }
    if (problem === 'not-a-number') {
      throw new DriftDataError(
        `${where} line ${line}: column ${name} is numerical but this value is not a number; ` +
          `fix the value or pass --categorical ${name}`,
      );
    }
  };

  const input = createReadStream(path, { highWaterMark: 1 << 20 });
  try {
    if ((request.format ?? detectFormat(path)) === 'jsonl') {
      const lines = createInterface({ input, crlfDelay: Infinity });
      let line = 0;
      for await (const text of lines) {
        line++;
        if (text.trim() === '') continue;
        let record: unknown;
        try {
          record = JSON.parse(text);
        } catch {
          throw new DriftDataError(`${where} line ${line}: not valid JSON; each line must be one JSON object`);
        }
        if (typeof record !== 'object' || record === null || Array.isArray(record)) {
          throw new DriftDataError(`${where} line ${line}: each line must be a JSON object of column → value`);
        }
        const row = record as Record<string, unknown>;
        const wanted = names ?? start(Object.keys(row), request.columns === undefined);
        for (const name of wanted) add(name, row[name], line);
      }
    } else {
      input.setEncoding('utf8');
      let indexes: number[] = [];
      try {
        await scanCsv(input as AsyncIterable<string>, {
          header: (fields) => {
            const header = fields.map((c) => c.trim());
            indexes = start(header).map((c) => header.indexOf(c));
            return indexes;
          },
          record: (fields, line) => {
            for (let k = 0; k < indexes.length; k++) add(names![k]!, fields[indexes[k]!], line);
          },
        });
      } catch (err) {
        if (err instanceof DriftDataError) throw err;
        if (err instanceof CsvFormatError) {
          throw new DriftDataError(`${where} line ${err.lines}: malformed CSV (${err.code})`);
        }
        throw err;
      }
    }
  } finally {
    input.destroy();
  }
  if (!names) throw new DriftDataError(`${where} has no header and no rows`);
  return collector.finish(names, where);
}
