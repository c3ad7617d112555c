// `sqap-vla compare`: fidelity of variants against `base` on the same inputs. Per variant: token_agreement (share of
// the 7 action tokens equal to base's), logit_cosine (mean cosine of the 7 decode steps' logits, each variant
// teacher-forced on base's tokens), action_max_abs_diff (largest |Δ| of the normalized action, over inputs).
import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { readImageFile } from '../io/image.js';
import type { OpenVla } from '../models/openvla.js';
import { loadPolicy, type LoadedPolicy } from '../policy.js';
import { promptIds } from '../quant/calibration.js';
import { getBackend } from '../tensor/backends/index.js';
import { topkOverlap } from '../prune/index.js';
import { formatVariant, parseVariant, parseVariantList, type Variant } from '../variant.js';
import { parseBackendName, parseIds } from './act.js';
import { calibrationIfNeeded, renderTestbedFrames } from './calibration.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla compare --model DIR --variants V1,V2,... (--image FILE [--input-ids IDS | --instruction TEXT]
                        | --frames N) [--calib DIR] [--backend auto|ref|native] [--json]

Runs 'base' and each variant on the same inputs and reports, per variant:
  token_agreement      share of the 7 action tokens equal to base's (mean over inputs)
  logit_cosine         mean cosine similarity of the 7 decode steps' logits with base's, the variant teacher-forced
                       on base's tokens (mean over inputs)
  action_max_abs_diff  largest |variant - base| of the normalized action (in [-1, 1] units) over inputs
  topk_overlap         variants with a pruning part: share of the visual tokens base with the same METHOD@KEEP
                       keeps that this variant keeps too (mean over inputs); how much quantization moves the ranking
Inputs: one image with its prompt (--input-ids, or --instruction tokenized with the checkpoint's tokenizer), or
--frames N testbed frames rendered with their task instructions (prompt ids folded into the vocabulary of a
checkpoint without its own tokenizer). --calib DIR: GPTQ calibration for gptq variants (default: rendered frames).
With --json the last line is {"reference":"base","variants":[{"name",...metrics},...]}.`;

/** One input: pixel values and prompt ids. */
export interface CompareInput {
  pixelValues: Float32Array;
  inputIds: number[];
}

/** What one policy produced on one input. */
export interface StepTrace {
  tokens: number[];
  normalizedAction: number[];
  /** [ACTION_DIMS] logits vectors, step t teacher-forced on the forced tokens 0..t-1 */
  logits: Float32Array[];
  /** visual tokens kept (variants with a pruning part) */
  kept?: number[];
}

export interface VariantFidelity {
  name: string;
  token_agreement: number;
  logit_cosine: number;
  action_max_abs_diff: number;
  /**
   * Share of the visual tokens that `base` with the same pruning method and budget keeps which this variant also
   * keeps (mean over inputs): how much quantization disturbs the ranking. null without a pruning part.
   */
  topk_overlap: number | null;
}

/**
 * Run a policy on an input twice: free-running (its tokens and action), and teacher-forced on `forced` (base's
 * tokens; its own when omitted) for the 7 decode steps' logits. Pruning and quantization apply to both.
 */
export function traceStep(policy: LoadedPolicy, input: CompareInput, forced?: number[]): StepTrace {
  const result = policy.predict({ pixelValues: input.pixelValues, inputIds: input.inputIds });
  const tokens = forced ?? result.actionTokenIds;
  const teacherForced = policy.predict({ pixelValues: input.pixelValues, inputIds: input.inputIds, forcedTokens: tokens });
  return { tokens: result.actionTokenIds, normalizedAction: result.normalizedAction, logits: teacherForced.stepLogits!, kept: result.keptVisualTokens };
}

/** The per-variant metrics against base's traces on the same inputs (extend here for new metrics). */
export function variantFidelity(name: string, reference: StepTrace[], traces: StepTrace[]): VariantFidelity {
  let agree = 0;
  let cosine = 0;
  let actionDiff = 0;
  reference.forEach((base, i) => {
    const ours = traces[i];
    agree += ours.tokens.filter((t, j) => t === base.tokens[j]).length / base.tokens.length;
    cosine += base.logits.reduce((sum, l, j) => sum + cosineSimilarity(l, ours.logits[j]), 0) / base.logits.length;
    ours.normalizedAction.forEach((v, j) => (actionDiff = Math.max(actionDiff, Math.abs(v - base.normalizedAction[j]))));
  });
  return { name, token_agreement: agree / reference.length, logit_cosine: cosine / reference.length, action_max_abs_diff: actionDiff, topk_overlap: null };
}

export function cosineSimilarity(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na === 0 || nb === 0 ? (na === nb ? 1 : 0) : dot / Math.sqrt(na * nb);
}

export async function runCompareCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      variants: { type: 'string' },
      image: { type: 'string' },
      'input-ids': { type: 'string' },
      instruction: { type: 'string' },
      frames: { type: 'string' },
      calib: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model || !values.variants) throw new UserError('compare needs --model DIR and --variants V1,V2,...');
  const variants = parseVariantList(values.variants).filter((v) => v.name !== 'base');
  if (variants.length === 0) throw new UserError('compare needs at least one variant besides base');
  if ((values.image === undefined) === (values.frames === undefined)) throw new UserError('compare needs exactly one of --image FILE or --frames N');
  if (values.frames !== undefined && (values['input-ids'] !== undefined || values.instruction !== undefined)) {
    throw new UserError('--frames takes its instructions from the testbed tasks; drop --input-ids/--instruction');
  }
  if (values.image !== undefined && values['input-ids'] !== undefined && values.instruction !== undefined) {
    throw new UserError('give one of --input-ids or --instruction, not both');
  }
  const backend = getBackend(parseBackendName(values.backend!));
  const calibration = await calibrationIfNeeded(values.model, variants, values.calib);
  const base = loadPolicy(values.model, parseVariant('base'), { backend });
  const inputs = await compareInputs(base.model, values);
  const total = inputs.length * (variants.length + 1);
  let bar: ReturnType<typeof progressBar> | undefined;
  let done = 0;
  const tick = () => (bar ??= progressBar('compare', total, 'runs')).update(++done);
  const reference = inputs.map((input) => {
    const trace = traceStep(base, input);
    tick();
    return trace;
  });
  // topk_overlap's reference: base with the variant's pruning part (same method and budget), run once per part
  const referenceKept = new Map<string, number[][]>();
  const keptByPruningReference = (variant: Variant): number[][] => {
    const name = formatVariant({ had: false, gptq: false, prune: variant.prune });
    let kept = referenceKept.get(name);
    if (!kept) {
      const twin = loadPolicy(values.model!, name, { backend });
      kept = inputs.map((input) => twin.predict({ pixelValues: input.pixelValues, inputIds: input.inputIds }).keptVisualTokens ?? []);
      referenceKept.set(name, kept);
    }
    return kept;
  };
  const results = variants.map((variant: Variant) => {
    const policy = loadPolicy(values.model!, variant, { backend, calibration });
    const traces = inputs.map((input, i) => {
      const trace = traceStep(policy, input, reference[i].tokens);
      tick();
      return trace;
    });
    const fidelity = variantFidelity(variant.name, reference, traces);
    if (variant.prune) {
      const baseKept = keptByPruningReference(variant);
      fidelity.topk_overlap = traces.reduce((sum, trace, i) => sum + topkOverlap(baseKept[i], trace.kept ?? []), 0) / traces.length;
    }
    return fidelity;
  });
  bar?.stop();
  if (values.json) {
    console.log(JSON.stringify({ reference: 'base', inputs: inputs.length, variants: results }));
  } else {
    console.log(`reference base, ${inputs.length} input(s), backend ${backend.name}`);
    console.log(`${'variant'.padEnd(24)} ${'token_agreement'.padStart(15)} ${'logit_cosine'.padStart(13)} ${'action_max_abs_diff'.padStart(19)} ${'topk_overlap'.padStart(12)}`);
    for (const r of results) {
      console.log(`${r.name.padEnd(24)} ${r.token_agreement.toFixed(4).padStart(15)} ${r.logit_cosine.toFixed(6).padStart(13)} ${r.action_max_abs_diff.toFixed(4).padStart(19)} ${(r.topk_overlap === null ? '-' : r.topk_overlap.toFixed(4)).padStart(12)}`);
    }
  }
  return 0;
}

async function compareInputs(model: OpenVla, values: { image?: string; 'input-ids'?: string; instruction?: string; frames?: string }): Promise<CompareInput[]> {
  if (values.frames !== undefined) {
    const count = Number(values.frames);
    if (!Number.isInteger(count) || count < 1) throw new UserError(`--frames must be a positive integer, got '${values.frames}'`);
    const frames = await renderTestbedFrames(count);
    return frames.map((f) => ({ pixelValues: model.preprocess(f.image), inputIds: promptIds(model, f.instruction) }));
  }
  const image = readImageFile(values.image!);
  let inputIds: number[];
  if (values['input-ids'] !== undefined) inputIds = parseIds(values['input-ids']);
  else if (values.instruction !== undefined) inputIds = promptIds(model, values.instruction);
  else throw new UserError('--image needs --input-ids IDS or --instruction TEXT');
  const outside = inputIds.find((id) => id >= model.llm.config.vocabSize);
  if (outside !== undefined) throw new UserError(`token id ${outside} is outside this model's vocabulary of ${model.llm.config.vocabSize}`);
  return [{ pixelValues: model.preprocess(image), inputIds }];
}
