/**
 * Entry point of the HTTP start endpoint (routes in client/http-server.ts, callers in client/http-auth.ts).
 * Environment:
 *   PORT (default 8080), HOST (default 127.0.0.1),
 *   MREL_HTTP_OIDC_ISSUER + MREL_HTTP_OIDC_AUDIENCE (OIDC bearer tokens: the issuer URL, the audience they are for),
 *   MREL_HTTP_TOKENS_FILE (static tokens by SHA-256; default config/http-tokens.yaml when it exists),
 *   MREL_HTTP_RATE (requests a minute per caller, default 60), MREL_HTTP_UNMAPPED (none, or start,read: what callers
 *   who are no approver may do; default none),
 *   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, MREL_TASK_QUEUE (the release worker's queue), MREL_CONFIG_DIR.
 * Without OIDC or tokens the door is open for local use and serves loopback only: any other HOST is refused at start.
 * MREL_HTTP_TOKEN (the single unhashed token of earlier versions) is refused, with how to move it into the tokens
 * file, so that an upgrade never silently serves without authentication.
 * Stops on SIGINT/SIGTERM: no new connections, in-flight requests finish (up to 10 s), then the Temporal
 * connection closes.
 */
import { access } from 'node:fs/promises';
import type { Server } from 'node:http';
import { DEFAULT_CONFIG_DIR } from '../config/loader';
import { loadHttpTokens } from '../config/http-tokens';
import { RELEASE_TASK_QUEUE } from '../contract/definitions';
import { createDoorAuth, doorAuthSettings, requireAuthOffLoopback, type DoorAuth } from './http-auth';
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

/** The door's authentication from the environment and the tokens file; undefined when none is configured. */
async function doorAuth(configDir: string): Promise<{ auth?: DoorAuth; ratePerMinute: number }> {
  const settings = doorAuthSettings(process.env, configDir);
  const { path, explicit } = settings.tokensFile;
  const present =
    explicit ||
    (await access(path).then(
      () => true,
      () => false,
    ));
  const tokens = present ? await loadHttpTokens(path) : [];
  const configured = settings.oidc !== undefined || tokens.length > 0;
  const auth = configured
    ? createDoorAuth({ oidc: settings.oidc, tokens, configDir, unmapped: settings.unmapped })
    : undefined;
  return { auth, ratePerMinute: settings.ratePerMinute };
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
  const configDir = process.env.MREL_CONFIG_DIR || DEFAULT_CONFIG_DIR;
  // Every refusal of the settings comes before Temporal is reached for.
  const { auth, ratePerMinute } = await doorAuth(configDir);
  requireAuthOffLoopback(host, auth);
  const client = await connectClient();
  const server = createHttpServer({
    client,
    taskQueue: process.env.MREL_TASK_QUEUE || RELEASE_TASK_QUEUE,
    configDir: process.env.MREL_CONFIG_DIR || undefined,
    auth,
    ratePerMinute,
  });
  await listen(server, portNumber, host);
  const address = server.address();
  const shown = address && typeof address === 'object' ? `${host}:${address.port}` : `${host}:${portNumber}`;
  console.log(`modelrelease HTTP start endpoint on http://${shown}`);
  if (auth) {
    console.log(`authentication: ${auth.methods.join('; ')}; at most ${ratePerMinute} requests a minute per caller`);
  } else {
    console.log(
      `open for local use: no authentication (loopback only), decisions name their approver in the body; set MREL_HTTP_OIDC_ISSUER/MREL_HTTP_OIDC_AUDIENCE or MREL_HTTP_TOKENS_FILE to require tokens`,
    );
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
