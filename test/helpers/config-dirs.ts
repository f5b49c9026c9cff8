/**
 * The two config directories of the tests. Releases in integration tests run on the tests' own approvers and
 * policies (vitest.config.ts sets MREL_CONFIG_DIR to FIXTURE_CONFIG_DIR for that project), so that editing the
 * shipped demo config changes no test's outcome. Tests of the shipped config itself (it loads; the README's examples
 * run on it) name SHIPPED_CONFIG_DIR.
 */
import { fileURLToPath } from 'node:url';

export const FIXTURE_CONFIG_DIR = fileURLToPath(new URL('../fixtures/config/', import.meta.url));

export const SHIPPED_CONFIG_DIR = fileURLToPath(new URL('../../config/', import.meta.url));
