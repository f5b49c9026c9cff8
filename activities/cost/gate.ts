/**
 * The cost gate on the gate contract: the cheapest instance type and replicas that fit the model, serve the forecast
 * peak with the policy's headroom and meet the latency objective, plus the risk premium of the other gates' verdicts,
 * checked against the team's and cost center's budgets. Its typed output is the Deployment's sizing.
 */
import { basename } from 'node:path';
import { ConfigError, loadSourcePolicy } from '../../config/loader';
import { DEFAULT_PRICING_FILE, loadPricing, type PricingCatalog } from '../../config/pricing';
import type { ArtifactFile } from '../../contract/types';
import type { SourcePolicy } from '../common/source-policy';
import { CannotDecide, defineGate, InvalidPolicy, type Gate } from '../gate/gate';
import { estimateReleaseCost, GATE, type CostEstimate } from './estimate';
import { parseCostPolicy, type CostPolicy } from './policy';

export interface CostGateDeps {
  /** The pricing catalog; falls back to MREL_PRICING_FILE, then config/pricing.yaml. */
  pricingFile?: string;
  /** For Prometheus range queries (tests pass one bound to a local server). */
  fetch?: typeof fetch;
  /** Where a request's traffic history may come from; config/sources.yaml and MREL_SOURCE_* when not given. */
  sourcePolicy?: SourcePolicy;
}

export function costGate(deps: CostGateDeps): Gate<CostPolicy, CostEstimate & { catalog: PricingCatalog }> {
  const pricingFile = deps.pricingFile ?? process.env.MREL_PRICING_FILE ?? DEFAULT_PRICING_FILE;
  return defineGate({
    name: GATE,
    section: 'cost',
    activity: 'estimateCost',
    queue: 'release',
    parsePolicy(section, file) {
      const parsed = parseCostPolicy(section);
      if ('problems' in parsed) throw new InvalidPolicy(file, 'cost', parsed.problems);
      return parsed.policy;
    },
    async run(ctx) {
      let catalog: PricingCatalog;
      try {
        catalog = await loadPricing(pricingFile);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        throw new CannotDecide('cost-invalid-config', err.message, 'pricing catalog');
      }
      const located = new Map<string, string>();
      for (const file of ctx.manifest.files) located.set(file.sha256, await ctx.localFile(file.sha256));
      const estimate = await estimateReleaseCost(
        {
          releaseId: ctx.releaseId,
          request: ctx.request,
          manifest: ctx.manifest,
          policy: ctx.policy,
          waivers: ctx.waivers,
          earlier: ctx.earlier,
        },
        {
          catalog,
          locate: (file: ArtifactFile) => located.get(file.sha256) as string,
          fetch: deps.fetch,
          sourcePolicy: deps.sourcePolicy ?? (await loadSourcePolicy()),
          signal: ctx.signal,
          onProgress: (p) => ctx.progress({ ...p }),
        },
      );
      return { ...estimate, catalog };
    },
    judge({ result, evidence, catalog }) {
      const { gate: _gate, releaseId: _id, verdict: _verdict, summary: _summary, findings, ...report } = evidence;
      return {
        verdict: result.verdict,
        summary: result.summary,
        findings,
        metrics: result.metrics,
        // The catalog by name and digest: its folder is the worker's and stays out of the evidence.
        evidence: {
          ...report,
          ...(report.pricing ? { pricing: { ...report.pricing, file: basename(report.pricing.file) } } : {}),
        },
        ...(result.requiredApprovals ? { requiredApprovals: result.requiredApprovals } : {}),
        ...(result.annotations ? { annotations: result.annotations } : {}),
        ...(result.deployment ? { deployment: result.deployment } : {}),
        inputs: [{ name: basename(catalog.file), digest: `sha256:${catalog.digest}` }],
      };
    },
  });
}
