/** What deploy/monitoring ships, read for the tests: the rules' and the dashboard's queries, and the names they use. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../../scripts/temporal-cli';

export const MONITORING_DIR = join(PROJECT_ROOT, 'deploy', 'monitoring');
export const ALERTS_FILE = join(MONITORING_DIR, 'alerts.yaml');
export const DASHBOARD_FILE = join(MONITORING_DIR, 'grafana-dashboard.json');

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}

export async function rules(): Promise<Rule[]> {
  const doc = parse(await readFile(ALERTS_FILE, 'utf8')) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

interface Panel {
  title?: string;
  type: string;
  targets?: { expr: string }[];
  panels?: Panel[];
}

export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { query: { query: string } }[] };
}

export async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD_FILE, 'utf8')) as Dashboard;
}

/** Every panel with its queries, rows' panels included. */
export function panelsOf(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
}

/** Every PromQL query the dashboard's panels run. */
export function dashboardQueries(d: Dashboard): string[] {
  return panelsOf(d).flatMap((p) => (p.targets ?? []).map((t) => t.expr));
}

/** The template variables' queries (Grafana's label_values(…), not PromQL). */
export function variableQueries(d: Dashboard): string[] {
  return d.templating.list.map((v) => v.query.query);
}

/**
 * The metric names a query reads: the engine's (modelrelease_…), recording rules (modelrelease:…), the SDK's
 * (temporal_…) and Prometheus' own `up`. Label names and values, functions and keywords are not metrics.
 */
export function metricNames(query: string): string[] {
  const withoutStrings = query.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const names = withoutStrings.match(/\b(?:modelrelease[_:][a-z0-9_:]+|temporal_[a-z0-9_]+|up)\b(?=\s*[{[)\s,]|$)/g);
  return [...new Set(names ?? [])];
}
