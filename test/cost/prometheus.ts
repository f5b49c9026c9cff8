/**
 * A real Prometheus (Debian's `prometheus` package) on 127.0.0.1 for the cost tests: weeks of history backfilled
 * with `promtool tsdb create-blocks-from openmetrics`, plus a tiny node:http exporter it scrapes every second.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BackfillSeries {
  metric: string;
  labels: Record<string, string>;
  /** Unix seconds → value. */
  samples: [number, number][];
}

export interface LocalPrometheus {
  url: string;
  stop(): Promise<void>;
}

/** A port on 127.0.0.1 nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function openMetrics(series: BackfillSeries[]): string {
  const lines: string[] = [];
  for (const name of new Set(series.map((s) => s.metric))) lines.push(`# TYPE ${name} gauge`);
  for (const s of series) {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}="${v}"`)
      .join(',');
    for (const [t, v] of s.samples) lines.push(`${s.metric}{${labels}} ${v} ${t}`);
  }
  // OpenMetrics wants each metric family's samples together: sort keeps the TYPE lines first, families grouped.
  const [types, samples] = [lines.filter((l) => l.startsWith('#')), lines.filter((l) => !l.startsWith('#'))];
  return [...types, ...samples.sort((a, b) => a.split('{')[0]!.localeCompare(b.split('{')[0]!)), '# EOF', ''].join(
    '\n',
  );
}

/**
 * Starts Prometheus with `history` backfilled and `live` served by a local exporter scraped every second; resolves
 * once Prometheus is ready and has scraped at least three times. `workers` (host:port) are scraped every second too,
 * as job `modelrelease-workers`.
 */
export async function startPrometheus(
  dir: string,
  history: BackfillSeries[],
  live: string,
  workers: string[] = [],
): Promise<LocalPrometheus> {
  const data = join(dir, 'data');
  await mkdir(data, { recursive: true });
  if (history.length > 0) {
    await writeFile(join(dir, 'history.om'), openMetrics(history));
    // Few long blocks rather than one per 2 hours: Prometheus then starts in a second instead of half a minute.
    const blocks = ['--max-block-duration=768h', join(dir, 'history.om'), data];
    await run('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', ...blocks], {
      maxBuffer: 16 * 1024 * 1024,
    });
  }
  let scrapes = 0;
  const exporter: Server = createServer((req, res) => {
    scrapes += 1;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(live);
  });
  await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
  const exporterPort = (exporter.address() as AddressInfo).port;
  const port = await freePort();
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: model-server',
      `    static_configs: [{ targets: ['127.0.0.1:${exporterPort}'] }]`,
      ...(workers.length > 0
        ? ['  - job_name: modelrelease-workers', `    static_configs: [{ targets: ${JSON.stringify(workers)} }]`]
        : []),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${data}`,
      '--storage.tsdb.retention.time=3650d',
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    await new Promise<void>((resolve) => exporter.close(() => resolve()));
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`prometheus exited with ${child.exitCode}: ${log}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready && scrapes >= 3) return { url, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready on ${url}: ${log}`);
    }
    await sleep(200);
  }
}
