/**
 * Models are multi-GB: acquire must stream, never buffer a file. 300 MB through the store with RSS sampled all along.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'vitest';
import { acquireArtifacts, storePath } from '../../activities/acquire';
import { test } from './fixtures';

const SIZE_MB = 300;
const MAX_RSS_GROWTH = 100 << 20;

test(
  `a ${SIZE_MB} MB file streams through the store with flat memory`,
  { timeout: 15_000 },
  async ({ tmp, storeRoot }) => {
    const file = join(tmp, 'model.bin');
    const block = randomBytes(1 << 20);
    const hash = createHash('sha256');
    const handle = await open(file, 'w');
    try {
      for (let i = 0; i < SIZE_MB; i++) {
        // Vary each block so a repeated block cannot hide a chunk-ordering bug from the digest check.
        block.writeUInt32LE(i, 0);
        hash.update(block);
        await handle.write(block);
      }
    } finally {
      await handle.close();
    }
    const expected = hash.digest('hex');

    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    let progressCalls = 0;
    try {
      const manifest = await acquireArtifacts(
        { name: 'big-model', version: '1.0.0', source: pathToFileURL(file).href },
        {
          storeRoot,
          onProgress: () => {
            progressCalls++;
            peak = Math.max(peak, process.memoryUsage().rss);
          },
        },
      );
      expect(manifest.files).toEqual([{ path: 'model.bin', size: SIZE_MB << 20, sha256: expected }]);
    } finally {
      clearInterval(sampler);
    }

    expect((await stat(storePath(storeRoot, expected))).size).toBe(SIZE_MB << 20);
    expect(progressCalls).toBeGreaterThan(SIZE_MB / 2);
    expect(peak - baseline).toBeLessThan(MAX_RSS_GROWTH);
  },
);
