// A variant string names one configuration of a policy, the same in every command (act, compare, bench, eval,
// serve, sim run): parts joined by '+' — 'base' (the checkpoint as stored), one quantization scheme (w8a8, w4a8,
// w4a4, w4a16), 'had' (Hadamard rotations), 'gptq' (calibrated rounding), and one pruning part METHOD@KEEP
// (fastv, query, sqap, random, grid; KEEP = fraction of visual tokens kept, in (0, 1]).
// Example: 'w4a4+had+sqap@0.5'. The canonical name orders the parts: scheme, had, gptq, pruning.
import { UserError } from './errors.js';

export const QUANT_SCHEMES = ['w8a8', 'w4a8', 'w4a4', 'w4a16'] as const;
export type QuantScheme = (typeof QUANT_SCHEMES)[number];

export const PRUNE_METHODS = ['fastv', 'query', 'sqap', 'random', 'grid'] as const;
export type PruneMethod = (typeof PRUNE_METHODS)[number];

export interface QuantSpec {
  scheme: QuantScheme;
  /** weight bits (8 or 4) */
  weightBits: 4 | 8;
  /** activation bits; 16 means activations stay in float (weight-only) */
  activationBits: 4 | 8 | 16;
}

export interface PruneSpec {
  method: PruneMethod;
  /** fraction of visual tokens kept, in (0, 1] */
  keep: number;
}

export interface Variant {
  /** canonical name: parts in the order scheme, had, gptq, pruning; 'base' when there are none */
  name: string;
  quant?: QuantSpec;
  /** Hadamard rotations (QuaRot-style); valid with or without a quantization scheme */
  had: boolean;
  /** GPTQ rounding instead of RTN; needs a quantization scheme */
  gptq: boolean;
  prune?: PruneSpec;
}

/** Parses 'w4a4+had+sqap@0.5'; throws a one-line UserError naming the offending part. */
export function parseVariant(text: string): Variant {
  const source = text.trim();
  if (!source) throw new UserError('variant is empty (examples: base, w4a4+had, w4a4+had+sqap@0.5)');
  let quant: QuantSpec | undefined;
  let had = false;
  let gptq = false;
  let prune: PruneSpec | undefined;
  let sawBase = false;
  for (const raw of source.split('+')) {
    const part = raw.trim().toLowerCase();
    const where = `variant '${text}'`;
    if (part === '') throw new UserError(`${where}: empty part (parts are joined by a single '+')`);
    if (part === 'base') {
      sawBase = true;
    } else if ((QUANT_SCHEMES as readonly string[]).includes(part)) {
      if (quant) throw new UserError(`${where}: two quantization schemes ('${quant.scheme}' and '${part}')`);
      quant = quantSpec(part as QuantScheme);
    } else if (part === 'had') {
      if (had) throw new UserError(`${where}: 'had' given twice`);
      had = true;
    } else if (part === 'gptq') {
      if (gptq) throw new UserError(`${where}: 'gptq' given twice`);
      gptq = true;
    } else if (part.includes('@')) {
      if (prune) throw new UserError(`${where}: two pruning parts ('${prune.method}@${prune.keep}' and '${part}')`);
      prune = pruneSpec(part, where);
    } else {
      throw new UserError(
        `${where}: unknown part '${raw.trim()}' (known: base, ${QUANT_SCHEMES.join(', ')}, had, gptq, METHOD@KEEP with METHOD one of ${PRUNE_METHODS.join(', ')})`,
      );
    }
  }
  if (gptq && !quant) throw new UserError(`variant '${text}': 'gptq' needs a quantization scheme (e.g. w4a4+had+gptq)`);
  if (sawBase && (quant || had || gptq || prune)) throw new UserError(`variant '${text}': 'base' cannot be combined with other parts`);
  const variant: Variant = { name: '', quant, had, gptq, prune };
  variant.name = formatVariant(variant);
  return variant;
}

/** Parses a comma-separated list of variants (as --variants takes it); names must be distinct after canonicalization. */
export function parseVariantList(text: string): Variant[] {
  const variants = text.split(',').map((s) => parseVariant(s));
  const seen = new Set<string>();
  for (const v of variants) {
    if (seen.has(v.name)) throw new UserError(`variant '${v.name}' is listed twice in '${text}'`);
    seen.add(v.name);
  }
  return variants;
}

/** Canonical name of a variant: scheme, had, gptq, pruning; 'base' when empty. */
export function formatVariant(v: Omit<Variant, 'name'>): string {
  const parts: string[] = [];
  if (v.quant) parts.push(v.quant.scheme);
  if (v.had) parts.push('had');
  if (v.gptq) parts.push('gptq');
  if (v.prune) parts.push(`${v.prune.method}@${v.prune.keep}`);
  return parts.length ? parts.join('+') : 'base';
}

function quantSpec(scheme: QuantScheme): QuantSpec {
  const m = /^w(\d+)a(\d+)$/.exec(scheme)!;
  return { scheme, weightBits: Number(m[1]) as 4 | 8, activationBits: Number(m[2]) as 4 | 8 | 16 };
}

function pruneSpec(part: string, where: string): PruneSpec {
  const [method, keepText, ...extra] = part.split('@');
  if (extra.length) throw new UserError(`${where}: pruning part '${part}' has more than one '@'`);
  if (!(PRUNE_METHODS as readonly string[]).includes(method)) {
    throw new UserError(`${where}: unknown pruning method '${method}' (known: ${PRUNE_METHODS.join(', ')})`);
  }
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(keepText ?? '')) {
    throw new UserError(`${where}: keep ratio in '${part}' must be a number in (0, 1], e.g. ${method}@0.5`);
  }
  const keep = Number(keepText);
  if (!(keep > 0 && keep <= 1)) throw new UserError(`${where}: keep ratio ${keepText} is outside (0, 1]`);
  return { method: method as PruneMethod, keep };
}
