// Reading the JSON files of model and tokenizer folders, with errors that name the file.
import { readFileSync } from 'node:fs';
import { TemperError } from '../tensor/index.js';

/** The parsed contents of a JSON file; a clear error when it cannot be read or parsed. */
export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TemperError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TemperError(`${path}: not valid JSON (${(e as Error).message})`);
  }
}
