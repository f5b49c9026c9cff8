/**
 * One named member of a zip archive (a Keras v3 `.keras` file keeps its weights in `model.weights.h5`), read through
 * yauzl with its sizes checked against the central directory, so a member cannot decompress to more than it states.
 */
import yauzl from 'yauzl';
import { FormatError } from './errors';

/** Central-directory records walked looking for a member; an archive of more is no single model file. */
const MAX_ENTRIES = 100_000;

/** What an archive holds under a name: nothing, or a member of `size` bytes with them when they fit `maxBytes`. */
export type ZipMember = { found: false } | { found: true; size: number; bytes: Buffer | undefined };

/**
 * Looks for the member `name` of the zip archive at `path` (`file` names it in errors). `found: false` when the
 * archive has no such member or does not open as a zip at all (it is then some other file, not this reader's to
 * judge). A member of at most `maxBytes` is decompressed into memory; one whose bytes do not match its record is a
 * FormatError.
 */
export async function findZipMember(path: string, file: string, name: string, maxBytes: number): Promise<ZipMember> {
  let zip: yauzl.ZipFile;
  try {
    zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.open(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true }, (err, z) =>
        err ? reject(err) : resolve(z),
      ),
    );
  } catch {
    return { found: false };
  }
  try {
    const entry = await new Promise<yauzl.Entry | undefined>((resolve) => {
      let seen = 0;
      zip.on('entry', (e: yauzl.Entry) => {
        if (e.fileName === name) resolve(e);
        else if (++seen >= MAX_ENTRIES) resolve(undefined);
        else zip.readEntry();
      });
      zip.on('end', () => resolve(undefined));
      // A central directory that does not read: no member this reader can vouch for.
      zip.on('error', () => resolve(undefined));
      zip.readEntry();
    });
    if (!entry) return { found: false };
    if (entry.uncompressedSize > maxBytes) return { found: true, size: entry.uncompressedSize, bytes: undefined };
    try {
      const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) =>
        zip.openReadStream(entry, (err, s) => (err ? reject(err) : resolve(s))),
      );
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return { found: true, size: entry.uncompressedSize, bytes: Buffer.concat(chunks) };
    } catch (err) {
      // yauzl's messages describe the archive's structure, never its content; the class is enough to say why.
      const why = err instanceof Error ? err.name : 'unreadable';
      throw new FormatError(
        'zip',
        file,
        entry.relativeOffsetOfLocalHeader,
        `member ${name} does not read (${why}: corrupt or cut short)`,
        { cause: err },
      );
    }
  } finally {
    zip.close();
  }
}
