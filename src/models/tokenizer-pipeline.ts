// The text transforms around a BPE model in a Hugging Face tokenizer.json: normalizers, pre-tokenizers and
// decoders, each built from its JSON spec into a plain function with the semantics of the tokenizers crate.
// Only what Llama-family SentencePiece-BPE files use is supported; anything else is a UserError, not a guess.
import { UserError } from '../errors.js';

export type Json = Record<string, unknown>;
/** normalized segment -> words; `startsAtTextStart` is true for a segment at offset 0 of the input text */
export type StringTransform = (text: string, startsAtTextStart: boolean) => string[];
export type DecodeStep = (tokens: string[]) => string[];

/** The SentencePiece word-boundary mark that stands for a space. */
export const METASPACE = '▁';

export function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function unsupported(source: string, what: string, value: unknown): never {
  throw new UserError(`Unsupported tokenizer in ${source}: ${what} ${JSON.stringify(value)} (only Llama-style SentencePiece-BPE tokenizer.json files are supported).`);
}

function replacePattern(pattern: unknown, source: string): RegExp {
  if (isRecord(pattern) && typeof pattern.String === 'string') {
    return new RegExp(pattern.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
  }
  if (isRecord(pattern) && typeof pattern.Regex === 'string') return new RegExp(pattern.Regex, 'gu');
  return unsupported(source, 'Replace pattern', pattern);
}

export function buildNormalizer(spec: unknown, source: string): (text: string) => string {
  if (spec === null || spec === undefined) return (text) => text;
  if (!isRecord(spec)) return unsupported(source, 'normalizer', spec);
  switch (spec.type) {
    case 'Sequence': {
      const steps = (spec.normalizers as unknown[]).map((s) => buildNormalizer(s, source));
      return (text) => steps.reduce((t, step) => step(t), text);
    }
    case 'Prepend': // tokenizers prepends only to non-empty strings
      return (text) => (text.length > 0 ? String(spec.prepend) + text : text);
    case 'Replace': {
      const pattern = replacePattern(spec.pattern, source);
      const content = String(spec.content);
      return (text) => text.replace(pattern, () => content);
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD':
      return (text) => text.normalize(spec.type as string);
    case 'Lowercase':
      return (text) => text.toLowerCase();
    default:
      return unsupported(source, 'normalizer type', spec.type);
  }
}

function prependScheme(spec: Json): 'always' | 'first' | 'never' {
  if (spec.prepend_scheme === 'always' || spec.prepend_scheme === 'first' || spec.prepend_scheme === 'never') return spec.prepend_scheme;
  return spec.add_prefix_space === false ? 'never' : 'always'; // files written before prepend_scheme existed
}

/** Returns the words of one normalized segment; `startsAtTextStart` is true for a segment at offset 0 of the input. */
export function buildPreTokenizer(spec: unknown, source: string): StringTransform {
  if (spec === null || spec === undefined) return (text) => [text];
  if (!isRecord(spec)) return unsupported(source, 'pre_tokenizer', spec);
  switch (spec.type) {
    case 'Sequence': {
      const steps = (spec.pretokenizers as unknown[]).map((s) => buildPreTokenizer(s, source));
      return (text, atStart) => steps.reduce<string[]>((words, step) => words.flatMap((w, i) => step(w, atStart && i === 0)), [text]);
    }
    case 'Metaspace': {
      const replacement = String(spec.replacement ?? METASPACE);
      const scheme = prependScheme(spec);
      const split = spec.split !== false;
      return (text, atStart) => {
        let normalized = text.replaceAll(' ', replacement);
        if (!normalized.startsWith(replacement) && (scheme === 'always' || (scheme === 'first' && atStart))) {
          normalized = replacement + normalized;
        }
        if (!split) return [normalized];
        // split before each replacement char, keeping it with the word that follows (MergedWithNext)
        const words: string[] = [];
        let start = 0;
        for (let i = 1; i < normalized.length; i++) {
          if (normalized.startsWith(replacement, i)) {
            words.push(normalized.slice(start, i));
            start = i;
          }
        }
        words.push(normalized.slice(start));
        return words;
      };
    }
    default:
      return unsupported(source, 'pre_tokenizer type', spec.type);
  }
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function buildDecoder(spec: unknown, source: string): DecodeStep {
  if (spec === null || spec === undefined) return (tokens) => tokens;
  if (!isRecord(spec)) return unsupported(source, 'decoder', spec);
  switch (spec.type) {
    case 'Sequence': {
      const steps = (spec.decoders as unknown[]).map((s) => buildDecoder(s, source));
      return (tokens) => steps.reduce((t, step) => step(t), tokens);
    }
    case 'Replace': {
      const pattern = replacePattern(spec.pattern, source);
      const content = String(spec.content);
      return (tokens) => tokens.map((t) => t.replace(pattern, () => content));
    }
    case 'ByteFallback':
      // runs of <0xNN> become their UTF-8 text, or one U+FFFD per byte when the run is not valid UTF-8
      return (tokens) => {
        const out: string[] = [];
        let bytes: number[] = [];
        const flush = () => {
          if (bytes.length === 0) return;
          try {
            out.push(strictUtf8.decode(Uint8Array.from(bytes)));
          } catch {
            for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
          }
          bytes = [];
        };
        for (const token of tokens) {
          const match = BYTE_TOKEN.exec(token);
          if (match) bytes.push(parseInt(match[1], 16));
          else {
            flush();
            out.push(token);
          }
        }
        flush();
        return out;
      };
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Strip': {
      const content = String(spec.content);
      const start = Number(spec.start);
      const stop = Number(spec.stop);
      return (tokens) =>
        tokens.map((token) => {
          const chars = Array.from(token);
          let from = 0;
          while (from < start && from < chars.length && chars[from] === content) from++;
          let to = chars.length;
          while (chars.length - to < stop && to > from && chars[to - 1] === content) to--;
          return chars.slice(from, to).join('');
        });
    }
    case 'Metaspace': {
      const replacement = String(spec.replacement ?? METASPACE);
      const scheme = prependScheme(spec);
      // as the tokenizers crate does: every replacement char of the first token is dropped, the others become spaces
      return (tokens) => tokens.map((token, i) => token.replaceAll(replacement, i === 0 && scheme !== 'never' ? '' : ' '));
    }
    default:
      return unsupported(source, 'decoder type', spec.type);
  }
}

