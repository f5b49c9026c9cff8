/**
 * TensorFlow.js model.json: every weight shard path must stay inside the model directory (an absolute path or URL
 * makes the loader fetch from elsewhere) and be part of the model. The manifest is read by the shared format reader,
 * so a manifest the cost gate cannot size is one the scanner reports as malformed.
 */
import { FormatError } from '../formats/errors';
import { isTfjsModel, readTfjsManifest, tfjsShardPath } from '../formats/tfjs';
import { finding, type ScanFinding } from './findings';
import { kerasConfigFindings } from './keras';

export { isTfjsModel };

export function scanTfjsModel(
  json: { weightsManifest: unknown; modelTopology?: unknown },
  path: string,
  modelFiles: ReadonlySet<string>,
): { findings: ScanFinding[]; references: string[] } {
  const findings: ScanFinding[] = [];
  const references: string[] = [];
  let groups;
  try {
    const manifest = readTfjsManifest(json, path);
    groups = manifest.groups;
    for (const issue of manifest.issues) findings.push(finding('tfjs.invalid', path, issue));
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    return { findings: [finding('tfjs.invalid', path, err.reason)], references };
  }
  for (const group of groups) {
    for (const p of group.paths ?? []) {
      const resolved = tfjsShardPath(path, p);
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
