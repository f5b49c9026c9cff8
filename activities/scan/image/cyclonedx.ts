/**
 * The SBOM of a scanned image as CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/): the image itself as the
 * `metadata.component` (a container, versioned by its digest), its operating system, every package found (with
 * purl, where it was found, and license), and the vulnerabilities that affect them with their ratings.
 *
 * Byte-stable: the serial number is derived from the BOM's content and the only time is the one the caller passes,
 * so a retried image gate stores an identical SBOM under the same digest, and the release's evidence bundle does not
 * change with the attempt that produced it.
 */
import { createHash } from 'node:crypto';
import type { OsRelease, Package } from './packages';
import type { VulnerabilityMatch } from './match';

/** A CycloneDX 1.6 BOM, as plain JSON. */
export type CycloneDxBom = Record<string, unknown> & { bomFormat: 'CycloneDX'; specVersion: '1.6' };

export interface SbomInput {
  image: { registry: string; repository: string; digest: string; tag?: string };
  os?: OsRelease;
  packages: Package[];
  vulnerabilities: VulnerabilityMatch[];
  toolVersion: string;
  /** `metadata.timestamp`, when the caller has a time that is part of its input; omitted otherwise (it is optional). */
  timestamp?: string;
}

/** The namespace of modelrelease's SBOM serial numbers (a fixed random UUID, as RFC 9562 suggests for v5 names). */
const SERIAL_NAMESPACE = '6f0e4c53-2a1b-4c3e-9d57-1b8e5a7c2f90';

/**
 * A name-based UUID (RFC 9562 version 5: SHA-1 over namespace and name, version and variant bits set), so that the
 * same content always gets the same `urn:uuid:` serial number and different content a different one.
 */
export function nameBasedUuid(name: string, namespace: string = SERIAL_NAMESPACE): string {
  const hash = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name, 'utf8')
    .digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Unique and stable within one BOM: the same package can sit in the image and in a lock file. */
function componentRef(p: Pick<Package, 'purl' | 'location'>): string {
  return `${p.purl}|${p.location}`;
}

function ratingMethod(vector: string | undefined): string | undefined {
  if (!vector) return undefined;
  if (vector.startsWith('CVSS:4.0')) return 'CVSSv4';
  if (vector.startsWith('CVSS:3.1')) return 'CVSSv31';
  if (vector.startsWith('CVSS:3.0')) return 'CVSSv3';
  return 'CVSSv2';
}

function advisoryUrl(id: string): string {
  return `https://osv.dev/vulnerability/${encodeURIComponent(id)}`;
}

/** Builds the BOM; the same input gives the same bytes once serialised. */
export function buildCycloneDx(input: SbomInput): CycloneDxBom {
  const imageName = `${input.image.registry}/${input.image.repository}`;
  const lastSegment = input.image.repository.split('/').pop() ?? input.image.repository;
  const imageRef = 'image';
  const components: Record<string, unknown>[] = [];
  if (input.os) {
    components.push({
      type: 'operating-system',
      'bom-ref': 'os',
      name: input.os.id,
      ...(input.os.versionId ? { version: input.os.versionId } : {}),
      ...(input.os.prettyName ? { description: input.os.prettyName } : {}),
    });
  }
  const seen = new Set<string>();
  for (const p of input.packages) {
    const ref = componentRef(p);
    if (seen.has(ref)) continue;
    seen.add(ref);
    const properties = [
      { name: 'modelrelease:location', value: p.location },
      { name: 'modelrelease:ecosystem', value: p.ecosystem },
      ...(p.advisoryName !== p.name ? [{ name: 'modelrelease:source-package', value: p.advisoryName }] : []),
      ...(p.layer !== undefined ? [{ name: 'modelrelease:layer', value: String(p.layer) }] : []),
    ];
    components.push({
      type: 'library',
      'bom-ref': ref,
      name: p.name,
      version: p.version,
      purl: p.purl,
      ...(p.license ? { licenses: [{ license: { name: p.license } }] } : {}),
      properties,
    });
  }
  const vulnerabilities = input.vulnerabilities.map((v, i) => {
    const method = ratingMethod(v.vector);
    return {
      'bom-ref': `vuln-${i + 1}`,
      id: v.id,
      source: { name: v.sources.includes('osv') ? 'OSV' : 'trivy', url: advisoryUrl(v.advisoryIds[0] ?? v.id) },
      ...(v.aliases.filter((a) => a !== v.id).length > 0
        ? { references: v.aliases.filter((a) => a !== v.id).map((a) => ({ id: a, source: { url: advisoryUrl(a) } })) }
        : {}),
      ratings: [
        {
          ...(v.score !== undefined ? { score: v.score } : {}),
          severity: v.severity,
          ...(method ? { method, vector: v.vector } : { method: 'other' }),
        },
      ],
      description: v.summary,
      ...(v.fixed ? { recommendation: `Upgrade ${v.package.name} to ${v.fixed} or later` } : {}),
      affects: [{ ref: componentRef(v.package), versions: [{ version: v.package.version, status: 'affected' }] }],
      properties: [{ name: 'modelrelease:sources', value: v.sources.join(',') }],
    };
  });
  const body = {
    metadata: {
      ...(input.timestamp !== undefined ? { timestamp: input.timestamp } : {}),
      tools: { components: [{ type: 'application', name: 'modelrelease image gate', version: input.toolVersion }] },
      component: {
        type: 'container',
        'bom-ref': imageRef,
        name: imageName,
        version: input.image.digest,
        purl: `pkg:oci/${encodeURIComponent(lastSegment)}@${encodeURIComponent(input.image.digest)}?repository_url=${encodeURIComponent(imageName)}${input.image.tag ? `&tag=${encodeURIComponent(input.image.tag)}` : ''}`,
      },
    },
    components,
    dependencies: [{ ref: imageRef, dependsOn: components.map((c) => c['bom-ref'] as string) }],
    vulnerabilities,
  };
  // The body names the image digest and the tool version, so the serial differs whenever either (or anything else
  // in the BOM) does.
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${nameBasedUuid(JSON.stringify(body))}`,
    version: 1,
    ...body,
  };
}
