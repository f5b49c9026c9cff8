/**
 * The optional online advisory source: the OSV API (POST /v1/querybatch, then GET /v1/vulns/{id} for each hit),
 * as https://api.osv.dev serves it. Batches hold at most 1,000 queries; paged answers are followed.
 */
import type { OsvAdvisory } from './osv';
import type { Package } from './packages';

export interface OsvApiOptions {
  /** Base URL (default https://api.osv.dev). */
  url?: string;
  fetch?: typeof fetch;
  signal?: AbortSignal;
  batchSize?: number;
  /** Parallel GET /v1/vulns requests. */
  concurrency?: number;
}

interface BatchQuery {
  package: { name: string; ecosystem: string };
  version: string;
  page_token?: string;
}

interface BatchAnswer {
  results?: { vulns?: { id: string; modified?: string }[]; next_page_token?: string }[];
}

/** Asks the OSV API which advisories affect the packages, and returns those advisories in full. */
export async function queryOsvApi(packages: Package[], options: OsvApiOptions = {}): Promise<OsvAdvisory[]> {
  const base = (options.url ?? 'https://api.osv.dev').replace(/\/+$/, '');
  const doFetch = options.fetch ?? fetch;
  const batchSize = options.batchSize ?? 1000;
  const call = async (url: string, init?: RequestInit): Promise<unknown> => {
    let res: Response;
    try {
      res = await doFetch(url, { ...init, signal: options.signal ?? null });
    } catch (err) {
      throw new Error(`OSV API ${base} cannot be reached (${(err as Error).message})`, { cause: err });
    }
    if (!res.ok) throw new Error(`OSV API ${url} answered ${res.status}`);
    return res.json();
  };
  const ids = new Set<string>();
  let pending: BatchQuery[] = packages.map((p) => ({
    package: { name: p.advisoryName, ecosystem: p.ecosystem },
    version: p.version,
  }));
  while (pending.length > 0) {
    const next: BatchQuery[] = [];
    for (let i = 0; i < pending.length; i += batchSize) {
      const queries = pending.slice(i, i + batchSize);
      const answer = (await call(`${base}/v1/querybatch`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ queries }),
      })) as BatchAnswer;
      for (const [j, result] of (answer.results ?? []).entries()) {
        for (const v of result.vulns ?? []) ids.add(v.id);
        if (result.next_page_token) next.push({ ...queries[j]!, page_token: result.next_page_token });
      }
    }
    pending = next;
  }
  const list = [...ids].sort();
  const advisories: OsvAdvisory[] = [];
  const concurrency = options.concurrency ?? 8;
  for (let i = 0; i < list.length; i += concurrency) {
    const got = await Promise.all(
      list.slice(i, i + concurrency).map((id) => call(`${base}/v1/vulns/${encodeURIComponent(id)}`)),
    );
    advisories.push(...(got as OsvAdvisory[]));
  }
  return advisories;
}
