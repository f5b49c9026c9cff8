/** The pricing catalog, the policy's cost section and the traffic profile: valid files load, bad ones say what to fix. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseTraffic } from '../../activities/cost/traffic';
import { ConfigError } from '../../config/loader';
import { costPolicyRoles, parseCostPolicy } from '../../activities/cost/policy';
import { DEFAULT_PRICING_FILE, loadPricing } from '../../config/pricing';
import { test } from './fixtures';

describe('config/pricing.yaml', () => {
  it('loads, with CPU and GPU types, dated prices and a content digest', async () => {
    const catalog = await loadPricing(DEFAULT_PRICING_FILE);
    expect(catalog.pricesTakenAt).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(catalog.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(catalog.instanceTypes.some((t) => t.gpu)).toBe(true);
    expect(catalog.instanceTypes.some((t) => !t.gpu)).toBe(true);
    expect(new Set(catalog.instanceTypes.map((t) => t.provider))).toEqual(new Set(['aws', 'gcp']));
    const reference = catalog.instanceTypes.find((t) => t.name === catalog.reference.instanceType);
    expect(reference?.relativeThroughput).toBe(1);
  });

  test('a bad catalog names the file and each bad field', async ({ tmp }) => {
    const file = join(tmp, 'pricing.yaml');
    await writeFile(
      file,
      [
        'currency: USD',
        'pricesTakenAt: last tuesday',
        'source: x',
        'reference: { instanceType: nope, description: x }',
        'backends: { tensorflow: 1 }',
        'storage: { pricePerGiBMonth: 0.1 }',
        'instanceTypes:',
        '  - { name: a.large, provider: aws, region: r, vcpu: 2, memoryGiB: 8, relativeThroughput: 1, onDemandHourly: -1 }',
        '  - { name: b.large, provider: aws, region: r, vcpu: 2, memoryGiB: 8, relativeThroughput: 1, onDemandHourly: 0.1, spotHourly: 0.5 }',
      ].join('\n'),
    );
    const err = await loadPricing(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toContain('pricesTakenAt: must be a date (YYYY-MM-DD): when the prices were taken');
    expect(problems).toContain('instanceTypes[0].onDemandHourly: must be > 0 (USD per hour)');
    expect(problems).toContain('instanceTypes[1].spotHourly: (0.5) is above onDemandHourly (0.1); check the prices');
    expect(problems).toContain('reference.instanceType: "nope" is not among instanceTypes; name the reference machine');
    expect((err as Error).message).toContain(`${file}: pricesTakenAt`);
  });

  test('a missing catalog says how to provide one', async ({ tmp }) => {
    await expect(loadPricing(join(tmp, 'none.yaml'))).rejects.toThrow(
      /none\.yaml: not found; create the pricing catalog/,
    );
  });
});

describe('policy cost section', () => {
  it('defaults every field', () => {
    const parsed = parseCostPolicy(undefined);
    expect(parsed).toMatchObject({
      policy: {
        headroom: 0.3,
        slo: { latencyMs: 500, percentile: 0.95 },
        purchase: 'on-demand',
        reviewRole: 'finops',
        unbudgeted: 'pass',
        riskPremium: { incidentCost: 25_000, monthlyIncidentProbability: { pass: 0.001, warn: 0.01, missing: 0.03 } },
      },
    });
  });

  it('names each bad field under cost.', () => {
    const parsed = parseCostPolicy({
      headroom: -1,
      budgets: { teams: { nlp: { soft: 5000, hard: 1000 } } },
      purchase: 'reserved',
    });
    expect(parsed).toEqual({
      problems: expect.arrayContaining([
        'cost.headroom: must be ≥ 0 (0.3 = 30% above peak)',
        'cost.budgets.teams.nlp.soft: soft must be ≤ hard; raise hard or lower soft',
        'cost.purchase: must be on-demand or spot',
      ]),
    });
  });

  it('lists the roles it names, for the check against approvers.yaml', () => {
    const parsed = parseCostPolicy({
      budgets: { teams: { nlp: { soft: 1, hard: 2, reviewRole: 'cfo' } }, default: { soft: 1, hard: 2 } },
    });
    expect('policy' in parsed && costPolicyRoles(parsed.policy)).toEqual(['finops', 'cfo']);
  });
});

describe('request.traffic', () => {
  it('applies defaults to a declared profile', () => {
    expect(parseTraffic({ averageRequestsPerSecond: 5, peakRequestsPerSecond: 20 })).toEqual({
      averageRequestsPerSecond: 5,
      peakRequestsPerSecond: 20,
      hoursPerDay: 24,
      daysPerMonth: 30.4,
    });
  });

  it('names missing, negative and inconsistent fields', () => {
    expect(() => parseTraffic(undefined)).toThrow(/request\.traffic is missing/);
    try {
      parseTraffic({ averageRequestsPerSecond: -1, tokensPerRequest: 10, rowsPerRequest: 2, hoursPerDay: 30 });
      expect.unreachable();
    } catch (err) {
      expect((err as { problems: string[] }).problems).toEqual(
        expect.arrayContaining([
          'request.traffic.averageRequestsPerSecond: must be ≥ 0 (requests per second, averaged over the hours of operation)',
          'request.traffic.hoursPerDay: must be ≤ 24',
          'request.traffic.rowsPerRequest: give tokensPerRequest (language models) or rowsPerRequest (others), not both',
          'request.traffic.peakRequestsPerSecond: is required when no history is given',
        ]),
      );
    }
    expect(() => parseTraffic({ averageRequestsPerSecond: 50, peakRequestsPerSecond: 10 })).toThrow(
      /request\.traffic\.peakRequestsPerSecond: \(10\) must be ≥ averageRequestsPerSecond \(50\)/,
    );
  });

  it('accepts a Prometheus history without declared rates, and checks its fields', () => {
    const t = parseTraffic({ history: { prometheus: { url: 'http://127.0.0.1:9090', query: 'sum(rate(x[5m]))' } } });
    expect(t.history).toEqual({
      prometheus: { url: 'http://127.0.0.1:9090', query: 'sum(rate(x[5m]))', start: 'now-28d', end: 'now', step: '1h' },
    });
    expect(() => parseTraffic({ history: { prometheus: { url: 'x', query: 'q', step: 'often' } } })).toThrow(
      /request\.traffic\.history\.prometheus\.url: must be the Prometheus base URL.*request\.traffic\.history\.prometheus\.step: must be a positive duration/,
    );
    expect(() => parseTraffic({ history: {} })).toThrow(/request\.traffic\.history: give either csv or prometheus/);
  });
});
