// What the setup scripts of binaries built from the Go module proxy share (setup-kube-tools.mjs,
// setup-cluster-tools.mjs): a per-user cache outside the clone whose entries appear whole or not at all, a stamp in
// .tools/ that makes a rerun a no-op by looking at files only, the go command, and messages under the script's name.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `log` and `fail` (print, exit 1) with every line under `[name]`. */
export function reporter(name) {
  return {
    log(msg) {
      console.log(`[${name}] ${msg}`);
    },
    fail(message) {
      console.error(`[${name}] ${message.split('\n').join(`\n[${name}] `)}`);
      process.exit(1);
    },
  };
}

/** The per-user cache folder of one script's builds ($MODELRELEASE_TOOLS_CACHE, else ~/.cache/modelrelease/<name>). */
export function toolsCacheRoot(name) {
  return process.env.MODELRELEASE_TOOLS_CACHE || join(homedir(), '.cache', 'modelrelease', name);
}

/** True when `stampPath` holds exactly `expected` and every one of `files` exists. Looks at files only. */
export function stampCurrent(stampPath, expected, files) {
  try {
    const stamp = JSON.parse(readFileSync(stampPath, 'utf8'));
    return JSON.stringify(stamp) === JSON.stringify(expected) && files.every((f) => existsSync(f));
  } catch {
    return false;
  }
}

export function writeStamp(stampPath, stamp) {
  writeFileSync(stampPath, `${JSON.stringify(stamp)}\n`);
}

/** Copies under a temporary name and renames, so that an interrupted copy never passes for a finished one. */
export function copyWhole(from, to) {
  copyFileSync(from, `${to}.tmp`);
  renameSync(`${to}.tmp`, to);
}

/**
 * Fills the folder `dir` through `fill(staging)` in a staging folder beside it, then renames that into place (an
 * older `dir` is replaced): a half-built entry never passes for a finished one. A failure removes the staging folder
 * and is thrown on.
 */
export function fillWhole(dir, fill) {
  const staging = `${dir}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    const result = fill(staging);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staging, dir);
    return result;
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

/**
 * A runner of the go command: its output when `capture` is set (stderr always shows). A machine without Go fails
 * with how to install it (`needs`: what the tests build with it); a failed command throws.
 */
export function goRunner(fail, needs) {
  return (args, { cwd, env, capture = false } = {}) => {
    try {
      return execFileSync('go', args, {
        cwd,
        env,
        stdio: capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
        maxBuffer: 64 * 1024 * 1024,
      })?.toString();
    } catch (err) {
      if (err.code === 'ENOENT') {
        fail(
          `the go command is not on PATH: ${needs}.\n` +
            'Install Go 1.26 or later (https://go.dev/doc/install), then run npm test again.',
        );
      }
      throw new Error(`go ${args.join(' ')} failed (see its output above)`);
    }
  };
}
