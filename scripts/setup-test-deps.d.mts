// Types of scripts/setup-test-deps.mjs for the tests that import it (the script itself runs on plain Node).

export interface SystemRequirement {
  /** What the tests need it for, in words. */
  need: string;
  /** The Debian package that provides it. */
  apt: string;
  /** An executable looked up on PATH. */
  command?: string;
  /** An executable that must be statically linked. */
  staticBinary?: string;
  /** A file that must exist. */
  file?: string;
}

export type SystemInstallPlan =
  { action: 'none' } | { action: 'install'; packages: string[] } | { action: 'fail'; message: string };

export const SYSTEM_REQUIREMENTS: SystemRequirement[];
export function findOnPath(name: string, path: string | undefined): string | undefined;
export function isStaticElf(file: string): boolean;
export function missingRequirements(requirements?: SystemRequirement[], path?: string): SystemRequirement[];
export function aptPackages(missing: SystemRequirement[]): string[];
export function planSystemInstall(
  missing: SystemRequirement[],
  host: { isRoot: boolean; aptGet: boolean },
): SystemInstallPlan;
export function pythonRequirementsCurrent(venvDir?: string, requirements?: string): boolean;
