/**
 * Entry point of the HTTP start endpoint (routes in client/http-server.ts). Environment:
 *   PORT (default 8080), HOST (default 127.0.0.1), MREL_HTTP_TOKEN (bearer token; unset: no authentication; set but
 *   empty or blank: refused at start, so that a missing secret never silently turns authentication off),
 *   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MREL_TASK_QUEUE (the release worker's queue), MREL_CONFIG_DIR.
 * Stops on SIGINT/SIGTERM: no new connections, in-flight requests finish (up to 10 s), then the Temporal
 * connection closes.
 */
import type { Server } from 'node:http';
import { RELEASE_TASK_QUEUE } from '../contract/definitions';
import { createHttpServer } from './http-server';
import { connectClient } from './release-client';

const SHUTDOWN_GRACE_MS = 10_000;

function port(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 8080;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new Error(`environment variable PORT: must be an integer from 0 to 65535 (got "${raw}")`);
  }
  return n;
}

/** The bearer token from MREL_HTTP_TOKEN: undefined only when the variable is unset. */
function httpToken(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (raw.trim() === '') {
    throw new Error(
      'environment variable MREL_HTTP_TOKEN is set but empty: set it to a secret (e.g. `openssl rand -hex 32`), or unset it to serve without authentication on 127.0.0.1',
    );
  }
  if (/\s/.test(raw)) {
    throw new Error(
      'environment variable MREL_HTTP_TOKEN contains whitespace: a bearer token is one word (e.g. `openssl rand -hex 32`)',
    );
  }
  return raw;
}

function listen(server: Server, portNumber: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(portNumber, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function main(): Promise<void> {
  const portNumber = port(process.env.PORT);
  const host = process.env.HOST || '127.0.0.1';
  const token = httpToken(process.env.MREL_HTTP_TOKEN);
  const client = await connectClient();
  const server = createHttpServer({
    client,
    taskQueue: process.env.MREL_TASK_QUEUE || RELEASE_TASK_QUEUE,
    configDir: process.env.MREL_CONFIG_DIR || undefined,
    token,
  });
  await listen(server, portNumber, host);
  const address = server.address();
  const shown = address && typeof address === 'object' ? `${host}:${address.port}` : `${host}:${portNumber}`;
  console.log(`modelrelease HTTP start endpoint on http://${shown}${token ? ' (bearer token required)' : ''}`);
  if (!token && !['127.0.0.1', 'localhost', '::1'].includes(host)) {
    console.warn(`warning: listening on ${host} without MREL_HTTP_TOKEN: anyone who can reach it can start releases`);
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      console.error(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: stopping`);
    const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      client.connection.close().catch((err: unknown) => {
        console.error('closing the Temporal connection failed', err);
        process.exitCode = 1;
      });
    });
    server.closeIdleConnections();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  // Startup failures (bad PORT, port in use, Temporal unreachable) are the operator's to fix: the message says how.
  console.error(`mrel-http: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
