/**
 * The KServe v2 Open Inference Protocol's request bodies, checked field by field. Every problem names the field
 * (`inputs[2].shape: …`) and never repeats a value the client sent: request data can be personal, and error
 * bodies end up in client logs.
 */

export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
] as const;
export type Datatype = (typeof DATATYPES)[number];

export const OUTPUT_NAMES = ['predictions', 'scores'] as const;
export type OutputName = (typeof OUTPUT_NAMES)[number];

/** Ids longer than this are refused: they are stored with every log line and in the recent-request map. */
export const MAX_ID_LENGTH = 256;
const MAX_INPUTS = 1024;
const MAX_NAME_LENGTH = 256;

export class RequestError extends Error {
  override readonly name = 'RequestError';
}

export interface InputTensor {
  name: string;
  shape: number[];
  datatype: Datatype;
  /** Flattened, row-major. */
  data: unknown[];
}

export interface InferRequest {
  id?: string;
  inputs: InputTensor[];
  outputs?: OutputName[];
}

export interface FeedbackRequest {
  id: string;
  labels: (string | number | boolean)[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The JSON body, or a RequestError that says only that it is not JSON (JSON.parse quotes the text it failed on). */
export function parseJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new RequestError('body: not valid JSON');
  }
}

function checkId(value: unknown, field: string, required: boolean): string | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || value === '') throw new RequestError(`${field}: give a non-empty string`);
  if (value.length > MAX_ID_LENGTH) throw new RequestError(`${field}: longer than ${MAX_ID_LENGTH} characters`);
  return value;
}

/** Checks an infer request's structure: names, shapes, datatypes, and that each tensor's data fits its shape. */
export function parseInferRequest(body: unknown, maxElements: number): InferRequest {
  if (!isObject(body)) throw new RequestError('body: must be a JSON object with "inputs"');
  const id = checkId(body.id, 'id', false);
  if (!Array.isArray(body.inputs) || body.inputs.length === 0) {
    throw new RequestError('inputs: give a non-empty array of tensors {name, shape, datatype, data}');
  }
  if (body.inputs.length > MAX_INPUTS) throw new RequestError(`inputs: at most ${MAX_INPUTS} tensors`);
  const names = new Set<string>();
  let elements = 0;
  const inputs = body.inputs.map((raw: unknown, i: number): InputTensor => {
    const field = `inputs[${i}]`;
    if (!isObject(raw)) throw new RequestError(`${field}: must be an object {name, shape, datatype, data}`);
    if (typeof raw.name !== 'string' || raw.name === '' || raw.name.length > MAX_NAME_LENGTH) {
      throw new RequestError(`${field}.name: give a non-empty string of at most ${MAX_NAME_LENGTH} characters`);
    }
    if (names.has(raw.name)) throw new RequestError(`${field}.name: another input has the same name`);
    names.add(raw.name);
    if (!Array.isArray(raw.shape) || raw.shape.length === 0 || raw.shape.length > 8) {
      throw new RequestError(`${field}.shape: give an array of 1 to 8 dimensions`);
    }
    const shape = raw.shape as unknown[];
    if (!shape.every((d): d is number => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new RequestError(`${field}.shape: every dimension must be a whole number ≥ 0`);
    }
    if (typeof raw.datatype !== 'string' || !(DATATYPES as readonly string[]).includes(raw.datatype)) {
      throw new RequestError(`${field}.datatype: must be one of ${DATATYPES.join(', ')}`);
    }
    const datatype = raw.datatype as Datatype;
    const size = shape.reduce((a, b) => a * b, 1);
    elements += size;
    if (size > maxElements || elements > maxElements) {
      throw new RequestError(`${field}.shape: more than ${maxElements} elements in the request`);
    }
    if (!Array.isArray(raw.data)) throw new RequestError(`${field}.data: give an array`);
    const data = flatten(raw.data, size, `${field}.data`);
    if (data.length !== size) {
      throw new RequestError(`${field}.data: ${data.length} values for shape [${shape.join(', ')}] (${size})`);
    }
    checkValues(data, datatype, `${field}.data`);
    return { name: raw.name, shape, datatype, data };
  });
  let outputs: OutputName[] | undefined;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs)) throw new RequestError('outputs: give an array of {name}');
    outputs = body.outputs.map((o: unknown, i: number) => {
      const name = isObject(o) ? o.name : undefined;
      if (typeof name !== 'string' || !(OUTPUT_NAMES as readonly string[]).includes(name)) {
        throw new RequestError(`outputs[${i}].name: must be one of ${OUTPUT_NAMES.join(', ')}`);
      }
      return name as OutputName;
    });
  }
  if (body.parameters !== undefined && !isObject(body.parameters)) {
    throw new RequestError('parameters: must be an object');
  }
  return { ...(id === undefined ? {} : { id }), inputs, ...(outputs ? { outputs } : {}) };
}

/** Row-major values of a flat or nested array; stops early past `limit` (the caller then reports the count). */
function flatten(data: unknown[], limit: number, field: string): unknown[] {
  if (!data.some(Array.isArray)) return data;
  const out: unknown[] = [];
  const walk = (items: unknown[], depth: number): void => {
    if (depth > 8) throw new RequestError(`${field}: nested deeper than the shape allows`);
    for (const item of items) {
      if (out.length > limit) return;
      if (Array.isArray(item)) walk(item, depth + 1);
      else out.push(item);
    }
  };
  walk(data, 1);
  return out;
}

function checkValues(data: unknown[], datatype: Datatype, field: string): void {
  let ok: (v: unknown) => boolean;
  let expected: string;
  if (datatype === 'BYTES') {
    ok = (v) => typeof v === 'string';
    expected = 'a string';
  } else if (datatype === 'BOOL') {
    ok = (v) => typeof v === 'boolean';
    expected = 'true or false';
  } else if (datatype.startsWith('FP')) {
    ok = (v) => typeof v === 'number' && Number.isFinite(v);
    expected = 'a finite number';
  } else {
    const unsigned = datatype.startsWith('U');
    ok = (v) => typeof v === 'number' && Number.isInteger(v) && (!unsigned || v >= 0);
    expected = unsigned ? 'a whole number ≥ 0' : 'a whole number';
  }
  for (let i = 0; i < data.length; i++) {
    if (!ok(data[i])) throw new RequestError(`${field}[${i}]: must be ${expected} for datatype ${datatype}`);
  }
}

/** Checks a feedback post: the request id and one true label per row. */
export function parseFeedbackRequest(body: unknown, maxLabels: number): FeedbackRequest {
  if (!isObject(body)) throw new RequestError('body: must be a JSON object {id, labels}');
  const id = checkId(body.id, 'id', true)!;
  if (!Array.isArray(body.labels) || body.labels.length === 0) {
    throw new RequestError('labels: give a non-empty array with one true label per row of the request');
  }
  if (body.labels.length > maxLabels) throw new RequestError(`labels: at most ${maxLabels} labels`);
  body.labels.forEach((label: unknown, i: number) => {
    const ok =
      typeof label === 'boolean' ||
      (typeof label === 'number' && Number.isFinite(label)) ||
      (typeof label === 'string' && label !== '' && label.length <= MAX_NAME_LENGTH);
    if (!ok) throw new RequestError(`labels[${i}]: must be a number, a non-empty string or a boolean`);
  });
  return { id, labels: body.labels as FeedbackRequest['labels'] };
}
