/**
 * Turns a streamed dataset into the typed arrays the gates compute on: the model's input matrix (preprocessed as
 * the model expects), the labels, and the protected attributes as group codes. Every bad value is an error naming
 * its column and row, never the value itself: messages reach release statuses, and cells can hold anything.
 */
import { dataError } from './errors';
import { readDataset, valueKey, type DatasetInfo, type ReadOptions } from './dataset';
import { inputColumns, type InputColumn, type ModelSpec } from './spec';

/** A protected attribute (or an intersection of several): one code per row, indexing `values`. */
export interface GroupColumn {
  name: string;
  values: string[];
  codes: Int32Array;
}

export interface EvaluationTable {
  rows: number;
  columns: InputColumn[];
  /** Row-major rows × columns.length, in the model's input space. */
  x: Float32Array;
  /** Index into spec.classes of each row's true label. */
  labels: Uint8Array;
  groups: GroupColumn[];
  /** Smallest and largest value of each input column over the data: attacks stay inside. */
  lower: Float32Array;
  upper: Float32Array;
  dataset: DatasetInfo;
}

export interface PredictionTable {
  rows: number;
  /** 1 where the label is the favorable one. */
  yTrue: Uint8Array;
  /** 1 where the prediction is the favorable one. */
  yPred: Uint8Array;
  groups: GroupColumn[];
  dataset: DatasetInfo;
}

export interface LoadOptions extends ReadOptions {
  /** Called after each batch with the rows read so far. */
  onProgress?: (rowsRead: number) => void;
}

class Growable<T extends Float32Array | Uint8Array | Int32Array> {
  length = 0;
  constructor(
    private data: T,
    private readonly make: (n: number) => T,
  ) {}
  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = this.make(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }
  result(): T {
    return this.data.subarray(0, this.length) as T;
  }
}

class GroupCoder {
  readonly values: string[] = [];
  private readonly index = new Map<string, number>();
  readonly codes = new Growable(new Int32Array(1024), (n) => new Int32Array(n));
  constructor(readonly name: string) {}
  add(value: string, row: number): void {
    if (value === '') throw dataError(this.name, row, 'empty value in a protected attribute');
    const key = valueKey(value);
    let code = this.index.get(key);
    if (code === undefined) {
      code = this.values.length;
      this.values.push(key);
      this.index.set(key, code);
    }
    this.codes.push(code);
  }
  column(): GroupColumn {
    return { name: this.name, values: this.values, codes: this.codes.result() };
  }
}

/** Reads a dataset for a model: features (preprocessed), labels, protected attributes. */
export async function loadEvaluationTable(
  path: string,
  spec: ModelSpec,
  protectedAttributes: readonly string[],
  options: LoadOptions = {},
): Promise<EvaluationTable> {
  const columns = inputColumns(spec, protectedAttributes);
  const wanted = unique([...spec.features.map((f) => f.name), spec.label, ...protectedAttributes]);
  const at = (name: string): number => wanted.indexOf(name);
  const width = columns.length;
  const x = new Growable(new Float32Array(1024 * width), (n) => new Float32Array(n));
  const labels = new Growable(new Uint8Array(1024), (n) => new Uint8Array(n));
  const coders = protectedAttributes.map((name) => new GroupCoder(name));
  const encoders = spec.features.map((f) => {
    const j = at(f.name);
    if (f.type === 'categorical' && f.categories) {
      const keys = f.categories.map((c) => valueKey(c));
      return (row: string[], rowNo: number) => {
        const key = valueKey(row[j]!);
        const hit = keys.indexOf(key);
        if (hit === -1) {
          throw dataError(f.name, rowNo, `the value is not a known category (known: ${keys.join(', ')})`);
        }
        for (let k = 0; k < keys.length; k++) x.push(k === hit ? 1 : 0);
      };
    }
    return (row: string[], rowNo: number) => {
      const text = row[j]!;
      const value = text === '' ? Number.NaN : Number(text);
      if (!Number.isFinite(value)) {
        throw dataError(f.name, rowNo, text === '' ? 'missing value' : 'the value is not a number');
      }
      x.push(f.type === 'continuous' ? (value - f.mean) / f.std : value);
    };
  });
  const labelAt = at(spec.label);
  const protectedAt = protectedAttributes.map(at);
  const reader = readDataset(path, wanted, options);
  for await (const batch of reader.batches) {
    for (let i = 0; i < batch.rows.length; i++) {
      const row = batch.rows[i]!;
      const rowNo = batch.firstRow + i;
      for (const encode of encoders) encode(row, rowNo);
      const label = valueKey(row[labelAt]!);
      const cls = spec.classes.indexOf(label);
      if (cls === -1) {
        throw dataError(spec.label, rowNo, `the label is not one of the model's classes (${spec.classes.join(', ')})`);
      }
      labels.push(cls);
      coders.forEach((coder, k) => coder.add(row[protectedAt[k]!]!, rowNo));
    }
    options.onProgress?.(labels.length);
  }
  const rows = labels.length;
  const matrix = x.result();
  const lower = new Float32Array(width).fill(Infinity);
  const upper = new Float32Array(width).fill(-Infinity);
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    for (let c = 0; c < width; c++) {
      const v = matrix[o + c]!;
      if (v < lower[c]!) lower[c] = v;
      if (v > upper[c]!) upper[c] = v;
    }
  }
  return {
    rows,
    columns,
    x: matrix,
    labels: labels.result(),
    groups: coders.map((c) => c.column()),
    lower,
    upper,
    dataset: reader.info(),
  };
}

export interface PredictionColumns {
  label: string;
  prediction: string;
  /** Label value that is the favorable outcome (default "1"). */
  favorable: string | number;
  protected: readonly string[];
}

/** Reads labels, predictions and protected attributes (no model): the input of `mrel fairness`. */
export async function loadPredictionTable(
  path: string,
  spec: PredictionColumns,
  options: LoadOptions = {},
): Promise<PredictionTable> {
  const wanted = unique([spec.label, spec.prediction, ...spec.protected]);
  const favorable = valueKey(spec.favorable);
  const yTrue = new Growable(new Uint8Array(1024), (n) => new Uint8Array(n));
  const yPred = new Growable(new Uint8Array(1024), (n) => new Uint8Array(n));
  const coders = spec.protected.map((name) => new GroupCoder(name));
  // Binary outcomes only: a third distinct value in the label or prediction column is an error at its row.
  const seen = new Map<string, Set<string>>([
    [spec.label, new Set()],
    [spec.prediction, new Set()],
  ]);
  const check = (column: string, raw: string, rowNo: number): string => {
    if (raw === '') throw dataError(column, rowNo, 'missing value');
    const key = valueKey(raw);
    const values = seen.get(column)!;
    if (!values.has(key)) {
      if (values.size >= 2) {
        throw dataError(column, rowNo, 'the value is a third distinct outcome; binary outcomes only');
      }
      values.add(key);
    }
    return key;
  };
  const li = wanted.indexOf(spec.label);
  const pi = wanted.indexOf(spec.prediction);
  const gi = spec.protected.map((p) => wanted.indexOf(p));
  const reader = readDataset(path, wanted, options);
  for await (const batch of reader.batches) {
    for (let i = 0; i < batch.rows.length; i++) {
      const row = batch.rows[i]!;
      const rowNo = batch.firstRow + i;
      yTrue.push(check(spec.label, row[li]!, rowNo) === favorable ? 1 : 0);
      yPred.push(check(spec.prediction, row[pi]!, rowNo) === favorable ? 1 : 0);
      coders.forEach((coder, k) => coder.add(row[gi[k]!]!, rowNo));
    }
    options.onProgress?.(yTrue.length);
  }
  if (![...seen.values()].some((values) => values.has(favorable))) {
    const found = [...seen].map(([column, values]) => `${column}: ${values.size} distinct`).join('; ');
    throw dataError(
      undefined,
      undefined,
      `the favorable value "${favorable}" occurs in neither the label nor the prediction column (${found}); set --favorable`,
    );
  }
  return {
    rows: yTrue.length,
    yTrue: yTrue.result(),
    yPred: yPred.result(),
    groups: coders.map((c) => c.column()),
    dataset: reader.info(),
  };
}

/**
 * The groups of every combination of the given attributes that occurs in the data ("sex&race" with values such as
 * "female&b"), as Fairlearn's MetricFrame forms them from several sensitive features.
 */
export function intersect(columns: readonly GroupColumn[]): GroupColumn {
  const rows = columns[0]!.codes.length;
  const codes = new Int32Array(rows);
  const combos: number[][] = [];
  const index = new Map<number, number>();
  const strides = columns.map((_, k) => columns.slice(k + 1).reduce((s, c) => s * c.values.length, 1));
  for (let r = 0; r < rows; r++) {
    let combined = 0;
    for (let k = 0; k < columns.length; k++) combined += columns[k]!.codes[r]! * strides[k]!;
    let code = index.get(combined);
    if (code === undefined) {
      code = combos.length;
      combos.push(columns.map((c) => c.codes[r]!));
      index.set(combined, code);
    }
    codes[r] = code;
  }
  const values = combos.map((combo) => combo.map((code, k) => columns[k]!.values[code]).join('&'));
  return { name: columns.map((c) => c.name).join('&'), values, codes };
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}
