/**
 * The Prometheus provider: Argo Rollouts' `prometheus` metric. The query's `{{args.<name>}}` placeholders are filled
 * from the metric's args and the release's labels, then one instant query (GET /api/v1/query) gives the result as
 * Argo's provider does: a scalar is a number, an instant vector a list of numbers (sorted by their labels, so the
 * order is the same on every measurement), an empty vector `[]`.
 */

/** `{{args.name}}`, spaces allowed inside the braces as Argo allows them. */
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;
const ARG_REF = /^args\.([A-Za-z_][A-Za-z0-9_-]*)$/;

/** Largest answer read: a vector this large is a query that forgot to aggregate. */
export const MAX_ANSWER_BYTES = 1024 * 1024;
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

/** A query the provider could not run or whose answer it cannot use; its message is safe to show. */
export class PrometheusQueryError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PrometheusQueryError';
  }
}

/** A value inside a PromQL double-quoted string: backslashes, quotes and control characters escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\u0000-\u001f\u007f]/g, (c) => {
    if (c === '\\') return '\\\\';
    if (c === '"') return '\\"';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** The arg names a text's placeholders use, and the placeholders that are not `{{args.<name>}}`. */
export function placeholdersOf(text: string): { args: string[]; invalid: string[] } {
  const args: string[] = [];
  const invalid: string[] = [];
  for (const match of text.matchAll(PLACEHOLDER)) {
    const name = ARG_REF.exec(match[1] ?? '')?.[1];
    if (name === undefined) invalid.push(match[0].slice(0, 40));
    else if (!args.includes(name)) args.push(name);
  }
  return { args, invalid };
}

/**
 * Fills `{{args.<name>}}` placeholders; `escape` transforms each value (label-string escaping for queries, none for
 * conditions). Throws naming the first arg that has no value.
 */
export function fillArgs(text: string, args: Readonly<Record<string, string>>, escape = escapeLabelValue): string {
  return text.replace(PLACEHOLDER, (whole, inner: string) => {
    const name = ARG_REF.exec(inner)?.[1];
    if (name === undefined) {
      throw new PrometheusQueryError(`the placeholder ${whole.slice(0, 40)} is not {{args.<name>}}`);
    }
    const value = Object.hasOwn(args, name) ? args[name] : undefined;
    if (value === undefined) {
      throw new PrometheusQueryError(`args.${name} has no value: add it under the metric's args`);
    }
    return escape(value);
  });
}

export interface InstantQuery {
  /** Prometheus' base URL (a path prefix allowed, as behind a proxy). */
  address: string;
  /** PromQL, placeholders already filled. */
  query: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

interface PromAnswer {
  status?: unknown;
  errorType?: unknown;
  error?: unknown;
  data?: { resultType?: unknown; result?: unknown };
}

/** Prometheus' sample value: a string, "NaN" and "±Inf" included. */
function sampleValue(raw: unknown): number {
  if (raw === '+Inf' || raw === 'Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (typeof raw !== 'string') return NaN;
  return Number(raw);
}

/** Prometheus' own error text, bounded; nothing else of an answer is ever quoted. */
function prometheusError(answer: PromAnswer | undefined): string {
  if (typeof answer?.error !== 'string') return '';
  const text = answer.error.length > 300 ? `${answer.error.slice(0, 300)}…` : answer.error;
  return `: ${typeof answer.errorType === 'string' ? `${answer.errorType.slice(0, 40)}: ` : ''}${text}`;
}

async function readBounded(response: Response, limit: number): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function reason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message.slice(0, 200);
  return String((err as Error).message ?? err).slice(0, 200);
}

/**
 * Runs an instant query. Returns a number for a scalar, a list of numbers for a vector; throws PrometheusQueryError
 * for everything else (unreachable, timed out, refused, a range vector), quoting only Prometheus' own error text.
 */
export async function queryPrometheus(q: InstantQuery): Promise<number | number[]> {
  const timeoutMs = q.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
  const url = new URL('api/v1/query', q.address.endsWith('/') ? q.address : `${q.address}/`);
  url.searchParams.set('query', q.query);
  // Prometheus stops evaluating at its own timeout; ours also covers the connection and the transfer.
  url.searchParams.set('timeout', `${Math.max(1, Math.floor(timeoutMs / 1000))}s`);
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = q.signal ? AbortSignal.any([q.signal, timeout]) : timeout;
  const where = `Prometheus at ${q.address}`;
  let response: Response;
  let text: string | undefined;
  try {
    response = await (q.fetch ?? fetch)(url, { headers: { accept: 'application/json' }, signal });
    text = await readBounded(response, MAX_ANSWER_BYTES);
  } catch (err) {
    if (q.signal?.aborted) throw err;
    if (timeout.aborted) throw new PrometheusQueryError(`${where} did not answer within ${timeoutMs} ms`);
    throw new PrometheusQueryError(`${where} cannot be reached (${reason(err)})`, { cause: err });
  }
  if (text === undefined) {
    throw new PrometheusQueryError(
      `${where} answered more than ${MAX_ANSWER_BYTES} bytes; aggregate the query (e.g. sum by (…)) to fewer series`,
    );
  }
  let answer: PromAnswer | undefined;
  try {
    answer = JSON.parse(text) as PromAnswer;
  } catch {
    answer = undefined;
  }
  if (answer === undefined || typeof answer !== 'object' || answer === null) {
    throw new PrometheusQueryError(`${where} answered ${response.status}, not with Prometheus' query API`);
  }
  if (!response.ok || answer.status !== 'success') {
    throw new PrometheusQueryError(`${where} refused the query (${response.status})${prometheusError(answer)}`);
  }
  const type = answer.data?.resultType;
  const result = answer.data?.result;
  if (type === 'scalar' && Array.isArray(result)) return sampleValue(result[1]);
  if (type === 'vector' && Array.isArray(result)) {
    const samples = (result as { metric?: unknown; value?: unknown }[]).map((sample) => ({
      key: labelKey(sample.metric),
      value: sampleValue(Array.isArray(sample.value) ? sample.value[1] : undefined),
    }));
    samples.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return samples.map((s) => s.value);
  }
  throw new PrometheusQueryError(
    `${where} answered a ${typeof type === 'string' ? type.slice(0, 20) : 'result'} where a scalar or an instant vector was expected; ` +
      'use an instant query (wrap a range in rate(), avg_over_time() or similar)',
  );
}

/** The sort key of a series: its labels, by name. */
function labelKey(metric: unknown): string {
  if (metric === null || typeof metric !== 'object') return '';
  return JSON.stringify(
    Object.entries(metric as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
}
