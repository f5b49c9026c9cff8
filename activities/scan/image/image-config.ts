/**
 * Checks on the image config (the JSON blob the manifest points to): who the container runs as, secrets baked into
 * environment variables, the OCI labels that say where the image came from, and the ports it exposes. Secret values
 * are never copied into findings or evidence.
 */
import type { Severity } from '../../../contract/types';
import type { ScanProblem } from './layers';

/** The parts of an OCI/Docker image config this gate reads. */
export interface ImageConfigBlob {
  architecture?: string;
  os?: string;
  created?: string;
  config?: {
    User?: string;
    Env?: string[] | null;
    Labels?: Record<string, string> | null;
    ExposedPorts?: Record<string, object> | null;
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
  };
  rootfs?: { type: string; diff_ids: string[] };
  history?: { created_by?: string; empty_layer?: boolean }[];
}

/** What the evidence records about the config. */
export interface ConfigFacts {
  user: string;
  runsAsRoot: boolean;
  labels: Record<string, string>;
  exposedPorts: string[];
  envNames: string[];
  secretEnvNames: string[];
  os?: string;
  architecture?: string;
  created?: string;
}

export interface ConfigCheckOptions {
  rootSeverity: Severity;
  secretSeverity: Severity;
  /** OCI labels whose absence is reported (info). */
  requiredLabels: string[];
}

const SECRET_NAME = /(^|_)(PASS(WORD|WD)?|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH)(_|$)/i;
// Names that point at a secret rather than holding one.
const REFERENCE_NAME = /_(FILE|PATH|DIR|URL_FILE|ENDPOINT|HEADER|TYPE)$/i;
const SECRET_VALUES: { kind: string; pattern: RegExp }[] = [
  { kind: 'AWS access key id', pattern: /\b(AKIA|ASIA)[0-9A-Z]{16}\b/ },
  { kind: 'GitHub token', pattern: /\bgh[pousr]_[A-Za-z0-9]{36,}\b/ },
  { kind: 'Slack token', pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,}/ },
  { kind: 'Hugging Face token', pattern: /\bhf_[A-Za-z0-9]{30,}\b/ },
  { kind: 'OpenAI-style API key', pattern: /\bsk-[A-Za-z0-9_-]{20,}/ },
  { kind: 'private key', pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/ },
  { kind: 'password in a URL', pattern: /[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i },
];

/** True when the user string means uid 0: empty, "root", "0", or either with a group. */
export function isRootUser(user: string | undefined): boolean {
  const name = (user ?? '').split(':')[0]!.trim();
  return name === '' || name === 'root' || name === '0';
}

/** Why an environment variable looks like it holds a secret, or undefined. */
export function secretReason(name: string, value: string): string | undefined {
  for (const { kind, pattern } of SECRET_VALUES) if (pattern.test(value)) return `its value looks like a ${kind}`;
  if (value.trim() !== '' && SECRET_NAME.test(name) && !REFERENCE_NAME.test(name)) {
    return 'its name says it holds a secret and it has a value';
  }
  return undefined;
}

/** Inspects the config; returns findings (as problems that do not make the scan incomplete) and facts. */
export function inspectImageConfig(
  blob: ImageConfigBlob,
  options: ConfigCheckOptions,
): { problems: ScanProblem[]; facts: ConfigFacts } {
  const config = blob.config ?? {};
  const problems: ScanProblem[] = [];
  const user = config.User ?? '';
  const runsAsRoot = isRootUser(user);
  if (runsAsRoot) {
    problems.push({
      ruleId: 'image-runs-as-root',
      severity: options.rootSeverity,
      location: 'image-config:User',
      message: `the image runs as root (User is ${user === '' ? 'not set' : `"${user}"`}); set USER to a non-root uid`,
      incomplete: false,
    });
  }
  const envNames: string[] = [];
  const secretEnvNames: string[] = [];
  for (const entry of config.Env ?? []) {
    const eq = entry.indexOf('=');
    const name = eq >= 0 ? entry.slice(0, eq) : entry;
    const value = eq >= 0 ? entry.slice(eq + 1) : '';
    envNames.push(name);
    const reason = secretReason(name, value);
    if (reason) {
      secretEnvNames.push(name);
      problems.push({
        ruleId: 'secret-in-env',
        severity: options.secretSeverity,
        location: `image-config:Env:${name}`,
        message: `environment variable ${name} is baked into the image and ${reason}; pass secrets at run time`,
        incomplete: false,
      });
    }
  }
  const labels = { ...(config.Labels ?? {}) };
  const missing = options.requiredLabels.filter((l) => !labels[l]);
  if (missing.length > 0) {
    problems.push({
      ruleId: 'oci-labels-missing',
      severity: 'info',
      location: 'image-config:Labels',
      message: `labels that trace the image to its source are missing: ${missing.join(', ')}`,
      incomplete: false,
    });
  }
  const exposedPorts = Object.keys(config.ExposedPorts ?? {}).sort();
  const privileged = exposedPorts.filter((p) => Number(p.split('/')[0]) < 1024);
  if (privileged.length > 0) {
    problems.push({
      ruleId: 'privileged-port',
      severity: 'low',
      location: 'image-config:ExposedPorts',
      message: `the image exposes ports below 1024 (${privileged.join(', ')}), which need root or CAP_NET_BIND_SERVICE`,
      incomplete: false,
    });
  }
  return {
    problems,
    facts: {
      user,
      runsAsRoot,
      labels,
      exposedPorts,
      envNames,
      secretEnvNames,
      os: blob.os,
      architecture: blob.architecture,
      created: blob.created,
    },
  };
}
