import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { CommitAncestry } from '../../activities/monitor/commit-ancestry';
import { seededRepo, test } from '../gitops/fixtures';

async function history(tmp: string) {
  const { bare, commit } = await seededRepo(tmp);
  return { bare, commit: (name: string) => commit(name, name, name) };
}

describe('CommitAncestry', () => {
  test('a later commit of the branch contains the release commit; an earlier one does not', async ({ tmp }) => {
    const { bare, commit } = await history(tmp);
    const release = await commit('release');
    const ancestry = new CommitAncestry({ repoUrl: bare, workRoot: join(tmp, 'work') });
    expect(await ancestry.contains(release, release)).toBe(true);

    // Pushed after the mirror's first fetch: the next question fetches it.
    const later = await commit('other-release');
    expect(await ancestry.contains(later, release)).toBe(true);
    expect(await ancestry.contains(release, later)).toBe(false);
  });

  test('an unknown commit or an unreadable repository is no proof', async ({ tmp }) => {
    const { bare, commit } = await history(tmp);
    const release = await commit('release');
    const ancestry = new CommitAncestry({ repoUrl: bare, workRoot: join(tmp, 'work') });
    expect(await ancestry.contains('f'.repeat(40), release)).toBe(false);
    const missing = new CommitAncestry({ repoUrl: join(tmp, 'missing.git'), workRoot: join(tmp, 'work') });
    expect(await missing.contains(release, release)).toBe(false);
  });
});
