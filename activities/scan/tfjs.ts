/**
 * TensorFlow.js model.json: every weight shard path must stay inside the model directory (an absolute path or URL
 * makes the loader fetch from elsewhere) and be part of the model.
 */
import { finding, type ScanFinding } from './findings';
import { kerasConfigFindings } from './keras';
import { resolveInside } from './paths';

/** True when parsed JSON has the shape of a TF.js model.json. */
export function isTfjsModel(json: unknown): json is { weightsManifest: unknown; modelTopology?: unknown } {
  return (
    typeof json === 'object' &&
    json !== null &&
    'weightsManifest' in json &&
    ('modelTopology' in json || 'format' in json)
  );
}

export function scanTfjsModel(
  json: { weightsManifest: unknown; modelTopology?: unknown },
  path: string,
  modelFiles: ReadonlySet<string>,
): { findings: ScanFinding[]; references: string[] } {
  const findings: ScanFinding[] = [];
  const references: string[] = [];
  if (!Array.isArray(json.weightsManifest))
    return { findings: [finding('tfjs.invalid', path, 'weightsManifest is not a list of weight groups')], references };
  for (const [g, group] of json.weightsManifest.entries()) {
    const paths = (group as { paths?: unknown })?.paths;
    if (!Array.isArray(paths) || paths.some((p) => typeof p !== 'string')) {
      findings.push(finding('tfjs.invalid', path, `weightsManifest[${g}].paths is not a list of strings`));
      continue;
    }
    for (const p of paths as string[]) {
      const resolved = resolveInside(path, p);
      if (!resolved) {
        findings.push(
          finding('tfjs.weights-path-escape', path, `weight shard ${JSON.stringify(p)} is outside the model directory`),
        );
        continue;
      }
      references.push(resolved);
      if (!modelFiles.has(resolved))
        findings.push(
          finding('tfjs.weights-missing', path, `weight shard ${JSON.stringify(resolved)} is not part of the model`),
        );
    }
  }
  // Layers models carry a Keras topology: the same Lambda/custom-object checks apply.
  if (json.modelTopology) findings.push(...kerasConfigFindings(json.modelTopology, path));
  return { findings, references };
}
