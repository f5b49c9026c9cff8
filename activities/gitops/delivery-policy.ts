/**
 * The policy's `delivery:` section resolved for one release: the section's settings, then the environment's overrides
 * under `delivery.environments.<env>`, then the defaults below. Pure: the same policy, environment and model give the
 * same EnvironmentDelivery, which the release carries into the GitOps commit and the rollout watch.
 *
 * The schema lives with the policy file's frame (config/schema.ts, `deliveryPolicySchema`) so that a bad section
 * fails the policy at load, at the door; this module only fills in what the policy left out.
 */
import type { EnvironmentDelivery } from '../../contract/delivery';
import { ConfigError } from '../../config/loader';
import { deliveryPolicySchema, PINNED_IMAGE, type DeliveryPolicy } from '../../config/schema';
import { zodProblems } from '../../contract/problems';

export { deliveryPolicySchema, PINNED_IMAGE, type DeliveryPolicy };

/** What a policy that names no value gets. The serving image has no default: each team pins its own. */
export const DELIVERY_DEFAULTS = {
  serving: 'deployment',
  modelMount: 'image-volume',
  requestReconcile: true,
  fluxNamespace: 'flux-system',
  argocdNamespace: 'argocd',
  rolloutTimeout: '10m',
  onStall: 'rollback',
  pauseTimeout: '4h',
  pauseOnTimeout: 'rollback',
} as const;

/** The parts of a loaded policy that delivery is resolved from (a LoadedPolicy fits). */
export interface DeliveryPolicySource {
  /** The `delivery:` section as loaded, or as carried in ReleaseConfig.gatePolicies (checked again here). */
  delivery?: unknown;
  /** The pause path defaults to the people who may approve the environment. */
  approval: { environments: Readonly<Record<string, { allowedRoles: readonly string[] }>> };
}

/**
 * The delivery of `model` to `environment`, or undefined when the policy has no `delivery:` section (such releases
 * render as before delivery was configurable). Flux Kustomizations and Argo CD Applications are named
 * `<model>-<environment>` unless the policy names them. Throws ConfigError, naming the field, for a section that does
 * not pass the schema.
 */
export function resolveDelivery(
  policy: DeliveryPolicySource,
  environment: string,
  model: string,
  file = 'policy',
): EnvironmentDelivery | undefined {
  if (policy.delivery === undefined) return undefined;
  const parsed = deliveryPolicySchema.safeParse(policy.delivery);
  if (!parsed.success) throw new ConfigError(file, zodProblems(parsed.error, 'delivery'));
  const global: DeliveryPolicy = parsed.data;
  const env = global.environments?.[environment] ?? {};
  const gitops = env.gitops ?? global.gitops ?? { kind: 'none' as const };
  const defaultName = `${model}-${environment}`;
  const pause = { ...global.rollout?.pause, ...env.rollout?.pause };
  const modelMount = env.modelMount ?? global.modelMount ?? DELIVERY_DEFAULTS.modelMount;
  const pullerImage = env.pullerImage ?? global.pullerImage;
  return {
    serving: env.serving ?? global.serving ?? DELIVERY_DEFAULTS.serving,
    modelMount,
    servingImage: env.servingImage ?? global.servingImage,
    // Only where it is used: a puller named for other environments does not enter this one's commit and evidence.
    ...(modelMount === 'init-container' && pullerImage !== undefined ? { pullerImage } : {}),
    gitops:
      gitops.kind === 'flux'
        ? {
            kind: 'flux',
            namespace: gitops.namespace ?? DELIVERY_DEFAULTS.fluxNamespace,
            kustomization: gitops.kustomization ?? defaultName,
            ...(gitops.gitRepository === undefined ? {} : { gitRepository: gitops.gitRepository }),
          }
        : gitops.kind === 'argocd'
          ? {
              kind: 'argocd',
              namespace: gitops.namespace ?? DELIVERY_DEFAULTS.argocdNamespace,
              application: gitops.application ?? defaultName,
            }
          : { kind: 'none' },
    requestReconcile: env.requestReconcile ?? global.requestReconcile ?? DELIVERY_DEFAULTS.requestReconcile,
    rollout: {
      timeout: env.rollout?.timeout ?? global.rollout?.timeout ?? DELIVERY_DEFAULTS.rolloutTimeout,
      onStall: env.rollout?.onStall ?? global.rollout?.onStall ?? DELIVERY_DEFAULTS.onStall,
      pause: {
        roles: [...(pause.roles ?? policy.approval.environments[environment]?.allowedRoles ?? [])],
        timeout: pause.timeout ?? DELIVERY_DEFAULTS.pauseTimeout,
        onTimeout: pause.onTimeout ?? DELIVERY_DEFAULTS.pauseOnTimeout,
      },
    },
  };
}

/** True for `repository@sha256:<64 hex>`: an image or artifact reference that cannot move. */
export function isPinnedByDigest(reference: string): boolean {
  return PINNED_IMAGE.test(reference);
}
