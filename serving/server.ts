/**
 * The model server: the KServe v2 Open Inference Protocol over node:http, Prometheus metrics, and the inference and
 * feedback logs. It listens at once (liveness answers while the model loads) and turns ready when the verified model
 * is loaded; SIGTERM turns it unready, drains what was admitted, flushes the logs and closes.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { initBackend, parseBackendPreference } from '../activities/evaluate/backend';
import { valueKey } from '../activities/evaluate/dataset';
import { Admission } from './admission';
import { Batcher } from './batcher';
import { InferenceLog } from './inference-log';
import { ServerMetrics, type Endpoint } from './metrics';
import { readVerifiedModel } from './model-files';
import type { ServerOptions } from './options';
import { decide, decodeMatrix, encodeTabular, loadPredictor, ValueError, type Predictor } from './predictor';
import {
  DATATYPES,
  parseFeedbackRequest,
  parseInferRequest,
  parseJsonBody,
  RequestError,
  type InferRequest,
  type InputTensor,
} from './protocol';

/** Requests remembered for feedback's row-count check. */
const RECENT_REQUESTS = 100_000;
/** A body declared or sent above the limit is drained up to this many times the limit, so the client reads the 413. */
const DRAIN_FACTOR = 4;
const NUMERIC = new Set<string>(DATATYPES.filter((t) => t !== 'BOOL' && t !== 'BYTES'));

export interface ServerLog {
  info(message: string): void;
  error(message: string): void;
}

interface Loaded {
  name: string;
  version: string;
  manifestDigest: string;
  backend: string;
  predictor: Predictor;
  batcher: Batcher;
  metrics: ServerMetrics;
  predictionsDatatype: 'INT64' | 'FP64' | 'BYTES';
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** What a request carried, ready for the model and the log. */
interface Prepared {
  rows: number;
  x: Float32Array;
  inputs: Record<string, unknown[]>;
  groups: Record<string, string[]>;
}

export class ModelServer {
  private readonly http: Server;
  private loaded: Loaded | undefined;
  private draining = false;
  private readonly admission: Admission;
  private inferenceLog: InferenceLog | undefined;
  private feedbackLog: InferenceLog | undefined;
  private readonly recent = new Map<string, number>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly options: ServerOptions,
    private readonly log: ServerLog,
  ) {
    this.admission = new Admission(options.maxInflight, options.maxQueue, (inflight, queued) => {
      this.loaded?.metrics.inflight.set(inflight);
      this.loaded?.metrics.queued.set(queued);
    });
    this.http = createServer({ requestTimeout: 30_000, headersTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) =>
      this.handle(req, res),
    );
  }

  /** Listens, then verifies and loads the model; resolves when ready. Throws (and closes) when the model is refused. */
  async start(onListening?: (address: AddressInfo) => void): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.options.port, this.options.host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    onListening?.(this.address());
    try {
      await this.load();
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  address(): AddressInfo {
    return this.http.address() as AddressInfo;
  }

  get ready(): boolean {
    return this.loaded !== undefined && !this.draining;
  }

  get info(): { name: string; version: string; manifestDigest: string; backend: string } | undefined {
    const l = this.loaded;
    return l && { name: l.name, version: l.version, manifestDigest: l.manifestDigest, backend: l.backend };
  }

  private async load(): Promise<void> {
    const verified = await readVerifiedModel(this.options);
    const backend = await initBackend(parseBackendPreference(this.options.backend));
    const predictor = await loadPredictor(verified);
    const name = this.options.modelName ?? verified.manifest?.model ?? 'model';
    const version = this.options.modelVersion ?? verified.manifest?.version ?? 'unversioned';
    if (predictor.featuresProblem) {
      this.log.info(
        `the tabular form is off (${predictor.featuresProblem}); serving the [n, ${predictor.inputDim}] form`,
      );
    }
    const metrics = new ServerMetrics(name, version, {
      manifestDigest: verified.manifestDigest,
      backend: backend.name,
    });
    if (this.options.inferenceLogDir !== undefined) {
      const common = {
        dir: this.options.inferenceLogDir,
        flushRecords: this.options.logFlushRecords,
        flushMs: this.options.logFlushMs,
        maxBufferBytes: this.options.logBufferBytes,
        rotateBytes: this.options.logRotateBytes,
        startedAtMs: Date.now(),
        onError: (err: Error) => this.log.error(err.message),
      };
      this.inferenceLog = await InferenceLog.open({
        ...common,
        prefix: 'inference',
        onDrop: (n) => metrics.logDrop('inference', n),
      });
      this.feedbackLog = await InferenceLog.open({
        ...common,
        prefix: 'feedback',
        onDrop: (n) => metrics.logDrop('feedback', n),
      });
    }
    const [c0, c1] = predictor.classValues;
    const predictionsDatatype =
      typeof c0 === 'number' && typeof c1 === 'number'
        ? Number.isInteger(c0) && Number.isInteger(c1)
          ? 'INT64'
          : 'FP64'
        : 'BYTES';
    this.loaded = {
      name,
      version,
      manifestDigest: verified.manifestDigest,
      backend: backend.name,
      predictor,
      batcher: new Batcher(predictor.inputDim, this.options.maxModelBatchRows, (x, rows) => predictor.predict(x, rows)),
      metrics,
      predictionsDatatype,
    };
  }

  /**
   * Stops taking requests (readiness and new requests answer 503), waits for those admitted up to the shutdown
   * timeout, flushes the logs and closes. Idempotent.
   */
  shutdown(): Promise<void> {
    this.closing ??= (async () => {
      this.draining = true;
      const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
      this.http.closeIdleConnections();
      const deadline = sleep(this.options.shutdownTimeoutMs, undefined, { ref: false });
      await Promise.race([this.admission.idle(), deadline]);
      await this.inferenceLog?.close();
      await this.feedbackLog?.close();
      this.http.closeAllConnections();
      await closed;
      this.loaded?.predictor.dispose();
    })();
    return this.closing;
  }

  /** Closes at once (a failed start); the logs are flushed. */
  async close(): Promise<void> {
    this.draining = true;
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    await this.inferenceLog?.close();
    await this.feedbackLog?.close();
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    let endpoint: Endpoint = 'other';
    const done = (status: number, body: unknown, reason?: string, headers: Record<string, string> = {}): void => {
      const text = typeof body === 'string' ? body : JSON.stringify(body);
      const head: Record<string, string | number> = {
        'content-type': typeof body === 'string' ? 'text/plain; version=0.0.4; charset=utf-8' : 'application/json',
        'content-length': Buffer.byteLength(text),
        ...headers,
      };
      if (this.draining) head.connection = 'close';
      if (!res.headersSent) res.writeHead(status, head).end(text);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.loaded?.metrics.observeRequest(endpoint, status, seconds, reason);
    };
    const fail = (err: unknown): void => {
      if (err instanceof HttpError) return done(err.status, { error: err.message }, err.reason, err.headers);
      if (err instanceof RequestError) return done(400, { error: err.message }, 'bad_request');
      this.log.error(`${req.method} ${endpoint}: ${(err as Error).stack ?? String(err)}`);
      done(500, { error: 'internal error: the server could not answer; see its log' }, 'internal');
    };
    try {
      const path = (req.url ?? '/').split('?')[0]!;
      const method = req.method ?? 'GET';
      if (path === '/v2/health/live') {
        endpoint = 'live';
        this.only(method, 'GET');
        return done(200, { live: true });
      }
      if (path === '/v2/health/ready') {
        endpoint = 'ready';
        this.only(method, 'GET');
        return this.ready ? done(200, { ready: true }) : done(503, { ready: false }, this.notReadyReason());
      }
      const loaded = this.loaded;
      if (!loaded) throw this.unavailable('not_ready');
      if (path === '/metrics') {
        endpoint = 'metrics';
        this.only(method, 'GET');
        void loaded.metrics.registry.metrics().then(
          (text) => done(200, text),
          (err: unknown) => fail(err),
        );
        return;
      }
      if (path === '/v2' || path === '/v2/') {
        endpoint = 'metadata';
        this.only(method, 'GET');
        return done(200, { name: 'modelrelease-serving', version: '1', extensions: [] });
      }
      const match = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer|\/feedback)?$/.exec(path);
      if (!match) throw new HttpError(404, 'not found: see /v2/models/<name> (KServe v2 protocol)', 'not_found');
      const action = match[3] ?? '';
      endpoint = action === '' ? 'metadata' : (action.slice(1) as Endpoint);
      if (endpoint === 'ready') endpoint = 'model_ready';
      let name: string;
      let version: string | undefined;
      try {
        name = decodeURIComponent(match[1]!);
        version = match[2] === undefined ? undefined : decodeURIComponent(match[2]);
      } catch {
        throw new HttpError(404, 'not found: the model name in the path is not valid percent-encoding', 'not_found');
      }
      if (name !== loaded.name || (version !== undefined && version !== loaded.version)) {
        throw new HttpError(
          404,
          `model not found: this server serves "${loaded.name}" version "${loaded.version}"`,
          'model_not_found',
        );
      }
      if (action === '') {
        this.only(method, 'GET');
        return done(200, this.metadata(loaded));
      }
      if (action === '/ready') {
        this.only(method, 'GET');
        return done(this.ready ? 200 : 503, { name: loaded.name, ready: this.ready });
      }
      this.only(method, 'POST');
      void this.admitted(req, loaded, action === '/infer' ? 'infer' : 'feedback').then(
        (result) => done(result.status, result.body),
        fail,
      );
    } catch (err) {
      fail(err);
    }
  }

  private only(method: string, allowed: 'GET' | 'POST'): void {
    if (method !== allowed && !(allowed === 'GET' && method === 'HEAD')) {
      throw new HttpError(405, `method not allowed: use ${allowed}`, 'method_not_allowed', { allow: allowed });
    }
  }

  private notReadyReason(): 'not_ready' | 'shutting_down' {
    return this.draining ? 'shutting_down' : 'not_ready';
  }

  private unavailable(reason: 'not_ready' | 'shutting_down'): HttpError {
    this.loaded?.metrics.reject(reason);
    const message =
      reason === 'shutting_down'
        ? 'the server is shutting down: retry on another replica'
        : 'the model is not loaded yet: retry shortly';
    return new HttpError(503, message, reason, { 'retry-after': '1' });
  }

  /** Runs an infer or feedback request inside the admission bounds. */
  private async admitted(
    req: IncomingMessage,
    loaded: Loaded,
    kind: 'infer' | 'feedback',
  ): Promise<{ status: number; body: unknown }> {
    if (this.draining) throw this.unavailable('shutting_down');
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > this.options.maxBodyBytes) {
      this.drain(req);
      throw this.tooLarge();
    }
    const place = this.admission.tryAcquire();
    if (!place) {
      loaded.metrics.reject('queue_full');
      this.drain(req);
      throw new HttpError(
        429,
        `too many requests: ${this.options.maxInflight} in flight and ${this.options.maxQueue} waiting; retry after a second`,
        'queue_full',
        { 'retry-after': '1' },
      );
    }
    const release = await place;
    try {
      const body = parseJsonBody(await this.readBody(req));
      return kind === 'infer' ? await this.infer(loaded, body) : this.feedback(loaded, body);
    } finally {
      release();
    }
  }

  private tooLarge(): HttpError {
    return new HttpError(
      413,
      `body: larger than the server's limit of ${this.options.maxBodyBytes} bytes; send fewer rows per request`,
      'too_large',
      { connection: 'close' },
    );
  }

  /** Discards a refused request's body (up to a bound), so its client reads the answer instead of a reset. */
  private drain(req: IncomingMessage): void {
    let seen = 0;
    req.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > this.options.maxBodyBytes * DRAIN_FACTOR) req.destroy();
    });
    req.resume();
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const onData = (chunk: Buffer): void => {
        size += chunk.length;
        if (size > this.options.maxBodyBytes) {
          req.off('data', onData);
          this.drain(req);
          reject(this.tooLarge());
          return;
        }
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => {
        if (size <= this.options.maxBodyBytes) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      });
      req.once('error', (err) => reject(new HttpError(400, `body: could not be read (${err.message})`, 'aborted')));
      req.once('close', () => {
        if (!req.complete) reject(new HttpError(400, 'body: the client closed the connection mid-request', 'aborted'));
      });
    });
  }

  private metadata(loaded: Loaded): unknown {
    const p = loaded.predictor;
    const matrix = { name: 'input', datatype: 'FP32', shape: [-1, p.inputDim] };
    const inputs = p.features
      ? p.features.map((f) => ({
          name: f.name,
          datatype: f.type === 'categorical' && f.categories ? 'BYTES' : 'FP32',
          shape: [-1],
        }))
      : [matrix];
    return {
      name: loaded.name,
      versions: [loaded.version],
      platform: 'tensorflowjs',
      inputs,
      outputs: [
        { name: 'predictions', datatype: loaded.predictionsDatatype, shape: [-1] },
        { name: 'scores', datatype: 'FP32', shape: [-1, 2] },
      ],
      parameters: {
        manifest_digest: `sha256:${loaded.manifestDigest}`,
        backend: loaded.backend,
        classes: p.classValues,
        threshold: p.threshold,
        // The preprocessed form, accepted alongside the tabular one; group columns ride as extra BYTES inputs.
        matrix_input: matrix,
        group_columns: this.options.groupColumns,
      },
    };
  }

  private async infer(loaded: Loaded, body: unknown): Promise<{ status: number; body: unknown }> {
    const request = parseInferRequest(body, this.options.maxBatchRows * Math.max(loaded.predictor.inputDim, 64));
    const prepared = this.prepare(loaded.predictor, request);
    const probabilities = await loaded.batcher.submit(prepared.x, prepared.rows);
    const decided = decide(probabilities, prepared.rows, loaded.predictor.threshold);
    const id = request.id ?? randomUUID();
    const classValues = loaded.predictor.classValues;
    const labels = Array.from(decided, (c) => classValues[c]!);
    loaded.metrics.countPredictions(loaded.predictor.classes, decided, prepared.groups);
    this.remember(id, prepared.rows);
    if (this.inferenceLog) {
      const scores: number[][] = new Array(prepared.rows);
      for (let r = 0; r < prepared.rows; r++) {
        scores[r] = [round6(probabilities[2 * r]!), round6(probabilities[2 * r + 1]!)];
      }
      this.inferenceLog.append({
        id,
        time: new Date().toISOString(),
        model: loaded.name,
        version: loaded.version,
        manifestDigest: `sha256:${loaded.manifestDigest}`,
        rows: prepared.rows,
        inputs: prepared.inputs,
        ...(Object.keys(prepared.groups).length > 0 ? { groups: prepared.groups } : {}),
        predictions: labels,
        scores,
      });
    }
    const wanted = request.outputs ?? ['predictions', 'scores'];
    const outputs = wanted.map((name) =>
      name === 'predictions'
        ? {
            name,
            datatype: loaded.predictionsDatatype,
            shape: [prepared.rows],
            data: loaded.predictionsDatatype === 'BYTES' ? labels.map(String) : labels,
          }
        : { name, datatype: 'FP32', shape: [prepared.rows, 2], data: Array.from(probabilities) },
    );
    return { status: 200, body: { model_name: loaded.name, model_version: loaded.version, id, outputs } };
  }

  /** The model's input matrix from the request's tensors: one per feature column, or one preprocessed matrix. */
  private prepare(predictor: Predictor, request: InferRequest): Prepared {
    const features = predictor.features;
    const featureNames = new Set(features?.map((f) => f.name) ?? []);
    const groupColumns = new Set(this.options.groupColumns);
    let rows: number | undefined;
    let rowsFrom = '';
    const setRows = (n: number, field: string): void => {
      if (rows === undefined) {
        rows = n;
        rowsFrom = field;
        if (n === 0) throw new RequestError(`${field}.shape: no rows`);
        if (n > this.options.maxBatchRows) {
          throw new RequestError(
            `${field}.shape: ${n} rows, more than the server's ${this.options.maxBatchRows} per request; split the batch`,
          );
        }
      } else if (n !== rows) {
        throw new RequestError(`${field}.shape: ${n} rows, but ${rowsFrom} has ${rows}`);
      }
    };
    const columns = new Map<string, unknown[]>();
    const groups: Record<string, string[]> = {};
    let matrix: { tensor: InputTensor; field: string } | undefined;
    request.inputs.forEach((tensor, i) => {
      const field = `inputs[${i}]`;
      const isFeature = featureNames.has(tensor.name);
      const isGroup = groupColumns.has(tensor.name);
      if (isFeature || isGroup) {
        if (tensor.shape.length > 2 || (tensor.shape.length === 2 && tensor.shape[1] !== 1)) {
          throw new RequestError(`${field}.shape: a column takes shape [n] (or [n, 1])`);
        }
        setRows(tensor.shape[0]!, field);
        const values = tensor.datatype === 'BOOL' ? tensor.data.map(String) : tensor.data;
        if (isFeature) columns.set(tensor.name, values);
        if (isGroup) groups[tensor.name] = values.map((v) => String(v));
        return;
      }
      const isMatrix =
        tensor.shape.length === 2 && tensor.shape[1] === predictor.inputDim && NUMERIC.has(tensor.datatype);
      if (!isMatrix) {
        const known = [
          ...(features ? [`a feature column (${[...featureNames].join(', ')})`] : []),
          ...(groupColumns.size > 0 ? [`a group column (${[...groupColumns].join(', ')})`] : []),
          `the [n, ${predictor.inputDim}] FP32 input matrix`,
        ];
        throw new RequestError(`${field}: neither ${known.join(', nor ')}`);
      }
      if (matrix) throw new RequestError(`${field}: a second input matrix (${matrix.field} is one); send one`);
      setRows(tensor.shape[0]!, field);
      matrix = { tensor, field };
    });
    const n = rows!;
    if (matrix) {
      if (columns.size > 0) {
        throw new RequestError(
          `${matrix.field}: send either one tensor per feature column or one input matrix, not both`,
        );
      }
      const x = Float32Array.from(matrix.tensor.data as number[]);
      const inputs = features
        ? decodeMatrix(features, predictor.inputDim, x, n)
        : { [matrix.tensor.name]: chunkRows(x, n, predictor.inputDim) };
      return { rows: n, x, inputs, groups };
    }
    if (!features) {
      throw new RequestError(
        `inputs: the model's metadata names no feature columns (${predictor.featuresProblem}); send one [n, ${predictor.inputDim}] FP32 matrix`,
      );
    }
    const missing = features.filter((f) => !columns.has(f.name)).map((f) => f.name);
    if (missing.length > 0) {
      throw new RequestError(
        `inputs: feature column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')} missing; send one tensor per feature (${[...featureNames].join(', ')}) or one [n, ${predictor.inputDim}] matrix`,
      );
    }
    let x: Float32Array;
    try {
      x = encodeTabular(features, predictor.inputDim, columns, n);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      const index = request.inputs.findIndex((t) => t.name === err.feature);
      throw new RequestError(`inputs[${index}].data[${err.row}]: ${err.message}`);
    }
    const inputs: Record<string, unknown[]> = {};
    for (const f of features) {
      const values = columns.get(f.name)!;
      inputs[f.name] =
        f.type === 'categorical' && f.categories
          ? values.map((v) => valueKey(v as string | number))
          : values.map((v) => (typeof v === 'number' ? v : Number(v)));
    }
    return { rows: n, x, inputs, groups };
  }

  private feedback(loaded: Loaded, body: unknown): { status: number; body: unknown } {
    const feedback = parseFeedbackRequest(body, this.options.maxBatchRows);
    const rows = this.recent.get(feedback.id);
    if (rows !== undefined && rows !== feedback.labels.length) {
      throw new RequestError(
        `labels: ${feedback.labels.length} labels, but the request with this id had ${rows} rows; send one label per row`,
      );
    }
    if (loaded.predictor.features) {
      const classes = loaded.predictor.classes;
      const bad = feedback.labels.findIndex((l) => !classes.includes(valueKey(typeof l === 'boolean' ? String(l) : l)));
      if (bad !== -1) {
        throw new RequestError(`labels[${bad}]: not one of the model's classes (${classes.join(', ')})`);
      }
    }
    this.feedbackLog?.append({ id: feedback.id, time: new Date().toISOString(), labels: feedback.labels });
    return { status: 202, body: { id: feedback.id, labels: feedback.labels.length, known: rows !== undefined } };
  }

  private remember(id: string, rows: number): void {
    this.recent.delete(id);
    this.recent.set(id, rows);
    if (this.recent.size > RECENT_REQUESTS) this.recent.delete(this.recent.keys().next().value!);
  }
}

function round6(v: number): number {
  return Math.round(v * 1e6) / 1e6;
}

function chunkRows(x: Float32Array, rows: number, width: number): number[][] {
  const out: number[][] = new Array(rows);
  for (let r = 0; r < rows; r++) out[r] = Array.from(x.subarray(r * width, (r + 1) * width));
  return out;
}
