/** Real OpenSSH for the trust tests: keys made by ssh-keygen, signatures made and checked by it, a real ssh-agent. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const KEY_SPECS = {
  ed25519: ['-t', 'ed25519'],
  'ecdsa-256': ['-t', 'ecdsa', '-b', '256'],
  'ecdsa-384': ['-t', 'ecdsa', '-b', '384'],
  'ecdsa-521': ['-t', 'ecdsa', '-b', '521'],
  'rsa-3072': ['-t', 'rsa', '-b', '3072'],
  'rsa-1024': ['-t', 'rsa', '-b', '1024'],
} as const;
export type KeySpec = keyof typeof KEY_SPECS;

export interface TestKey {
  privateFile: string;
  publicFile: string;
  /** The .pub line, as an approver pastes it into approvers.yaml. */
  line: string;
}

export async function makeKey(dir: string, name: string, spec: KeySpec): Promise<TestKey> {
  const privateFile = join(dir, name);
  await run('ssh-keygen', ['-q', ...KEY_SPECS[spec], '-N', '', '-C', `${name}@test`, '-f', privateFile]);
  const publicFile = `${privateFile}.pub`;
  return { privateFile, publicFile, line: (await readFile(publicFile, 'utf8')).trim() };
}

/** `ssh-keygen -l`'s fingerprint of a public key file. */
export async function sshFingerprint(publicFile: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', publicFile]);
  return stdout.split(' ')[1] as string;
}

/** Signs `message` by hand, as an approver would without mrel. */
export async function signByHand(dir: string, key: TestKey, namespace: string, message: Uint8Array): Promise<string> {
  const file = join(dir, `message-${Math.random().toString(36).slice(2)}`);
  await writeFile(file, message);
  await run('ssh-keygen', ['-q', '-Y', 'sign', '-n', namespace, '-f', key.privateFile, file]);
  return readFile(`${file}.sig`, 'utf8');
}

/** `ssh-keygen -Y verify`: whether OpenSSH itself accepts the signature for `principal` with `key`. */
export async function opensshVerifies(
  dir: string,
  key: TestKey,
  namespace: string,
  message: Uint8Array,
  signature: string,
): Promise<boolean> {
  const allowed = join(dir, 'allowed_signers');
  const sigFile = join(dir, 'check.sig');
  await writeFile(allowed, `approver@test ${key.line}\n`);
  await writeFile(sigFile, signature);
  return new Promise((resolve, reject) => {
    const child = spawn(
      'ssh-keygen',
      ['-Y', 'verify', '-f', allowed, '-I', 'approver@test', '-n', namespace, '-s', sigFile],
      { stdio: ['pipe', 'ignore', 'ignore'] },
    );
    child.on('error', reject);
    child.on('exit', (code) => resolve(code === 0));
    child.stdin.end(Buffer.from(message));
  });
}

export interface TestAgent {
  socket: string;
  process: ChildProcess;
  add(key: TestKey): Promise<void>;
  stop(): Promise<void>;
}

/** A real ssh-agent in the foreground (`-D`) on its own socket, so the test holds its PID and stops it. */
export async function startAgent(dir: string): Promise<TestAgent> {
  const socket = join(dir, 'agent.sock');
  const child = spawn('ssh-agent', ['-D', '-a', socket], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The agent prints its environment lines once the socket listens.
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`ssh-agent exited with ${code}`)));
    child.stdout.once('data', () => resolve());
  });
  const env = { ...process.env, SSH_AUTH_SOCK: socket };
  return {
    socket,
    process: child,
    async add(key) {
      await run('ssh-add', ['-q', key.privateFile], { env });
    },
    async stop() {
      if (child.exitCode !== null || child.pid === undefined) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid, 'SIGTERM');
      await exited;
    },
  };
}
