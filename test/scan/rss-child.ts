/**
 * Child process for the large-file test: scans one file and prints the findings and this process's peak RSS, so the
 * measurement belongs to the scan alone (run with tsx).
 */
import { stat } from 'node:fs/promises';
import { scanTargets } from '../../activities/scan';

const file = process.argv[2] as string;
const report = await scanTargets([{ path: 'big.pkl', file, size: (await stat(file)).size }]);
process.stdout.write(
  JSON.stringify({
    findings: report.findings,
    formats: report.files.map((f) => f.format),
    maxRss: process.resourceUsage().maxRSS * 1024,
  }),
);
