// `temper report DIR`: (re)writes DIR/report.html from DIR/metrics.jsonl, also for a run
// still in progress, and prints its path.
import { TemperError } from '../tensor/index.js';
import { writeReport } from '../train/index.js';

export const REPORT_HELP = `Usage: temper report OUTPUT_DIR

Writes OUTPUT_DIR/report.html (self-contained: charts of loss, eval loss, learning rate,
gradient norm and throughput, plus the run's configuration) from OUTPUT_DIR/metrics.jsonl.
`;

export async function reportCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(REPORT_HELP);
    return 0;
  }
  if (argv.length !== 1) throw new TemperError('report: expected exactly one argument, the run folder (output_dir)');
  process.stdout.write(`${writeReport(argv[0]!)}\n`);
  return 0;
}
