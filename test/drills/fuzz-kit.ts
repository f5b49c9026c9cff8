/**
 * The parser fuzzing drill's parts: the committed seed corpus, a seeded byte-level mutator (so a failing run is
 * reproduced from its seed and run number), a hang detector, the reference readers' second opinion on inputs a parser
 * called clean, and the memory probes.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export const CORPUS = fileURLToPath(new URL('./corpus', import.meta.url));
const PYTHON = fileURLToPath(new URL('../../.venv/bin/python', import.meta.url));
const REFERENCE_CHECK = join(CORPUS, 'reference-check.py');

/** Runs per format and seed family: the fixed budget that keeps the whole drill near 15 s on two cores (budget: 90 s). */
export const RUNS_PER_FORMAT = 240;
/** A parser that has not answered one small input after this long is hung (generous: CI machines are noisy). */
export const HANG_MS = 15_000;
/** No input may take the test process past this resident size. */
export const RSS_BOUND = 1.5 * 2 ** 30;
/** Declared huge lengths may not cost more than this (peak resident growth over a batch of such inputs). */
export const GROWTH_BOUND = 256 * 2 ** 20;

export interface Seed {
  name: string;
  bytes: Buffer;
}

/** The committed seeds of one format (corpus/<format>/*), regression seeds included, in name order. */
export function seeds(format: string): Seed[] {
  const dir = join(CORPUS, format);
  return readdirSync(dir)
    .sort()
    .map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

/** mulberry32: small, fast and good enough to spread mutations; the same seed gives the same runs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe];
/** Values that break length and count fields: sign bits, 2^32 - 1, 2^53, 2^63, 2^64 - 1. */
const INTERESTING_U64 = [
  0xffffffffffffffffn,
  0x8000000000000000n,
  0x7fffffffffffffffn,
  1n << 53n,
  0xffffffffn,
  0x80000000n,
  0x7fffffffn,
  0n,
];

/** One to three byte-level mutations of `input`: what a flipped bit, a bad write or a hostile editor leaves. */
export function mutate(input: Buffer, random: () => number): { bytes: Buffer; how: string[] } {
  let b = Buffer.from(input);
  const how: string[] = [];
  const int = (n: number): number => Math.floor(random() * n);
  const ops = 1 + int(3);
  for (let k = 0; k < ops; k++) {
    const at = int(Math.max(1, b.length));
    switch (int(8)) {
      case 0: {
        if (b.length === 0) break;
        const bit = int(8);
        b[at] = (b[at] as number) ^ (1 << bit);
        how.push(`flip bit ${bit} of byte ${at}`);
        break;
      }
      case 1: {
        if (b.length === 0) break;
        const v = INTERESTING_BYTES[int(INTERESTING_BYTES.length)] as number;
        b[at] = v;
        how.push(`set byte ${at} to 0x${v.toString(16)}`);
        break;
      }
      case 2: {
        b = b.subarray(0, at);
        how.push(`truncate to ${at} bytes`);
        break;
      }
      case 3: {
        const n = 1 + int(16);
        const extra = Buffer.alloc(n);
        for (let i = 0; i < n; i++) extra[i] = int(256);
        b = Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
        how.push(`insert ${n} random bytes at ${at}`);
        break;
      }
      case 4: {
        const n = 1 + int(32);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
        how.push(`delete ${n} bytes at ${at}`);
        break;
      }
      case 5: {
        // Chunk duplication: a repeated header, record or opcode run.
        const n = 1 + int(64);
        const chunk = Buffer.from(b.subarray(at, at + n));
        const to = int(b.length + 1);
        b = Buffer.concat([b.subarray(0, to), chunk, b.subarray(to)]);
        how.push(`copy ${chunk.length} bytes from ${at} to ${to}`);
        break;
      }
      default: {
        // A length or count field set to a huge value, at any alignment, 4 or 8 bytes wide.
        const v = INTERESTING_U64[int(INTERESTING_U64.length)] as bigint;
        const width = random() < 0.5 ? 4 : 8;
        if (b.length < width) break;
        const pos = Math.min(at, b.length - width);
        if (width === 8) b.writeBigUInt64LE(v, pos);
        else b.writeUInt32LE(Number(v & 0xffffffffn), pos);
        how.push(`write ${width}-byte 0x${v.toString(16)} at ${pos}`);
      }
    }
  }
  return { bytes: b, how };
}

/** Rejects when `work` has not settled after `ms`: a parser that waits forever is a bug the drill reports. */
export async function withinTime<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([work, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The reference readers' verdict on each file (Python: pickletools, safetensors, numpy, gguf, zipfile, tarfile):
 * null when it parses, else why not.
 */
export async function referenceCheck(format: string, files: string[]): Promise<Record<string, string | null>> {
  if (files.length === 0) return {};
  const { stdout } = await execFileAsync(PYTHON, [REFERENCE_CHECK, format, ...files], {
    timeout: 120_000,
    maxBuffer: 16 << 20,
  });
  return JSON.parse(stdout) as Record<string, string | null>;
}

/** Peak resident set size of this process so far, in bytes. */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * Keeps a failing input outside the test's temp dir (which is removed) and describes it, so that it can be replayed
 * and committed under corpus/<format>/ as a regression seed.
 */
export function keepFailure(format: string, seed: string, run: number, how: string[], bytes: Buffer): string {
  const dir = join(tmpdir(), 'mrel-fuzz-failures');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${format}-${run}-${seed}`);
  writeFileSync(file, bytes);
  return `${format}/${seed} run ${run} (${how.join('; ')}): input kept at ${file}`;
}
