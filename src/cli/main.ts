// `temper <command>`: parses arguments and calls the library. No training logic here.
import { parseArgs } from 'node:util';
import { TemperError } from '../tensor/index.js';
import { runOpsBench, OPS_CASES } from '../../bench/ops.js';

const HELP = `temper: LLM post-training native to TypeScript

Usage: temper <command> [options]

Commands:
  bench ops      time forward+backward of the core ops against PyTorch (same machine, same run)

Options:
  -h, --help     show help (also: temper <command> --help)
  --version      print the version

Environment:
  TEMPER_NUM_THREADS   threads for native kernels and the BLAS (default: all cores)
`;

const BENCH_HELP = `Usage: temper bench ops [--json] [--repeats N] [--cases a,b] [--no-peer]

Times forward+backward of each case in temper, then the same cases in PyTorch
(bench/torch_ops.py via Debian's python3-torch; skipped with a note if absent).
Prints one line per case, or with --json one JSON object per line:
  {"suite":"ops","case":...,"temper":ms,"peer":ms,"peer_name":"torch x.y cpu","unit":"ms","ratio":peer/temper}

Cases: ${OPS_CASES.join(', ')}
  --json        JSON lines
  --repeats N   timed runs per case (median; default 10)
  --cases LIST  comma-separated subset
  --no-peer     skip PyTorch
`;

export async function run(argv: string[]): Promise<number> {
  try {
    const [cmd, sub, ...rest] = argv;
    if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    if (cmd === '--version') {
      const { createRequire } = await import('node:module');
      process.stdout.write(`${createRequire(import.meta.url)('../../../package.json').version}\n`);
      return 0;
    }
    if (cmd === 'bench') {
      if (!sub || sub === '-h' || sub === '--help' || rest.includes('--help') || rest.includes('-h')) {
        process.stdout.write(BENCH_HELP);
        return sub ? 0 : 1;
      }
      if (sub !== 'ops') throw new TemperError(`bench: unknown suite '${sub}' (available: ops)`);
      const { values } = parseArgs({
        args: rest,
        options: {
          json: { type: 'boolean', default: false },
          repeats: { type: 'string', default: '10' },
          cases: { type: 'string' },
          'no-peer': { type: 'boolean', default: false },
          device: { type: 'string', default: 'cpu' },
        },
        strict: true,
      });
      const repeats = Number(values.repeats);
      if (!Number.isInteger(repeats) || repeats < 1) throw new TemperError(`bench: --repeats must be a positive integer, got '${values.repeats}'`);
      if (values.device !== 'cpu') throw new TemperError(`bench: temper was built without CUDA: device "${values.device}" is not available (only "cpu")`);
      await runOpsBench({
        json: values.json!,
        repeats,
        cases: values.cases ? values.cases.split(',').map((s) => s.trim()) : undefined,
        peer: !values['no-peer'],
      });
      return 0;
    }
    throw new TemperError(`unknown command '${cmd}'. Run 'temper --help' for the list.`);
  } catch (e) {
    if (e instanceof TemperError || (e instanceof Error && 'code' in e && String((e as { code: unknown }).code).startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`temper: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
