/**
 * Real parts for the monitoring window's end-to-end tests: a Prometheus (Debian's) that scrapes model servers found
 * through a file_sd targets file every second, and a load generator that drives a model server with rows of the
 * evaluation data — as they are, drifted, regrouped so that predictions differ by group, or as a burst that
 * overloads the server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CreditRow } from '../../scripts/credit-data';
import { freePort } from '../cost/prometheus';

/** The fair credit model's feature columns, and the protected columns the server counts predictions by. */
const COLUMNS: [keyof CreditRow, string][] = [
  ['income', 'FP32'],
  ['debt_ratio', 'FP32'],
  ['tenure', 'FP32'],
  ['region', 'BYTES'],
  ['group', 'BYTES'],
  ['sex', 'BYTES'],
];

/** The KServe v2 request for rows: one tensor per column. */
function inferRequest(rows: CreditRow[]): Record<string, unknown> {
  return {
    inputs: COLUMNS.map(([name, datatype]) => ({
      name,
      shape: [rows.length],
      datatype,
      data: rows.map((r) => r[name]),
    })),
  };
}

export interface LivePrometheus {
  url: string;
  /** Replaces the scraped model servers (host:port). */
  scrape(targets: string[]): Promise<void>;
  /** Resolves once Prometheus has scraped `target` successfully. */
  scraped(target: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startLivePrometheus(dir: string): Promise<LivePrometheus> {
  await mkdir(join(dir, 'data'), { recursive: true });
  const targets = join(dir, 'targets.json');
  const scrape = async (list: string[]): Promise<void> => {
    // Written aside and renamed, so Prometheus never reads half a file.
    await writeFile(`${targets}.tmp`, JSON.stringify([{ targets: list, labels: { job: 'model-server' } }]));
    await rename(`${targets}.tmp`, targets);
  };
  await scrape([]);
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: model-server',
      `    file_sd_configs: [{ files: ['${targets}'], refresh_interval: 1s }]`,
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${log}`);
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (i > 300) {
      await stop();
      throw new Error(`prometheus did not become ready on ${url}: ${log}`);
    }
    await sleep(100);
  }
  return {
    url,
    scrape,
    async scraped(target) {
      for (let i = 0; i < 300; i++) {
        const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(`up{instance="${target}"}`)}`);
        const body = (await res.json()) as { data?: { result?: { value: [number, string] }[] } };
        if (body.data?.result?.[0]?.value[1] === '1') return;
        await sleep(100);
      }
      throw new Error(`prometheus never scraped ${target}: ${log}`);
    },
    stop,
  };
}

export type Traffic = 'as-evaluated' | 'drifted' | 'regrouped' | 'burst';

/** Rows of the evaluation data as the traffic sends them. */
export function trafficRows(rows: CreditRow[], traffic: Traffic): CreditRow[] {
  if (traffic === 'drifted') {
    // Every numerical feature moves: richer, more indebted, newer customers with other zip codes.
    return rows.map((r) => ({
      ...r,
      income: r.income * 1.8,
      debt_ratio: r.debt_ratio + 0.25,
      tenure: r.tenure / 3,
      zip_score: r.zip_score + 2,
    }));
  }
  if (traffic === 'regrouped') {
    // The same rows (so no feature drifts), but group a is now the richer half and group b the poorer one: a fair
    // model approves group b far less often than in its evaluation.
    const byIncome = [...rows].sort((x, y) => x.income - y.income);
    const half = Math.floor(byIncome.length / 2);
    return byIncome.map((r, i) => ({ ...r, group: i < half ? ('b' as const) : ('a' as const) }));
  }
  return rows;
}

export interface Load {
  /** Requests answered, by HTTP status. */
  readonly answered: Record<number, number>;
  stop(): Promise<void>;
}

/**
 * Sends the rows in order, batch by batch, round and round, from `clients` concurrent loops until stopped; `burst`
 * sends big batches from many clients at once, more than the server admits.
 */
export function generateLoad(url: string, model: string, rows: CreditRow[], traffic: Traffic): Load {
  const data = trafficRows(rows, traffic);
  const burst = traffic === 'burst';
  const clients = burst ? 24 : 2;
  const batch = burst ? 256 : 50;
  const pause = burst ? 0 : 40;
  const answered: Record<number, number> = {};
  let stopped = false;
  let next = 0;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      const start = next % data.length;
      next += batch;
      const slice = data.slice(start, start + batch);
      try {
        const res = await fetch(`${url}/v2/models/${model}/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(inferRequest(slice)),
        });
        await res.arrayBuffer();
        answered[res.status] = (answered[res.status] ?? 0) + 1;
      } catch {
        answered[0] = (answered[0] ?? 0) + 1;
      }
      if (pause > 0) await sleep(pause);
    }
  };
  const loops = Array.from({ length: clients }, loop);
  return {
    answered,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}
