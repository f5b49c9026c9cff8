/**
 * Real parts for the acquire tests: temp directories on disk and node:http servers on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test as base } from 'vitest';

export function sha256(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Write `{ 'a/b.txt': 'content' }` under `root`, creating directories. */
export async function writeTree(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

/** Every file under `dir`, relative, for asserting what the store holds. */
export async function listFiles(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
      .sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

export interface LocalServer {
  /** `http://<host>:<port>` without a trailing slash. */
  origin: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** @param host the loopback address to listen on (127.0.0.2 and up are loopback too on Linux) */
export async function startServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  host = '127.0.0.1',
): Promise<LocalServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://${host}:${port}`,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Dirs {
  /** A fresh temp directory per test, removed afterwards. */
  tmp: string;
  /** `<tmp>/store`, the artifact store root. */
  storeRoot: string;
}

export const test = base.extend<Dirs>({
  // vitest reads a fixture's dependencies from its destructuring pattern: this one has none.
  tmp: async ({}, use) => {
    const dir = await mkdtemp(join(tmpdir(), 'acquire-test-'));
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
  storeRoot: async ({ tmp }, use) => {
    await use(join(tmp, 'store'));
  },
});
