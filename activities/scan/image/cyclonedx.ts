/**
 * The SBOM of a scanned image as CycloneDX 1.6 JSON (https://cyclonedx.org/docs/1.6/json/): the image itself as the
 * `metadata.component` (a container, versioned by its digest), its operating system, every package found (with
 * purl, where it was found, and license), and the vulnerabilities that affect them with their ratings.
 */
import { randomUUID } from 'node:crypto';
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
  timestamp: string;
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

/** Builds the BOM. */
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
  return {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: input.timestamp,
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
}
