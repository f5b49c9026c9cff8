/**
 * config/http-tokens.yaml: the static bearer tokens the HTTP door accepts, kept as SHA-256 digests so that the file
 * can live in Git without granting anything. A caller holding a token is `token:<name>`; approvers.yaml maps that
 * identity to an approver (`approvers.<id>.identities`).
 *
 *   tokens:
 *     - name: ci
 *       sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08   # printf %s "$TOKEN" | sha256sum
 */
import { z } from 'zod';
import { zodProblems } from '../contract/problems';
import { ConfigError, readYamlFile } from './yaml-file';

/** A token's name: the `<name>` of the identity `token:<name>` (the pattern approvers.yaml accepts). */
const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const HOW_TO_HASH = 'printf %s "$TOKEN" | sha256sum';

const httpTokenSchema = z
  .object({
    name: z
      .string({ error: 'name is required: the <name> of the identity token:<name>' })
      .regex(TOKEN_NAME, 'name must be letters, digits, ".", "_" or "-" (at most 64), starting with a letter or digit'),
    sha256: z
      .string({ error: `sha256 is required: the hex digest of the token (${HOW_TO_HASH})` })
      .superRefine((value, ctx) => {
        if (/^[0-9a-fA-F]{64}$/.test(value)) return;
        // Never quote the value: someone may have pasted the token itself here.
        const message = /^[0-9a-fA-F]{64}\s+-?$/.test(value)
          ? 'sha256 must be the 64 hex digits alone, without the "  -" that sha256sum prints after them'
          : `sha256 must be 64 hex digits, the digest of the token (${HOW_TO_HASH}), never the token itself`;
        ctx.addIssue({ code: 'custom', message });
      })
      .transform((value) => value.toLowerCase()),
  })
  .strict();

export const httpTokensFileSchema = z
  .object({
    tokens: z.array(httpTokenSchema, { error: 'tokens must be a list of {name, sha256}' }).max(1000),
  })
  .strict();

export type HttpToken = z.infer<typeof httpTokenSchema>;

/** Checks a parsed tokens file; throws a ConfigError naming `file` and each field at fault. */
export function parseHttpTokens(data: unknown, file: string): HttpToken[] {
  const parsed = httpTokensFileSchema.safeParse(data ?? {});
  if (!parsed.success) throw new ConfigError(file, zodProblems(parsed.error));
  const problems: string[] = [];
  const names = new Map<string, number>();
  const digests = new Map<string, number>();
  parsed.data.tokens.forEach((token, i) => {
    const sameName = names.get(token.name);
    if (sameName !== undefined)
      problems.push(`tokens[${i}].name is the same as tokens[${sameName}].name; names are unique`);
    else names.set(token.name, i);
    // One token under two names would make the caller's identity depend on the order of the list.
    const sameDigest = digests.get(token.sha256);
    if (sameDigest !== undefined) {
      problems.push(`tokens[${i}].sha256 is the same as tokens[${sameDigest}].sha256; give each name its own token`);
    } else digests.set(token.sha256, i);
  });
  if (problems.length > 0) throw new ConfigError(file, problems);
  return parsed.data.tokens;
}

/** Reads and checks a tokens file (`file` is how errors name it). */
export async function loadHttpTokens(path: string, file = path): Promise<HttpToken[]> {
  const loaded = await readYamlFile(
    path,
    file,
    `create it (tokens: [{name, sha256}]) or point MREL_HTTP_TOKENS_FILE at it`,
  );
  return parseHttpTokens(loaded.data, loaded.file);
}
