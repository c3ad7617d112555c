// Llama-2 SentencePiece-BPE tokenizer (what OpenVLA's LlamaTokenizerFast runs), driven by a Hugging Face
// `tokenizer.json`, with the Llama-2 vocabulary of the `llama-tokenizer-js` package as a built-in fallback.
//
// Encoding follows the `tokenizers` (Rust) pipeline: split out added tokens (<s>, </s>, <unk>, <PAD>...) on the
// raw text; normalize each remaining segment (Llama-2 "legacy": prepend "▁", spaces -> "▁"); pre-tokenize
// (Metaspace, for non-legacy files); BPE each word: one symbol per code point, unknown code points become their
// UTF-8 bytes `<0xNN>` (byte fallback), then repeatedly apply the lowest-ranked merge, leftmost first.
// Supported: normalizers Sequence/Prepend/Replace/NFC/NFD/NFKC/NFKD/Lowercase, pre-tokenizers Metaspace/Sequence,
// decoders Sequence/Replace/ByteFallback/Fuse/Strip/Metaspace (all in tokenizer-pipeline.ts), model BPE
// (byte_fallback, unk, fuse_unk, ignore_merges). Anything else is rejected with a UserError, not guessed.
// Added tokens are matched on the raw text even when marked `normalized` (exact for Llama's special tokens);
// `single_word` is ignored.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import {
  buildDecoder,
  buildNormalizer,
  buildPreTokenizer,
  isRecord,
  METASPACE,
  unsupported,
  type DecodeStep,
  type Json,
  type StringTransform,
} from './tokenizer-pipeline.js';

export interface Tokenizer {
  /** text -> token ids; BOS is prepended unless addBos is false (Llama's add_bos_token default) */
  encode(text: string, options?: { addBos?: boolean }): number[];
  /** token ids -> text; special tokens (BOS, EOS, PAD...) are skipped, like skip_special_tokens=True */
  decode(ids: number[]): string;
  /** id of one vocabulary entry or added token, undefined when the vocabulary lacks it */
  tokenId(token: string): number | undefined;
  bosId: number;
  eosId: number;
}

/** The Llama "space" piece: OpenVLA appends it to the prompt when the tokenizer did not produce it. */
export const LLAMA_SPACE_TOKEN = METASPACE;


interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

const utf8 = new TextEncoder();

/** Min-heap of candidate merges ordered by (rank, position), as the tokenizers crate orders them. */
class MergeQueue {
  private readonly items: { rank: number; pos: number; newId: number }[] = [];
  get size(): number {
    return this.items.length;
  }
  private less(a: number, b: number): boolean {
    const x = this.items[a];
    const y = this.items[b];
    return x.rank !== y.rank ? x.rank < y.rank : x.pos < y.pos;
  }
  push(item: { rank: number; pos: number; newId: number }): void {
    const items = this.items;
    items.push(item);
    for (let i = items.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }
  pop(): { rank: number; pos: number; newId: number } {
    const items = this.items;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.less(l, m)) m = l;
        if (r < items.length && this.less(r, m)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m], items[i]];
        i = m;
      }
    }
    return top;
  }
}

class BpeTokenizer implements Tokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly vocabSize: number;
  private readonly idToToken: string[] = [];
  private readonly specialIds = new Set<number>();
  /** merge (leftId * stride + rightId) -> [rank, mergedId] */
  private readonly merges = new Map<number, [number, number]>();
  private readonly stride: number;

  constructor(
    private readonly vocab: Map<string, number>,
    mergeList: [string, string][],
    private readonly added: AddedToken[],
    private readonly normalize: (text: string) => string,
    private readonly preTokenize: StringTransform,
    private readonly decodeSteps: DecodeStep,
    private readonly options: { byteFallback: boolean; unkId: number | undefined; fuseUnk: boolean; ignoreMerges: boolean },
    special: { bos: string; eos: string },
    source: string,
  ) {
    for (const [token, id] of vocab) this.idToToken[id] = token;
    for (const token of added) {
      this.idToToken[token.id] = token.content;
      if (token.special) this.specialIds.add(token.id);
    }
    this.vocabSize = this.idToToken.length;
    this.stride = this.vocabSize + 1;
    mergeList.forEach(([left, right], rank) => {
      const a = vocab.get(left);
      const b = vocab.get(right);
      const merged = vocab.get(left + right);
      if (a === undefined || b === undefined || merged === undefined) {
        throw new UserError(`Invalid tokenizer in ${source}: merge "${left} ${right}" uses tokens missing from the vocabulary.`);
      }
      this.merges.set(a * this.stride + b, [rank, merged]); // a repeated pair keeps its last rank, as in tokenizers
    });
    const idOf = (token: string) => {
      const id = this.added.find((t) => t.content === token)?.id ?? vocab.get(token);
      if (id === undefined) throw new UserError(`Invalid tokenizer in ${source}: special token "${token}" is not in the vocabulary.`);
      return id;
    };
    this.bosId = idOf(special.bos);
    this.eosId = idOf(special.eos);
  }

  encode(text: string, options: { addBos?: boolean } = {}): number[] {
    const ids: number[] = options.addBos === false ? [] : [this.bosId];
    for (const segment of this.splitAddedTokens(text)) {
      if (typeof segment === 'number') {
        ids.push(segment);
        continue;
      }
      if (segment.text.length === 0) continue;
      const words = this.preTokenize(this.normalize(segment.text), segment.offset === 0);
      for (const word of words) if (word.length > 0) this.encodeWord(word, ids);
    }
    return ids;
  }

  tokenId(token: string): number | undefined {
    return this.added.find((t) => t.content === token)?.id ?? this.vocab.get(token);
  }

  decode(ids: number[]): string {
    const tokens: string[] = [];
    for (const id of ids) {
      if (this.specialIds.has(id)) continue;
      const token = this.idToToken[id];
      if (token === undefined) throw new Error(`token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
      tokens.push(token);
    }
    return this.decodeSteps(tokens).join('');
  }

  /** Text pieces and added-token ids, leftmost-longest match; lstrip/rstrip swallow adjacent whitespace. */
  private splitAddedTokens(text: string): ({ text: string; offset: number } | number)[] {
    const out: ({ text: string; offset: number } | number)[] = [];
    let segmentStart = 0;
    let i = 0;
    while (i < text.length) {
      let best: AddedToken | undefined;
      for (const token of this.added) {
        if (token.content.length > (best?.content.length ?? 0) && text.startsWith(token.content, i)) best = token;
      }
      if (!best) {
        i++;
        continue;
      }
      let matchStart = i;
      let matchEnd = i + best.content.length;
      if (best.lstrip) while (matchStart > segmentStart && /\s/u.test(text[matchStart - 1])) matchStart--;
      if (best.rstrip) while (matchEnd < text.length && /\s/u.test(text[matchEnd])) matchEnd++;
      if (matchStart > segmentStart) out.push({ text: text.slice(segmentStart, matchStart), offset: segmentStart });
      out.push(best.id);
      segmentStart = i = matchEnd;
    }
    if (segmentStart < text.length) out.push({ text: text.slice(segmentStart), offset: segmentStart });
    return out;
  }

  private encodeWord(word: string, out: number[]): void {
    const { byteFallback, unkId, fuseUnk, ignoreMerges } = this.options;
    const whole = this.vocab.get(word);
    if (ignoreMerges && whole !== undefined) {
      out.push(whole);
      return;
    }
    const symbols: number[] = [];
    for (const char of word) {
      const id = this.vocab.get(char);
      if (id !== undefined) {
        symbols.push(id);
        continue;
      }
      if (byteFallback) {
        const byteIds = Array.from(utf8.encode(char), (b) => this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
        if (byteIds.every((b) => b !== undefined)) {
          symbols.push(...(byteIds as number[]));
          continue;
        }
      }
      if (unkId === undefined) throw new UserError(`Cannot tokenize ${JSON.stringify(char)}: not in the vocabulary and the tokenizer has no unk token.`);
      if (!(fuseUnk && symbols.length > 0 && symbols[symbols.length - 1] === unkId)) symbols.push(unkId);
    }
    // Doubly linked list over `symbols`; a merged-away symbol gets id -1.
    const n = symbols.length;
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const queue = new MergeQueue();
    const consider = (pos: number) => {
      const right = next[pos];
      if (right < 0) return;
      const merge = this.merges.get(symbols[pos] * this.stride + symbols[right]);
      if (merge) queue.push({ rank: merge[0], pos, newId: merge[1] });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (queue.size > 0) {
      const top = queue.pop();
      if (symbols[top.pos] < 0) continue;
      const right = next[top.pos];
      if (right < 0) continue;
      const current = this.merges.get(symbols[top.pos] * this.stride + symbols[right]);
      if (!current || current[1] !== top.newId) continue; // stale entry
      symbols[top.pos] = top.newId;
      symbols[right] = -1;
      next[top.pos] = next[right];
      if (next[right] >= 0) prev[next[right]] = top.pos;
      if (prev[top.pos] >= 0) consider(prev[top.pos]);
      consider(top.pos);
    }
    for (const id of symbols) if (id >= 0) out.push(id);
  }
}

interface SpecialTokenNames {
  bos: string;
  eos: string;
}

/** Build a tokenizer from a parsed Hugging Face tokenizer.json. */
export function tokenizerFromJson(json: unknown, source = 'tokenizer.json', special: SpecialTokenNames = { bos: '<s>', eos: '</s>' }): Tokenizer {
  if (!isRecord(json) || !isRecord(json.model)) throw new UserError(`Invalid tokenizer in ${source}: no "model" object.`);
  const model = json.model;
  if (model.type !== undefined && model.type !== 'BPE') unsupported(source, 'model type', model.type);
  if (model.continuing_subword_prefix || model.end_of_word_suffix) {
    unsupported(source, 'BPE subword prefix/suffix', model.continuing_subword_prefix ?? model.end_of_word_suffix);
  }
  if (!isRecord(model.vocab) || !Array.isArray(model.merges)) throw new UserError(`Invalid tokenizer in ${source}: BPE model needs "vocab" and "merges".`);
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(model.vocab)) {
    if (!Number.isInteger(id)) throw new UserError(`Invalid tokenizer in ${source}: vocab id of ${JSON.stringify(token)} is not an integer.`);
    vocab.set(token, id as number);
  }
  const merges = model.merges.map((m): [string, string] => {
    if (Array.isArray(m) && m.length === 2) return [String(m[0]), String(m[1])];
    const parts = typeof m === 'string' ? m.split(' ') : [];
    if (parts.length !== 2) throw new UserError(`Invalid tokenizer in ${source}: malformed merge ${JSON.stringify(m)}.`);
    return [parts[0], parts[1]];
  });
  const added = (Array.isArray(json.added_tokens) ? json.added_tokens : []).map((t): AddedToken => {
    if (!isRecord(t) || !Number.isInteger(t.id) || typeof t.content !== 'string' || t.content.length === 0) {
      throw new UserError(`Invalid tokenizer in ${source}: malformed added token ${JSON.stringify(t)}.`);
    }
    return { id: t.id as number, content: t.content, special: t.special === true, lstrip: t.lstrip === true, rstrip: t.rstrip === true };
  });
  const unkToken = typeof model.unk_token === 'string' ? model.unk_token : undefined;
  return new BpeTokenizer(
    vocab,
    merges,
    added,
    buildNormalizer(json.normalizer, source),
    buildPreTokenizer(json.pre_tokenizer, source),
    buildDecoder(json.decoder, source),
    {
      byteFallback: model.byte_fallback === true,
      unkId: unkToken === undefined ? undefined : vocab.get(unkToken),
      fuseUnk: model.fuse_unk === true,
      ignoreMerges: model.ignore_merges === true,
    },
    special,
    source,
  );
}

/** The Llama-2 tokenizer.json layout (meta-llama/Llama-2-7b-hf, "legacy" normalizer), minus vocab and merges. */
function llama2TokenizerJson(vocab: Record<string, number>, merges: string[], extraAdded: Json[] = []): Json {
  const specials = ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, special: true, normalized: false, lstrip: false, rstrip: false }));
  return {
    added_tokens: [...specials, ...extraAdded],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: { type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: true, vocab, merges },
  };
}

interface LlamaTokenizerJsData {
  vocabById: string[];
  merges: Map<string, number>;
}

let llama2Data: { vocab: Record<string, number>; merges: string[] } | undefined;

/** Vocabulary and merges of llama-tokenizer-js (Llama-2's, extracted from its tokenizer.json), loaded on first use. */
function llama2VocabularyAndMerges(): { vocab: Record<string, number>; merges: string[] } {
  if (!llama2Data) {
    let module: { default: LlamaTokenizerJsData };
    try {
      // loaded lazily (about 0.3 s to unpack); require() of this ES module needs Node >= 20.19
      module = createRequire(import.meta.url)('llama-tokenizer-js') as { default: LlamaTokenizerJsData };
    } catch (error) {
      throw new Error(`cannot load the built-in Llama-2 vocabulary from llama-tokenizer-js: ${(error as Error).message}`);
    }
    const { vocabById, merges } = module.default;
    const vocab: Record<string, number> = {};
    vocabById.forEach((token, id) => (vocab[token] = id));
    llama2Data = { vocab, merges: [...merges.entries()].sort((a, b) => a[1] - b[1]).map(([pair]) => pair) };
  }
  return llama2Data;
}

let builtin: Tokenizer | undefined;

/** The Llama-2 tokenizer (32000 tokens; <unk> 0, <s> 1, </s> 2) without any checkpoint files. */
export function builtinLlama2Tokenizer(): Tokenizer {
  if (!builtin) {
    const { vocab, merges } = llama2VocabularyAndMerges();
    builtin = tokenizerFromJson(llama2TokenizerJson(vocab, merges), 'the built-in Llama-2 tokenizer');
  }
  return builtin;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UserError(`Cannot read ${path}: ${(error as Error).message}.`);
  }
}

function tokenName(value: unknown, fallback: string): string {
  if (typeof value === 'string') return value;
  if (isRecord(value) && typeof value.content === 'string') return value.content;
  return fallback;
}

/**
 * The checkpoint's tokenizer: `tokenizer.json` when present, else the built-in Llama-2 vocabulary plus any
 * added tokens listed in `tokenizer_config.json` (OpenVLA adds <PAD> = 32000). BOS/EOS names come from
 * tokenizer_config.json when it has them.
 */
export function loadTokenizer(modelDir: string): Tokenizer {
  if (!existsSync(modelDir) || !statSync(modelDir).isDirectory()) {
    throw new UserError(`Cannot load tokenizer: ${modelDir} is not a directory.`);
  }
  const configPath = join(modelDir, 'tokenizer_config.json');
  const config = existsSync(configPath) ? readJson(configPath) : {};
  const configRecord = isRecord(config) ? config : {};
  const special = { bos: tokenName(configRecord.bos_token, '<s>'), eos: tokenName(configRecord.eos_token, '</s>') };
  const jsonPath = join(modelDir, 'tokenizer.json');
  if (existsSync(jsonPath)) return tokenizerFromJson(readJson(jsonPath), jsonPath, special);

  const extraAdded: Json[] = [];
  if (isRecord(configRecord.added_tokens_decoder)) {
    for (const [id, token] of Object.entries(configRecord.added_tokens_decoder)) {
      if (Number(id) >= 3 && isRecord(token)) extraAdded.push({ ...token, id: Number(id) });
    }
  }
  if (extraAdded.length === 0 && special.bos === '<s>' && special.eos === '</s>') return builtinLlama2Tokenizer();
  const { vocab, merges } = llama2VocabularyAndMerges();
  return tokenizerFromJson(llama2TokenizerJson(vocab, merges, extraAdded), `the built-in Llama-2 tokenizer + ${configPath}`, special);
}
