/**
 * Bundles the mrel CLI into plain JavaScript (`dist/mrel.mjs` plus chunks), for pre-commit hooks and CI jobs where
 * start-up time counts:
 *
 *   npm run build:cli && node dist/mrel.mjs scan models/
 *
 * `./bin/mrel` keeps running the TypeScript sources through tsx (always current, slower to start); the bundle is what
 * you rebuild after changing the code. It is code-split, so each command loads only its own parsers. The Temporal SDK
 * and TensorFlow.js (native parts) are left out and resolve from this repository's node_modules, and the bundle finds
 * config/ by its place relative to the output directory, unless MREL_CONFIG_DIR says otherwise.
 */
import { relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));

/**
 * Bundles `entry` (a TypeScript file) into `<outdir>/<name>.mjs` plus code-split chunks, as ESM for node 20 with a
 * working `require`. `banner` lines go at the top of every chunk; `external` packages resolve from node_modules.
 */
export async function bundleForNode(options: {
  name: string;
  entry: string;
  outdir: string;
  external: string[];
  banner?: string[];
}): Promise<string> {
  // Loaded here, not at the top: importing this module (the scan bench's bundle does) must not need esbuild.
  const { build } = await import('esbuild');
  await build({
    entryPoints: { [options.name]: options.entry },
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outdir: options.outdir,
    outExtension: { '.js': '.mjs' },
    banner: {
      js: [
        "import { createRequire as __mrelRequire } from 'node:module';",
        'const require = __mrelRequire(import.meta.url);',
        ...(options.banner ?? []),
      ].join('\n'),
    },
    external: options.external,
    logLevel: 'error',
  });
  return resolve(options.outdir, `${options.name}.mjs`);
}

export async function buildCli(outdir = resolve(REPO, 'dist')): Promise<string> {
  const config = relative(outdir, resolve(REPO, 'config')).split('\\').join('/');
  return bundleForNode({
    name: 'mrel',
    entry: resolve(REPO, 'client', 'mrel.ts'),
    outdir,
    // dockerode (scan-image's docker-daemon: images) reaches ssh2's optional native addon, which no bundle can hold.
    external: ['@temporalio/*', '@tensorflow/*', '@mapbox/*', 'dockerode'],
    // Every chunk can be the first one evaluated, so each one sets the config location if nothing has yet.
    banner: [
      "import { fileURLToPath as __mrelPath } from 'node:url';",
      `process.env.MREL_CONFIG_DIR ??= __mrelPath(new URL(${JSON.stringify(`${config}/`)}, import.meta.url));`,
    ],
  });
}

// Run as a script (npm run build:cli); bundled into something else (the scan bench), it only exports buildCli.
if (/(^|[\\/])build-cli\.[cm]?[jt]s$/.test(process.argv[1] ?? '')) {
  const entry = await buildCli(process.argv[2] ? resolve(process.argv[2]) : undefined);
  console.log(
    `built ${relative(process.cwd(), entry)}: run it with node (e.g. node ${relative(process.cwd(), entry)} scan <path>)`,
  );
}
