// `temper tokenize`: token ids of a text with a model folder's tokenizer, as one JSON line.
// Only parses arguments and calls src/text; no tokenization logic here.
import { TemperError } from '../tensor/index.js';
import { readUtf8File } from '../io/index.js';
import { parseFlags } from './flags.js';
import { Tokenizer } from '../text/index.js';

export const TOKENIZE_HELP = `Usage: temper tokenize --tokenizer PATH (--text TEXT | --file FILE) [--no_special_tokens] [--decode]

Prints the token ids of the text as one JSON array, e.g. [9707,1879].

  --tokenizer PATH      model or tokenizer folder (tokenizer.json + tokenizer_config.json)
  --text TEXT           the text to tokenize
  --file FILE           read the text from FILE instead (UTF-8, taken as is)
  --no_special_tokens   do not add the special tokens of the tokenizer's post-processor (e.g. BOS)
  --decode              also print, on a second line, a JSON array with the text of each token
`;

/** Runs `temper tokenize ARGV`; returns the exit code. Throws TemperError for bad input. */
export async function tokenizeCommand(argv: string[]): Promise<number> {
  const values = parseFlags('tokenize', argv, {
    tokenizer: { type: 'string' },
    text: { type: 'string' },
    file: { type: 'string' },
    no_special_tokens: { type: 'boolean', default: false },
    decode: { type: 'boolean', default: false },
  });
  if (values.help) {
    process.stdout.write(TOKENIZE_HELP);
    return 0;
  }
  if (!values.tokenizer) throw new TemperError('tokenize: --tokenizer PATH is required (a folder with tokenizer.json)');
  if ((values.text === undefined) === (values.file === undefined)) {
    throw new TemperError('tokenize: give exactly one of --text TEXT or --file FILE');
  }
  let text = values.text;
  if (values.file !== undefined) text = readUtf8File(values.file, `tokenize: --file ${values.file}`);
  const tok = await Tokenizer.fromDir(values.tokenizer);
  const ids = tok.encode(text!, { addSpecialTokens: !values.no_special_tokens });
  process.stdout.write(`${JSON.stringify(ids)}\n`);
  if (values.decode) process.stdout.write(`${JSON.stringify(ids.map((id) => tok.decode([id])))}\n`);
  return 0;
}
