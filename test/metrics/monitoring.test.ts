/**
 * The monitoring files the repository ships: Prometheus accepts the rules (promtool check rules), the alerts fire
 * for a stuck release, a gate that keeps erring, an unpolled queue and a worker that is down, and stay quiet
 * otherwise (promtool test rules, on series given in test/metrics/alerts-rules-test.yaml); the dashboard is a
 * Grafana dashboard whose every panel queries Prometheus.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadSettings, runtimeTelemetry } from '../../workers/settings';
import { ALERTS_FILE, dashboard, metricNames, panelsOf, rules } from './monitoring-files';

const run = promisify(execFile);
const RULE_TESTS = fileURLToPath(new URL('./alerts-rules-test.yaml', import.meta.url));

describe('deploy/monitoring', () => {
  it('promtool accepts the alert rules', async () => {
    const { stdout } = await run('promtool', ['check', 'rules', ALERTS_FILE]);
    const count = (await rules()).length;
    expect(stdout).toContain(`SUCCESS: ${count} rules found`);
  });

  it('the alerts fire on the series that call for them, and only those (promtool test rules)', async () => {
    const result = await run('promtool', ['test', 'rules', RULE_TESTS]).catch(
      (err: { stdout?: string; stderr?: string; code?: unknown; signal?: unknown }) => err,
    );
    const said = `exit ${String((result as { code?: unknown }).code ?? 0)} ${String((result as { signal?: unknown }).signal ?? '')}\n${result.stdout}\n${result.stderr}`;
    expect(result.stdout, said).toMatch(/SUCCESS/);
  });

  it('ships the alerts the engine needs', async () => {
    const alerts = (await rules()).flatMap((r) => (r.alert ? [r.alert] : []));
    expect(alerts).toEqual(
      expect.arrayContaining([
        'ModelReleaseStuckInStage',
        'ModelReleaseGateErrorRate',
        'ModelReleaseQueueNotPolled',
        'EvaluationQueueNotPolled',
      ]),
    );
  });

  it('the dashboard has panels for releases, stages, gates, approval and the workers, each with a query', async () => {
    const d = await dashboard();
    expect(d.uid).toBe('modelrelease-engine');
    const panels = panelsOf(d);
    for (const p of panels) expect(p.targets?.length, `panel ${p.title}`).toBeGreaterThan(0);
    const used = new Set(panels.flatMap((p) => (p.targets ?? []).flatMap((t) => metricNames(t.expr))));
    for (const name of [
      'modelrelease_releases_ended_total',
      'modelrelease_stage_duration_seconds_bucket',
      'modelrelease_gate_verdicts_total',
      'modelrelease_gate_duration_seconds_bucket',
      'modelrelease_approval_wait_seconds_bucket',
      'modelrelease_rollbacks_total',
      'temporal_worker_task_slots_used',
      'temporal_num_pollers',
      'temporal_workflow_task_schedule_to_start_latency_bucket',
    ]) {
      expect(used, name).toContain(name);
    }
  });
});

describe('MREL_METRICS_ADDRESS', () => {
  it('unset or empty: no metrics endpoint', () => {
    expect(runtimeTelemetry(loadSettings({}))).toEqual({});
    expect(runtimeTelemetry(loadSettings({ MREL_METRICS_ADDRESS: '' }))).toEqual({});
  });

  it('an IP and port: the Prometheus endpoint, durations in seconds', () => {
    for (const address of ['127.0.0.1:9464', '0.0.0.0:9464', '[::1]:9464']) {
      expect(runtimeTelemetry(loadSettings({ MREL_METRICS_ADDRESS: address })).metrics).toMatchObject({
        prometheus: { bindAddress: address, useSecondsForDurations: true },
      });
    }
  });

  it('anything else stops the worker at start, naming the variable and the form it wants', () => {
    for (const bad of ['localhost:9464', '127.0.0.1', '127.0.0.1:99999', '300.1.1.1:9464', 'http://127.0.0.1:9464']) {
      expect(() => loadSettings({ MREL_METRICS_ADDRESS: bad }), bad).toThrow(
        /^environment variable MREL_METRICS_ADDRESS: must be ip:port, e\.g\. 127\.0\.0\.1:9464/,
      );
    }
  });
});
