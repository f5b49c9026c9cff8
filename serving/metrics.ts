/**
 * The model server's Prometheus metrics, on a registry of its own. `model` and `version` are fixed per process, so
 * the policy's PromQL templates select a release with them. Group labels come from request data: each attribute keeps
 * at most MAX_GROUPS_PER_ATTRIBUTE values, later ones count as `other`, so a client cannot blow up the series count.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export const MAX_GROUPS_PER_ATTRIBUTE = 50;
const OTHER_GROUP = 'other';

export type Endpoint = 'infer' | 'feedback' | 'metadata' | 'model_ready' | 'live' | 'ready' | 'metrics' | 'other';

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly duration: Histogram<'model' | 'version' | 'endpoint' | 'code'>;
  private readonly requests: Counter<'model' | 'version' | 'endpoint' | 'code'>;
  private readonly errors: Counter<'model' | 'version' | 'endpoint' | 'reason'>;
  private readonly predictions: Counter<'model' | 'version' | 'class'>;
  private readonly groupPredictions: Counter<'model' | 'version' | 'attribute' | 'group' | 'class'>;
  readonly inflight: Gauge;
  readonly queued: Gauge;
  private readonly rejected: Counter<'reason'>;
  private readonly logDropped: Counter<'log'>;
  private readonly groupsSeen = new Map<string, Set<string>>();

  constructor(
    private readonly model: string,
    private readonly version: string,
    info: { manifestDigest: string; backend: string },
  ) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.duration = new Histogram({
      name: 'modelserver_request_duration_seconds',
      help: 'Time from a request received to its response sent, by endpoint and status code.',
      labelNames: ['model', 'version', 'endpoint', 'code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.requests = new Counter({
      name: 'modelserver_requests_total',
      help: 'Requests answered, by endpoint and status code.',
      labelNames: ['model', 'version', 'endpoint', 'code'],
      registers,
    });
    this.errors = new Counter({
      name: 'modelserver_request_errors_total',
      help: 'Requests answered with an error, by why.',
      labelNames: ['model', 'version', 'endpoint', 'reason'],
      registers,
    });
    this.predictions = new Counter({
      name: 'modelserver_predictions_total',
      help: 'Rows predicted, by predicted class.',
      labelNames: ['model', 'version', 'class'],
      registers,
    });
    this.groupPredictions = new Counter({
      name: 'modelserver_group_predictions_total',
      help: 'Rows predicted, by protected attribute, group and predicted class (requests that carried the group columns).',
      labelNames: ['model', 'version', 'attribute', 'group', 'class'],
      registers,
    });
    this.inflight = new Gauge({
      name: 'modelserver_inflight',
      help: 'Requests being read, predicted or answered now.',
      registers,
    });
    this.queued = new Gauge({
      name: 'modelserver_queued',
      help: 'Requests waiting for a place among those in flight.',
      registers,
    });
    this.rejected = new Counter({
      name: 'modelserver_rejected_total',
      help: 'Requests shed: queue_full (429), not_ready or shutting_down (503).',
      labelNames: ['reason'],
      registers,
    });
    this.logDropped = new Counter({
      name: 'modelserver_inference_log_dropped_total',
      help: 'Log records dropped because the disk was slower than the traffic or a write failed.',
      labelNames: ['log'],
      registers,
    });
    new Gauge({
      name: 'modelserver_model_info',
      help: 'The served model: 1, with its manifest digest and the tfjs backend.',
      labelNames: ['model', 'version', 'manifest_digest', 'backend'],
      registers,
    }).set({ model, version, manifest_digest: `sha256:${info.manifestDigest}`, backend: info.backend }, 1);
  }

  observeRequest(endpoint: Endpoint, code: number, seconds: number, reason?: string): void {
    const labels = { model: this.model, version: this.version, endpoint, code: String(code) };
    this.duration.observe(labels, seconds);
    this.requests.inc(labels);
    if (code >= 400) {
      this.errors.inc({ model: this.model, version: this.version, endpoint, reason: reason ?? `http_${code}` });
    }
  }

  reject(reason: 'queue_full' | 'not_ready' | 'shutting_down'): void {
    this.rejected.inc({ reason });
  }

  logDrop(log: string, records: number): void {
    this.logDropped.inc({ log }, records);
  }

  /** Counts a request's predictions, and by group for each group column it carried. */
  countPredictions(classes: readonly string[], decided: Uint8Array, groups: Record<string, string[]>): void {
    const perClass = [0, 0];
    for (const c of decided) perClass[c]!++;
    perClass.forEach((n, c) => {
      if (n > 0) this.predictions.inc({ model: this.model, version: this.version, class: classes[c]! }, n);
    });
    for (const [attribute, values] of Object.entries(groups)) {
      const counts = new Map<string, number>();
      for (let r = 0; r < decided.length; r++) {
        const key = `${this.groupLabel(attribute, values[r]!)}\0${decided[r]}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (const [key, n] of counts) {
        const [group, c] = key.split('\0') as [string, string];
        this.groupPredictions.inc(
          { model: this.model, version: this.version, attribute, group, class: classes[Number(c)]! },
          n,
        );
      }
    }
  }

  private groupLabel(attribute: string, raw: string): string {
    const value = raw.slice(0, 64);
    let seen = this.groupsSeen.get(attribute);
    if (!seen) this.groupsSeen.set(attribute, (seen = new Set()));
    if (seen.has(value)) return value;
    if (seen.size >= MAX_GROUPS_PER_ATTRIBUTE) return OTHER_GROUP;
    seen.add(value);
    return value;
  }
}
