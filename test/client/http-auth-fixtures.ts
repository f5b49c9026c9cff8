/**
 * What tests of the authenticated HTTP door share: token digests as config/http-tokens.yaml keeps them, and a copy of
 * the tests' approvers.yaml whose approvers carry identities the door maps callers by.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { FIXTURE_CONFIG_DIR } from '../helpers/config-dirs';

/** The hex digest `printf %s "$TOKEN" | sha256sum` prints. */
export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * A directory holding the tests' approvers.yaml with `identities` added (approver id → identities); returns its path
 * for createDoorAuth's configDir. The caller removes it.
 */
export async function approversWithIdentities(identities: Record<string, string[]>): Promise<string> {
  const file = parse(await readFile(join(FIXTURE_CONFIG_DIR, 'approvers.yaml'), 'utf8')) as {
    approvers: Record<string, { identities?: string[] }>;
  };
  for (const [id, list] of Object.entries(identities)) {
    const approver = file.approvers[id];
    if (!approver) throw new Error(`no approver ${id} in the tests' approvers.yaml`);
    approver.identities = list;
  }
  const dir = await mkdtemp(join(tmpdir(), 'mrel-door-approvers-'));
  await writeFile(join(dir, 'approvers.yaml'), stringify(file));
  return dir;
}
