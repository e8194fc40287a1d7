// `tokenizer_source: union` (mergekit `tokenizer/embed.py`): the output vocabulary is the
// base tokenizer's, then every token another model has and it lacks, appended in model
// order. Each model's embedding-like tensor is permuted into that vocabulary; a token a
// model lacks takes the base model's row, else the one model that has it, else the mean
// over the models that have it (zeros when none does). Not token overrides (`tokens:`).
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError } from '../tensor/index.js';
import { readJsonFile } from '../io/json.js';

export interface Vocab {
  /** token string -> id */
  idOf: Map<string, number>;
  /** Added tokens marked special. */
  special: Set<string>;
}

const readJson = (path: string) => readJsonFile(path) as Record<string, unknown>;

/** The vocabulary of a model folder's tokenizer.json (model vocab plus added tokens). */
export function readVocab(dir: string, ref: string): Vocab {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) throw new TemperError(`merge: tokenizer_source union needs tokenizer.json in every model; '${ref}' has none (${dir})`);
  const tj = readJson(path);
  const idOf = new Map<string, number>();
  const model = tj.model as { vocab?: unknown } | undefined;
  const vocab = model?.vocab;
  if (Array.isArray(vocab)) vocab.forEach((e, i) => idOf.set(String((e as [string, number])[0]), i)); // Unigram: [token, score]
  else if (vocab && typeof vocab === 'object') for (const [t, id] of Object.entries(vocab as Record<string, number>)) idOf.set(t, id);
  else throw new TemperError(`${path}: no model.vocab to read the vocabulary from`);
  const special = new Set<string>();
  for (const a of (tj.added_tokens as { id: number; content: string; special?: boolean }[] | undefined) ?? []) {
    idOf.set(a.content, a.id);
    if (a.special) special.add(a.content);
  }
  return { idOf, special };
}

export interface UnionVocab {
  /** Output id -> token. */
  tokens: string[];
  /** Tokens appended after the base's vocabulary, with their output ids. */
  added: { id: number; token: string; special: boolean }[];
  /** Rows of embedding-like output tensors (tokens, rounded up to pad_to_multiple_of). */
  rows: number;
}

/** The union vocabulary: the base's ids unchanged, then the others' new tokens in order. */
export function unionVocab(base: Vocab, others: Vocab[], padToMultipleOf: number | null): UnionVocab {
  const tokens: string[] = [];
  for (const [t, id] of base.idOf) tokens[id] = t;
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === undefined) tokens[i] = '';
  const seen = new Set(base.idOf.keys());
  const added: UnionVocab['added'] = [];
  for (const v of others) {
    for (const [t] of [...v.idOf].sort((a, b) => a[1] - b[1])) {
      if (seen.has(t)) continue;
      seen.add(t);
      added.push({ id: tokens.length, token: t, special: v.special.has(t) });
      tokens.push(t);
    }
  }
  const m = padToMultipleOf ?? 1;
  return { tokens, added, rows: Math.ceil(tokens.length / m) * m };
}

/**
 * Each input's (V_i, C) matrix permuted into the union's (rows, C). `inputs[0]` is the base
 * when `hasBase`. Padding rows past the vocabulary get each matrix's mean row.
 */
export function permuteEmbeddings(u: UnionVocab, inputs: { data: Float32Array; rows: number; vocab: Vocab }[], C: number, hasBase: boolean): Float32Array[] {
  const V = u.tokens.length;
  const out = inputs.map(() => new Float32Array(u.rows * C));
  const rowOf = (x: (typeof inputs)[number], t: string): number | null => {
    const id = x.vocab.idOf.get(t);
    return id !== undefined && id < x.rows ? id : null;
  };
  for (let t = 0; t < V; t++) {
    const tok = u.tokens[t]!;
    const have = inputs.map((x) => rowOf(x, tok));
    // Fallback for models without the token: base's row, else the single holder's, else the mean.
    let fallback: Float32Array | null = null;
    if (have.some((r) => r === null)) {
      fallback = new Float32Array(C);
      const holders = inputs.map((x, i) => [x, have[i]] as const).filter(([, r]) => r !== null);
      const pick = hasBase && have[0] !== null ? [holders.find(([x]) => x === inputs[0])!] : holders;
      for (const [x, r] of pick) for (let c = 0; c < C; c++) fallback[c]! += x.data[r! * C + c]! / pick.length;
    }
    inputs.forEach((x, i) => {
      const r = have[i];
      if (r !== null && r !== undefined) out[i]!.set(x.data.subarray(r * C, (r + 1) * C), t * C);
      else out[i]!.set(fallback!, t * C);
    });
  }
  if (u.rows > V) {
    out.forEach((o) => {
      const mean = new Float32Array(C);
      for (let t = 0; t < V; t++) for (let c = 0; c < C; c++) mean[c]! += o[t * C + c]! / V;
      for (let t = V; t < u.rows; t++) o.set(mean, t * C);
    });
  }
  return out;
}

/** Writes the base's tokenizer.json / tokenizer_config.json with the union's new tokens added. */
export function writeUnionTokenizer(baseDir: string, outDir: string, u: UnionVocab): void {
  const tj = readJson(join(baseDir, 'tokenizer.json'));
  const added = ((tj.added_tokens as Record<string, unknown>[] | undefined) ?? []).slice();
  for (const a of u.added) added.push({ id: a.id, content: a.token, single_word: false, lstrip: false, rstrip: false, normalized: !a.special, special: a.special });
  writeFileSync(join(outDir, 'tokenizer.json'), JSON.stringify({ ...tj, added_tokens: added }));
  const cfgPath = join(baseDir, 'tokenizer_config.json');
  if (existsSync(cfgPath)) {
    const cfg = readJson(cfgPath);
    const dec = { ...((cfg.added_tokens_decoder as Record<string, unknown> | undefined) ?? {}) };
    for (const a of u.added) dec[String(a.id)] = { content: a.token, lstrip: false, normalized: !a.special, rstrip: false, single_word: false, special: a.special };
    writeFileSync(join(outDir, 'tokenizer_config.json'), JSON.stringify({ ...cfg, added_tokens_decoder: dec }, null, 2) + '\n');
  }
}
