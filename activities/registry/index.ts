/**
 * OCI registry access shared by every stage that pulls or pushes: the client, authentication and the Docker config
 * credentials it uses.
 */
export * from './client';
export * from './credentials';
export * from './errors';
export { parseChallenge } from './auth';
