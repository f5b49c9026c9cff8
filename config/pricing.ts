/**
 * The hardware catalog (config/pricing.yaml): instance types with their size, relative throughput and prices, and
 * the date the prices were taken. Validated at load; every error names the file and the field.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { zodProblems } from '../contract/problems';
import { ConfigError, DEFAULT_CONFIG_DIR, readYamlFile } from './loader';

const date = z.iso.date({ message: 'must be a date (YYYY-MM-DD): when the prices were taken' });
const price = z.number({ message: 'must be a number (USD per hour)' }).positive('must be > 0 (USD per hour)');

export const instanceTypeSchema = z
  .object({
    /** The cloud's name for it; becomes the node.kubernetes.io/instance-type node selector. */
    name: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, "use the provider's instance type name, e.g. m7i.xlarge"),
    provider: z.string().min(1),
    region: z.string().min(1),
    vcpu: z.number().int().positive(),
    memoryGiB: z.number().positive(),
    gpu: z
      .object({
        model: z.string().min(1),
        count: z.number().int().positive(),
        memoryGiB: z.number().positive('must be > 0 (memory of one GPU)'),
      })
      .strict()
      .optional(),
    /** Throughput relative to the catalog's reference machine (1.0) for dense model inference. */
    relativeThroughput: z.number().positive('must be > 0 (the reference machine is 1.0)'),
    onDemandHourly: price,
    /** Absent when the provider sells no spot/preemptible capacity of this type. */
    spotHourly: price.optional(),
    /** When these prices were taken, if not the catalog's `pricesTakenAt`. */
    pricesTakenAt: date.optional(),
  })
  .strict();

export const pricingCatalogSchema = z
  .object({
    currency: z.literal('USD', { message: 'only USD is supported' }),
    pricesTakenAt: date,
    source: z.string().min(1, 'say where the prices come from'),
    /** What relativeThroughput 1.0 means. */
    reference: z.object({ description: z.string().min(1), instanceType: z.string().min(1) }).strict(),
    /**
     * Throughput of each evaluation backend relative to the reference machine: a measured rows/s on backend `b`
     * is divided by `backends[b]` to get the reference machine's rate.
     */
    backends: z.record(z.string().min(1), z.number().positive('must be > 0 (relative to the reference machine)')),
    storage: z.object({ pricePerGiBMonth: z.number().nonnegative() }).strict(),
    instanceTypes: z.array(instanceTypeSchema).min(1, 'list at least one instance type'),
  })
  .strict()
  .superRefine((catalog, ctx) => {
    const seen = new Map<string, number>();
    catalog.instanceTypes.forEach((t, i) => {
      const key = `${t.provider}/${t.region}/${t.name}`;
      const first = seen.get(key);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['instanceTypes', i, 'name'],
          message: `"${t.name}" in ${t.provider} ${t.region} is listed twice (also instanceTypes[${first}]); keep one`,
        });
      } else seen.set(key, i);
      if (t.spotHourly !== undefined && t.spotHourly > t.onDemandHourly) {
        ctx.addIssue({
          code: 'custom',
          path: ['instanceTypes', i, 'spotHourly'],
          message: `(${t.spotHourly}) is above onDemandHourly (${t.onDemandHourly}); check the prices`,
        });
      }
    });
    if (!catalog.instanceTypes.some((t) => t.name === catalog.reference.instanceType)) {
      ctx.addIssue({
        code: 'custom',
        path: ['reference', 'instanceType'],
        message: `"${catalog.reference.instanceType}" is not among instanceTypes; name the reference machine`,
      });
    }
  });

export type InstanceType = z.infer<typeof instanceTypeSchema>;
export type PricingCatalogData = z.infer<typeof pricingCatalogSchema>;

/** A validated catalog with where it came from, so evidence can name it by content digest. */
export interface PricingCatalog extends PricingCatalogData {
  file: string;
  digest: string;
}

export const DEFAULT_PRICING_FILE = join(DEFAULT_CONFIG_DIR, 'pricing.yaml');

/** Validates catalog data (already parsed); throws ConfigError naming `file` and each bad field. */
export function parsePricing(data: unknown, file: string, digest = ''): PricingCatalog {
  const parsed = pricingCatalogSchema.safeParse(data);
  if (!parsed.success) throw new ConfigError(file, zodProblems(parsed.error));
  return { ...parsed.data, file, digest };
}

/** Loads and validates config/pricing.yaml (or `path`). */
export async function loadPricing(path = DEFAULT_PRICING_FILE): Promise<PricingCatalog> {
  const loaded = await readYamlFile(path, path, 'create the pricing catalog or point MREL_PRICING_FILE at one');
  return parsePricing(loaded.data, loaded.file, loaded.digest);
}

/** The hourly price of a type for a purchase option; undefined when spot is asked for and not sold. */
export function hourlyPrice(type: InstanceType, purchase: 'on-demand' | 'spot'): number | undefined {
  return purchase === 'spot' ? type.spotHourly : type.onDemandHourly;
}
