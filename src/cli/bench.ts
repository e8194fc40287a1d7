// `temper bench <suite>`: ops (core ops), train (one fine-tuning step of the llama class),
// generate (batched sampling). Each prints temper's figure, PyTorch's in the same run and
// the ratio. Only parses arguments and calls bench/.
import { parseFlags } from './flags.js';
import { TemperError } from '../tensor/index.js';
import { runOpsBench, OPS_CASES } from '../../bench/ops.js';
import { runOpsCudaBench, OPS_CUDA_CASES } from '../../bench/ops_cuda.js';
import { TRAIN_SHAPES, runGenerateBench, runTrainBench, type ShapeName } from '../../bench/models.js';
import { CUDA_TRAIN_SHAPES, DEFAULT_CUDA_SHAPE, runGenerateCudaBench, runTrainCudaBench } from '../../bench/models_cuda.js';
import { runSftBench } from '../../bench/sft.js';
import { runMergeBench } from '../../bench/merge.js';

export const BENCH_HELP = `Usage: temper bench <suite> [--json] [--no_peer] [options]

Suites (each runs temper, then the same work in PyTorch via Debian's python3-torch, and
prints both with the ratio peer_time / temper_time):
  ops        forward+backward of the core ops          [--repeats N (10)] [--cases a,b]
             cases: ${OPS_CASES.join(', ')}
             --device cuda[:N]: the same at GPU sizes vs torch on the same GPU (the peer is
             $TEMPER_TORCH_PYTHON, else python3; ms per op, TFLOP/s for matmuls); cases:
             ${OPS_CUDA_CASES.join(', ')}
  train      one full fine-tuning step (forward, loss, backward, AdamW) of the llama
             model class, f32, random weights; tokens/s, ratio, MFU vs measured sgemm
             [--shape ${Object.keys(TRAIN_SHAPES).join('|')} (tiny)] [--repeats N (5)]
  generate   batched sampling, 64 sequences x 128 new tokens on the smollm-135m shape,
             temperature 1, KV cache              [--batch B] [--new_tokens N] [--prompt_length P]
             train/generate --device cuda[:N]: vs transformers on the same GPU ($TEMPER_TORCH_PYTHON,
             else python3), both built from one config.json, random weights:
             train: one step, bf16 autocast, AdamW, clip 1.0; tokens/s, ratio, MFU vs the best
             measured 8192^3 bf16 GEMM (temper's, torch's), peak memory of both
             [--shape ${Object.keys(CUDA_TRAIN_SHAPES).join('|')} (${DEFAULT_CUDA_SHAPE})]
             [--batch B (8)] [--seq S (2048)] [--repeats N (10)] [--gradient_checkpointing] [--unfused_loss]
             generate: 256 prompts x 32 tokens -> 256 new tokens, bf16 weights, vs generate with
             a static cache [--shape ..] [--batch B] [--new_tokens N] [--prompt_length P]
             [--temperature T (0: greedy)]
  sft        SFT end to end (data, packing, step, logging) on the tiny shape vs the raw
             train step of the same shape in the same run   [--steps N (30)]
  merge      dare_ties of 3 fine-tunes of a smollm-135m-shaped model vs bench/torch_merge.py:
             wall time and peak RSS of both

  --json      one JSON object per line: {"suite","case","temper","peer","peer_name","unit","ratio",...}
  --no_peer   skip PyTorch
  --device    cpu (default), or cuda / cuda:N for ops, train and generate
`;

export async function benchCommand(argv: string[]): Promise<number> {
  const [suite, ...rest] = argv;
  if (!suite || suite === '-h' || suite === '--help' || rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(BENCH_HELP);
    return suite ? 0 : 1;
  }
  const values = parseFlags('bench', rest, {
    json: { type: 'boolean', default: false },
    repeats: { type: 'string' },
    cases: { type: 'string' },
    shape: { type: 'string' },
    seq: { type: 'string' },
    gradient_checkpointing: { type: 'boolean', default: false },
    unfused_loss: { type: 'boolean', default: false },
    temperature: { type: 'string' },
    batch: { type: 'string' },
    new_tokens: { type: 'string' },
    prompt_length: { type: 'string' },
    steps: { type: 'string' },
    no_peer: { type: 'boolean', default: false },
    device: { type: 'string', default: 'cpu' },
  });
  const device = values.device!;
  if (device !== 'cpu' && !/^cuda(:\d+)?$/.test(device)) throw new TemperError(`bench: unknown --device "${device}" (use cpu, cuda or cuda:N)`);
  if (device !== 'cpu' && ['sft', 'merge'].includes(suite))
    throw new TemperError(`bench ${suite}: --device ${device} is not supported; ops, train and generate run on CUDA.`);
  if (device === 'cpu') {
    const cudaOnly = (['seq', 'gradient_checkpointing', 'unfused_loss', 'temperature'] as const).filter((k) => values[k] !== undefined && values[k] !== false);
    if (cudaOnly.length) throw new TemperError(`bench ${suite}: ${cudaOnly.map((k) => `--${k}`).join(', ')} apply with --device cuda only`);
  }
  const posInt = (name: string, s: string | undefined, dflt: number): number => {
    if (s === undefined) return dflt;
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new TemperError(`bench: --${name} must be a positive integer, got '${s}'`);
    return n;
  };
  const peer = !values.no_peer;
  switch (suite) {
    case 'ops':
      if (device !== 'cpu') {
        await runOpsCudaBench({
          device,
          json: values.json!,
          repeats: posInt('repeats', values.repeats, 10),
          cases: values.cases ? values.cases.split(',').map((s) => s.trim()) : undefined,
          peer,
        });
        return 0;
      }
      await runOpsBench({
        json: values.json!,
        repeats: posInt('repeats', values.repeats, 10),
        cases: values.cases ? values.cases.split(',').map((s) => s.trim()) : undefined,
        peer,
      });
      return 0;
    case 'train': {
      if (device !== 'cpu') {
        runTrainCudaBench({
          device, shape: values.shape ?? DEFAULT_CUDA_SHAPE, json: values.json!, repeats: posInt('repeats', values.repeats, 10), peer,
          batch: values.batch === undefined ? undefined : posInt('batch', values.batch, 8),
          seq: values.seq === undefined ? undefined : posInt('seq', values.seq, 2048),
          checkpointing: values.gradient_checkpointing!, fusedLoss: !values.unfused_loss,
        });
        return 0;
      }
      values.shape ??= 'tiny';
      if (!(values.shape! in TRAIN_SHAPES)) throw new TemperError(`bench train: unknown --shape '${values.shape}' (${Object.keys(TRAIN_SHAPES).join(', ')})`);
      runTrainBench(values.shape as ShapeName, { json: values.json!, repeats: posInt('repeats', values.repeats, 5), peer });
      return 0;
    }
    case 'generate':
      if (device !== 'cpu') {
        const temperature = values.temperature === undefined ? 0 : Number(values.temperature);
        if (!(temperature >= 0)) throw new TemperError(`bench: --temperature must be a number >= 0, got '${values.temperature}'`);
        runGenerateCudaBench({
          device, shape: values.shape ?? DEFAULT_CUDA_SHAPE, json: values.json!, peer, temperature,
          batch: posInt('batch', values.batch, 256), newTokens: posInt('new_tokens', values.new_tokens, 256), promptLength: posInt('prompt_length', values.prompt_length, 32),
        });
        return 0;
      }
      runGenerateBench({
        json: values.json!, repeats: 1, peer,
        batch: posInt('batch', values.batch, 64), newTokens: posInt('new_tokens', values.new_tokens, 128), promptLength: posInt('prompt_length', values.prompt_length, 32),
      });
      return 0;
    case 'sft':
      await runSftBench({ json: values.json!, steps: posInt('steps', values.steps, 30) });
      return 0;
    case 'merge':
      runMergeBench({ json: values.json!, peer });
      return 0;
    default:
      throw new TemperError(`bench: unknown suite '${suite}' (available: ops, train, generate, sft, merge)`);
  }
}
