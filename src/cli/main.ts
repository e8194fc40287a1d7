// `temper <command>`: dispatches to one file per command. No training logic here.
import { TemperError } from '../tensor/index.js';
import { fsError, fsErrorCode } from '../io/index.js';

const HELP = `temper: LLM post-training native to TypeScript

Usage: temper <command> [options]

Commands:
  demo            the built-in default: LoRA fine-tune a tiny model on CPU, accuracy before/after
  sft             supervised fine-tuning (full or LoRA) from a YAML config and/or flags
  merge-lora      merge a PEFT LoRA adapter into its base model
  merge           merge models with a mergekit YAML (linear, ties, dare, slerp, ...)
  report          write report.html for a run folder
  builtin         list the built-in model and datasets (builtin:NAME)
  generate        stream a completion from a model folder or hub id
  tokenize        print the token ids of a text (one JSON array)
  chat-template   render a conversation with a tokenizer's chat template
  bench           benchmarks against PyTorch in the same run: ops, train, generate, sft, merge

Options:
  -h, --help     show help (also: temper <command> --help)
  --version      print the version

Flags are snake_case (--max_steps), as TRL's keys; --max-steps is accepted too.

Environment:
  TEMPER_NUM_THREADS   threads for native kernels and the BLAS (default: all cores)
  TEMPER_DEVICE        default device of new tensors (cpu, cuda, cuda:N)
  HF_HOME              Hugging Face cache root (hub downloads go to $HF_HOME/hub)
  HF_TOKEN             token for gated or private hub repositories
`;

const COMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  demo: async () => (await import('./demo.js')).demoCommand,
  sft: async () => (await import('./sft.js')).sftCommand,
  'merge-lora': async () => (await import('./merge_lora.js')).mergeLoraCommand,
  merge: async () => (await import('./merge.js')).mergeCommand,
  report: async () => (await import('./report.js')).reportCommand,
  builtin: async () => (await import('./builtin.js')).builtinCommand,
  bench: async () => (await import('./bench.js')).benchCommand,
  generate: async () => (await import('./generate.js')).generateCommand,
  tokenize: async () => (await import('./tokenize.js')).tokenizeCommand,
  'chat-template': async () => (await import('./chat_template.js')).chatTemplateCommand,
};

export async function run(argv: string[]): Promise<number> {
  try {
    const [cmd, ...rest] = argv;
    if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    if (cmd === '--version') {
      const { createRequire } = await import('node:module');
      process.stdout.write(`${createRequire(import.meta.url)('../../../package.json').version}\n`);
      return 0;
    }
    const command = COMMANDS[cmd];
    if (!command) throw new TemperError(`unknown command '${cmd}'. Run 'temper --help' for the list.`);
    return await (await command())(rest);
  } catch (e) {
    // A file-system failure nobody named (a full disk mid-write, …) is still one line, with its path.
    const err = fsErrorCode(e) && !(e instanceof TemperError) ? fsError((e as NodeJS.ErrnoException).path ?? 'file system', e) : e;
    if (err instanceof TemperError) {
      process.stderr.write(`temper: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
