/**
 * The client and a release worker connecting over TLS and mTLS as users configure it (TEMPORAL_TLS_* variables, a
 * config file profile). The Temporal CLI's dev server (1.9.1) cannot serve TLS itself (`temporal server start-dev` has
 * no TLS flags), so the run's dev server is put behind a TLS terminator on 127.0.0.1 that speaks HTTP/2 (ALPN h2), the
 * way a load balancer fronts a Temporal frontend. The terminator records what each connection presented.
 */
import { connect as netConnect } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectClient, ReleaseClientError } from '../../client/release-client';
import { createReleaseWorker } from '../../workers/release-worker';
import { loadSettings } from '../../workers/settings';
import { installQuietRuntime } from '../helpers/release-env';
import { makeCerts, type TestCerts } from './certs';

interface Terminator {
  address: string;
  /** One entry per TLS session: the client certificate's CN, or null without one. */
  sessions: (string | null)[];
  close(): Promise<void>;
}

let dir: string;
let certs: TestCerts;
let tls: Terminator;
let mtls: Terminator;

beforeAll(async () => {
  installQuietRuntime();
  dir = await mkdtemp(join(tmpdir(), 'mrel-tls-'));
  certs = await makeCerts(dir);
  tls = await terminate(inject('temporalAddress'), false);
  mtls = await terminate(inject('temporalAddress'), true);
});

afterAll(async () => {
  await tls?.close();
  await mtls?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('TLS to Temporal', () => {
  it('connects the client with the CA and server name from TEMPORAL_TLS_* variables', async () => {
    const client = await connectClient(
      {},
      {
        TEMPORAL_ADDRESS: tls.address,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caCert,
        TEMPORAL_TLS_SERVER_NAME: 'localhost',
      },
    );
    try {
      const info = await client.workflowService.getSystemInfo({});
      expect(info.serverVersion).toMatch(/^\d+\.\d+/);
      expect(tls.sessions.length).toBeGreaterThan(0);
    } finally {
      await client.connection.close();
    }
  });

  it('refuses a server whose certificate the configured CA did not sign', async () => {
    const attempt = connectClient(
      {},
      {
        TEMPORAL_ADDRESS: tls.address,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.otherCaCert,
        TEMPORAL_TLS_SERVER_NAME: 'localhost',
      },
    );
    await expect(attempt).rejects.toThrow(ReleaseClientError);
    await expect(attempt).rejects.toThrow(/cannot reach Temporal at 127\.0\.0\.1:\d+ \(namespace default, TLS\)/);
  });
});

describe('mTLS to Temporal', () => {
  let profileFile: string;

  beforeAll(async () => {
    profileFile = join(dir, 'temporal.toml');
    await writeFile(
      profileFile,
      [
        '[profile.mtls]',
        `address = "${mtls.address}"`,
        '[profile.mtls.tls]',
        `server_ca_cert_path = "${certs.caCert}"`,
        `client_cert_path = "${certs.clientCert}"`,
        `client_key_path = "${certs.clientKey}"`,
        'server_name = "localhost"',
        '',
      ].join('\n'),
    );
  });

  it('connects the client with the profile from the config file, presenting its certificate', async () => {
    const before = mtls.sessions.length;
    const client = await connectClient({ profile: 'mtls' }, { TEMPORAL_CONFIG_FILE: profileFile });
    try {
      await client.workflowService.getSystemInfo({});
      expect(mtls.sessions.slice(before)).toContain('release-worker');
    } finally {
      await client.connection.close();
    }
  });

  it('is refused without a client certificate', async () => {
    const attempt = connectClient(
      {},
      {
        TEMPORAL_ADDRESS: mtls.address,
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caCert,
        TEMPORAL_TLS_SERVER_NAME: 'localhost',
      },
    );
    await expect(attempt).rejects.toThrow(/cannot reach Temporal at 127\.0\.0\.1:\d+ \(namespace default, TLS\)/);
    expect(mtls.sessions).not.toContain(null);
  });

  it('runs a release worker from the same profile: it polls its task queue through the mTLS connection', async () => {
    const taskQueue = `tls-${Math.random().toString(36).slice(2, 8)}`;
    const before = mtls.sessions.length;
    const settings = loadSettings({
      ...process.env,
      TEMPORAL_ADDRESS: undefined,
      TEMPORAL_CONFIG_FILE: profileFile,
      TEMPORAL_PROFILE: 'mtls',
      MREL_TASK_QUEUE: taskQueue,
      MREL_DATA_DIR: join(dir, 'data'),
    });
    const worker: Worker = await createReleaseWorker(settings, {
      workflowBundle: { codePath: inject('workflowBundlePath') },
    });
    const running = worker.run();
    const client = await connectClient({ profile: 'mtls' }, { TEMPORAL_CONFIG_FILE: profileFile });
    try {
      await expect
        .poll(
          async () => {
            const queue = await client.workflowService.describeTaskQueue({
              namespace: 'default',
              taskQueue: { name: taskQueue },
            });
            return queue.pollers.length;
          },
          { timeout: 20_000, interval: 250 },
        )
        .toBeGreaterThan(0);
      expect(mtls.sessions.slice(before).filter((cn) => cn === 'release-worker').length).toBeGreaterThanOrEqual(2);
    } finally {
      worker.shutdown();
      await running;
      await worker.connection?.close().catch(() => {});
      await client.connection.close();
    }
  });
});

/** A TLS terminator on 127.0.0.1 in front of the plaintext dev server; with `requireClientCert`, mTLS. */
async function terminate(upstream: string, requireClientCert: boolean): Promise<Terminator> {
  const [host, port] = upstream.split(':') as [string, string];
  const sessions: (string | null)[] = [];
  const sockets = new Set<TLSSocket>();
  const server: TlsServer = createTlsServer(
    {
      cert: readFileSync(certs.serverCert),
      key: readFileSync(certs.serverKey),
      ALPNProtocols: ['h2'],
      ...(requireClientCert ? { requestCert: true, rejectUnauthorized: true, ca: readFileSync(certs.caCert) } : {}),
    },
    (socket) => {
      sockets.add(socket);
      const peer = socket.getPeerCertificate();
      sessions.push(peer && peer.subject ? String(peer.subject.CN) : null);
      const backend = netConnect(Number(port), host);
      socket.pipe(backend).pipe(socket);
      const end = () => {
        socket.destroy();
        backend.destroy();
        sockets.delete(socket);
      };
      socket.on('error', end).on('close', end);
      backend.on('error', end).on('close', end);
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: listening } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${listening}`,
    sessions,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
