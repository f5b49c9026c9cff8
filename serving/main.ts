/**
 * The model server's process: `node serving/main.js` in its image (built from this file, see serving/Dockerfile),
 * `npm run serve` or `npx tsx serving/main.ts` here. Settings from the environment and flags (serving/options.ts).
 * Prints `listening on http://<host>:<port>` once bound (port 0 picks a free one) and `ready …` once the verified
 * model is loaded. Exit codes: 0 after a clean shutdown, 1 when the model is refused or fails to load, 2 bad usage.
 */
import { OptionsError, parseOptions, usage } from './options';
import { ModelServer } from './server';

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(usage());
  process.exit(0);
}

let options;
try {
  options = parseOptions(argv, process.env);
} catch (err) {
  if (!(err instanceof OptionsError)) throw err;
  console.error(`modelserver: ${err.message}`);
  process.exit(2);
}

const server = new ModelServer(options, {
  info: (message) => console.log(`modelserver: ${message}`),
  error: (message) => console.error(`modelserver: ${message}`),
});

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  console.log(`modelserver: ${signal}: draining`);
  server.shutdown().then(
    () => {
      console.log('modelserver: stopped');
      process.exit(0);
    },
    (err: unknown) => {
      console.error(`modelserver: shutdown failed: ${(err as Error).message}`);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

try {
  await server.start((address) => console.log(`modelserver: listening on http://${address.address}:${address.port}`));
  const info = server.info!;
  console.log(
    `modelserver: ready: ${info.name} ${info.version} (sha256:${info.manifestDigest}) on the ${info.backend} backend`,
  );
} catch (err) {
  console.error(`modelserver: ${(err as Error).message}`);
  process.exit(1);
}
