/**
 * `mrel codec-server`: serves the payload codec (MREL_CODEC_KEYS or MREL_CODEC_KEY_FILE) over Temporal's codec
 * protocol for the Temporal UI and CLI (client/codec-http-server.ts). Runs until SIGINT or SIGTERM.
 *
 * Exit codes as every command (client/errors.ts): 0 stopped by a signal, 2 bad usage (listen address, origin), 5 no
 * codec keys or no usable token, 4 the address is taken.
 */
import { readFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Command } from 'commander';
import { EXIT, type ExitCode } from '../errors';
import { createCodecServer } from '../codec-http-server';
import { AesGcmPayloadCodec, CodecKeyConfigError, loadCodecKeys } from '../connection/payload-codec';
import {
  loadTemporalConnectionConfig,
  TemporalConnectionConfigError,
  type TemporalConnectionOverrides,
} from '../connection/temporal-connection';
import type { CommandContext } from './context';

interface CodecServerOptions {
  listen: string;
  origin: string[];
  tokenFile?: string;
}

const MIN_TOKEN_CHARS = 16;

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('codec-server')
    .description('serve the payload codec to the Temporal UI and CLI (decrypts payloads for holders of the token)')
    .option('--listen <host:port>', 'where to listen', '127.0.0.1:8888')
    .option(
      '--origin <url>',
      'the Temporal UI origin allowed to call (repeatable)',
      (value: string, all: string[] | undefined) => [...(all ?? []), value],
    )
    .option('--token-file <file>', 'file holding the bearer token (default: environment variable MREL_CODEC_TOKEN)')
    .action(async (opts: CodecServerOptions) => {
      const fail = (code: ExitCode, message: string, problems: string[] = []): void => {
        ctx.io.err(`mrel codec-server: ${message}`);
        for (const p of problems) ctx.io.err(`  - ${p}`);
        ctx.setExit(code);
      };
      const listen = parseListen(opts.listen);
      if (listen === undefined)
        return fail(EXIT.usage, `--listen ${opts.listen}: must be host:port, e.g. 127.0.0.1:8888`);
      const origins = opts.origin ?? ['http://localhost:8233'];
      const badOrigin = origins.find((o) => !isOrigin(o));
      if (badOrigin !== undefined) {
        return fail(EXIT.usage, `--origin ${badOrigin}: must be an origin such as http://localhost:8233 (no path)`);
      }
      let keys;
      try {
        keys = loadCodecKeys();
      } catch (err) {
        if (err instanceof CodecKeyConfigError) return fail(EXIT.config, 'the codec keys do not load', err.problems);
        throw err;
      }
      if (keys === undefined) {
        return fail(EXIT.config, 'no codec keys: set MREL_CODEC_KEYS or MREL_CODEC_KEY_FILE as the workers have them');
      }
      const token = await loadToken(opts.tokenFile);
      if (typeof token !== 'string') return fail(EXIT.config, token.problem);

      // The namespace as every other part resolves it (flag, TEMPORAL_NAMESPACE, profile): the one whose payloads it opens.
      let namespace: string;
      try {
        namespace = loadTemporalConnectionConfig(process.env, program.opts<TemporalConnectionOverrides>()).namespace;
      } catch (err) {
        if (err instanceof TemporalConnectionConfigError) {
          return fail(EXIT.config, 'the Temporal connection is not configured right', err.problems);
        }
        throw err;
      }
      const codec = new AesGcmPayloadCodec(keys);
      const server = createCodecServer({
        codec,
        token,
        origins,
        namespace,
        log: (line) => ctx.io.err(line),
      });
      try {
        await listenOn(server, listen.port, listen.host);
      } catch (err) {
        return fail(EXIT.unavailable, `cannot listen on ${opts.listen} (${(err as NodeJS.ErrnoException).code})`);
      }
      const address = server.address();
      const port = address && typeof address === 'object' ? address.port : listen.port;
      ctx.io.out(
        `codec server on http://${listen.host}:${port} for namespace ${namespace}, origin ${origins.join(', ')}; ` +
          `keys ${codec.keyIds.join(', ')} (encrypts with ${codec.keyIds[0]}); sign in for the UI at /login`,
      );
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          server.close(() => resolve());
          server.closeAllConnections();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}

/** The token from --token-file or MREL_CODEC_TOKEN; a problem (naming the source, never the content) otherwise. */
async function loadToken(file: string | undefined): Promise<string | { problem: string }> {
  let raw: string | undefined;
  let where: string;
  if (file !== undefined) {
    where = `--token-file ${file}`;
    try {
      raw = await readFile(file, 'utf8');
    } catch (err) {
      return { problem: `${where} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})` };
    }
  } else {
    where = 'environment variable MREL_CODEC_TOKEN';
    raw = process.env.MREL_CODEC_TOKEN;
    if (raw === undefined) {
      return { problem: 'no token: give --token-file <file> or set MREL_CODEC_TOKEN (e.g. `openssl rand -hex 32`)' };
    }
  }
  const token = raw.trim();
  if (token.length < MIN_TOKEN_CHARS || /\s/.test(token)) {
    return {
      problem: `${where}: the token must be one word of at least ${MIN_TOKEN_CHARS} characters (e.g. \`openssl rand -hex 32\`)`,
    };
  }
  return token;
}

function parseListen(value: string): { host: string; port: number } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(value);
  if (!match?.[1] || !match[2]) return undefined;
  const port = Number(match[2]);
  if (port > 65_535) return undefined;
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
