/**
 * Modes for everything a worker keeps at rest (artifact store, evidence, manifests, GitOps clones): models and their
 * evidence are private to the service's user, whatever the process umask says (Node's default leaves them
 * world-readable).
 */
export const PRIVATE_DIR = 0o700;
export const PRIVATE_FILE = 0o600;
