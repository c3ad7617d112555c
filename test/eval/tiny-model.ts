// The bundled tiny-openvla (random weights, vocabulary 512 + padding) made instruction-capable for closed-loop
// tests: a copy with a character-level tokenizer.json (Llama-2's normalizer, no merges, ids 0..~100, all inside
// the tiny vocabulary). Its actions mean nothing; the tests check plumbing, pairing and determinism.
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const TINY_OPENVLA_DIR = new URL('../../models/tiny-openvla', import.meta.url).pathname;

/** A char-level Hugging Face tokenizer.json: <unk> 0, <s> 1, </s> 2, '▁' 3, then printable ASCII and '\n'. */
export function charTokenizerJson(): object {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2, '\u2581': 3 };
  const chars = ['\n', ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).filter((c) => c !== ' ')];
  for (const c of chars) vocab[c] = Object.keys(vocab).length;
  const specials = ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, special: true, normalized: false, lstrip: false, rstrip: false }));
  return {
    added_tokens: specials,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '\u2581' },
        { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' },
      ],
    },
    pre_tokenizer: null,
    decoder: null,
    model: { type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: false, vocab, merges: [] },
  };
}

/** A fresh temporary copy of tiny-openvla with the char tokenizer; returns its directory. */
export function makeTinyInstructionModel(parent = mkdtempSync(join(tmpdir(), 'sqap-eval-model-'))): string {
  const dir = join(parent, 'tiny-openvla-chars');
  cpSync(TINY_OPENVLA_DIR, dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(charTokenizerJson()));
  return dir;
}
