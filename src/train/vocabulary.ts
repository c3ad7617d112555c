// A small Llama-style tokenizer for a from-scratch policy: the words of the testbed's instructions and of OpenVLA's
// prompt template, then OpenVLA's 256 action bins as the last ids of the real vocabulary, then <PAD>. It is written
// as a Hugging Face tokenizer.json that src/models/tokenizer.ts reads like any Llama-2 one (legacy normalizer:
// prepend "▁", spaces -> "▁"; BPE without byte fallback; <unk> for characters it has never seen).
//
// The BPE merges build each word left to right ("▁" + "p" -> "▁p", "▁p" + "i" -> "▁pi", ...); every merge's right
// side is a single letter and its left side a word prefix, so no merge can join two words. A word never seen in
// training still encodes, as its longest known prefix followed by single letters.
import { openVlaPrompt } from '../models/prompt.js';

export const ACTION_BINS = 256;
/** OpenVLA pads the embedding table to a multiple of 64 rows; the loader derives the real vocabulary from it. */
export const PAD_TO_MULTIPLE_OF = 64;
const METASPACE = '▁';
const SPECIALS = ['<unk>', '<s>', '</s>'];
/** Characters always present, so unseen instructions degrade to letters rather than <unk>. */
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;?!\'"-()\n';

export interface BuiltVocabulary {
  /** the tokenizer.json object */
  tokenizerJson: Record<string, unknown>;
  /** ids below this are text and action tokens; the action bins are its last ACTION_BINS ids */
  realVocabSize: number;
  /** embedding rows: realVocabSize + PAD_TO_MULTIPLE_OF (<PAD> is the first padding row) */
  embeddingRows: number;
  padId: number;
  spaceId: number;
}

/** Legacy Llama normalization of one text segment, as tokenizer.ts applies it. */
function normalize(text: string): string {
  return METASPACE + text.replaceAll(' ', METASPACE);
}

/** Words ("▁word" or a word after a non-space character) of the normalized prompts of `instructions`. */
function promptWords(instructions: string[]): string[] {
  const words = new Set<string>();
  for (const instruction of instructions) {
    for (const match of normalize(openVlaPrompt(instruction)).matchAll(/▁?[A-Za-z]+/g)) words.add(match[0]);
  }
  return [...words].sort();
}

/**
 * The tokenizer for prompts built from `instructions`. The real vocabulary is rounded up to a multiple of 64 (unused
 * rows are named <extra_N>) so that text_config.vocab_size - pad_to_multiple_of = realVocabSize, as in OpenVLA.
 */
export function buildVocabulary(instructions: string[]): BuiltVocabulary {
  const vocab = new Map<string, number>();
  const add = (token: string) => {
    if (!vocab.has(token)) vocab.set(token, vocab.size);
  };
  SPECIALS.forEach(add);
  add(METASPACE);
  for (const ch of ALPHABET) add(ch);
  const merges: [string, string][] = [];
  for (const word of promptWords(instructions)) {
    const chars = [...word];
    let prefix = chars[0];
    for (const ch of chars.slice(1)) {
      add(ch);
      const merged = prefix + ch;
      if (!vocab.has(merged)) {
        merges.push([prefix, ch]);
        add(merged);
      }
      prefix = merged;
    }
  }
  const textSize = vocab.size;
  const realVocabSize = Math.ceil((textSize + ACTION_BINS) / PAD_TO_MULTIPLE_OF) * PAD_TO_MULTIPLE_OF;
  for (let i = textSize; i < realVocabSize - ACTION_BINS; i++) add(`<extra_${i - textSize}>`);
  // Bin b (np.digitize index b+1) is id realVocabSize - 1 - b, as OpenVLA's ActionTokenizer assigns them.
  for (let id = realVocabSize - ACTION_BINS; id < realVocabSize; id++) add(`<action_${realVocabSize - 1 - id}>`);
  const padId = realVocabSize;
  const added = [
    ...SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    { id: padId, content: '<PAD>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ];
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: METASPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: METASPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: METASPACE }, content: ' ' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  return { tokenizerJson, realVocabSize, embeddingRows: realVocabSize + PAD_TO_MULTIPLE_OF, padId, spaceId: vocab.get(METASPACE)! };
}
