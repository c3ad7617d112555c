// (OpenVla or Llama, Variant) -> the quantized and/or rotated model. Two ways in:
//  - quantizeLlama: from a loaded float decoder (GPTQ needs it: calibration runs the rotated float model);
//  - linearTransform: a per-tensor hook for loadLlama, so RTN at load rotates and quantizes one linear at a time and
//    a 7B checkpoint never holds its float LLM weights all at once.
import { UserError } from '../errors.js';
import { hadamardBlockFor, LLAMA_LINEARS, Llama, type LlamaLayer, type LlamaLinearName, type LlamaQuantization, type LlamaWeights } from '../models/llama.js';
import { OpenVla } from '../models/openvla.js';
import type { LinearWeight, WeightTensor } from '../tensor/backend.js';
import { isQuantizedWeight, quantizeWeight, type QuantizedWeight } from '../tensor/formats.js';
import { Tensor } from '../tensor/tensor.js';
import type { Variant } from '../variant.js';
import { HessianAccumulator, quantizeGptq } from './gptq.js';
import { DEFAULT_ROTATION_SEED, floatLinears, makeRotation, onesNorm, rotateLinear, type LlamaRotation } from './rotate.js';
import { toQuantizedWeight } from './rtn.js';

/** Everything that decides the quantized model (what quantization_config records). */
export interface QuantizationSpec {
  /** weight bits; undefined = float weights (`had` alone) */
  weightBits?: 4 | 8;
  /** 16 = float activations */
  activationBits: 4 | 8 | 16;
  had: boolean;
  gptq: boolean;
  /** input channels per weight scale; 0 = per output channel */
  groupSize: number;
  /** activation clip ratio in (0, 1] */
  clipRatio: number;
  /** residual rotation seed */
  seed: number;
  /** GPTQ column order by decreasing Hessian diagonal */
  actOrder: boolean;
  /**
   * 8: lm_head as int8 codes, symmetric per output channel, RTN (a W8A16 linear: f32 activations, the dequantizing
   * kernel). Undefined: lm_head as stored, which is the default ("embeddings and lm_head stay in the checkpoint's
   * dtype unless asked"). Its bf16 copy is the largest tensor a W4 decoder step reads besides the layers.
   */
  lmHeadBits?: 8;
}

export interface SpecOptions {
  groupSize?: number;
  clipRatio?: number;
  seed?: number;
  actOrder?: boolean;
  lmHeadBits?: 8;
}

/** The quantization half of a variant, or undefined when the variant leaves the decoder as stored. */
export function specFromVariant(variant: Variant, options: SpecOptions = {}): QuantizationSpec | undefined {
  if (!variant.quant && !variant.had) return undefined;
  const clipRatio = options.clipRatio ?? 1;
  if (!(clipRatio > 0 && clipRatio <= 1)) throw new UserError(`clip ratio ${clipRatio} is outside (0, 1]`);
  const groupSize = options.groupSize ?? 0;
  if (!Number.isInteger(groupSize) || groupSize < 0) throw new UserError(`group size must be a non-negative integer (0 = per channel), got ${groupSize}`);
  return {
    weightBits: variant.quant?.weightBits,
    activationBits: variant.quant?.activationBits ?? 16,
    had: variant.had,
    gptq: variant.gptq,
    groupSize,
    clipRatio,
    seed: options.seed ?? DEFAULT_ROTATION_SEED,
    actOrder: options.actOrder ?? false,
    ...(options.lmHeadBits ? { lmHeadBits: options.lmHeadBits } : {}),
  };
}

/** Canonical variant name of a spec (scheme, had, gptq). */
export function specName(spec: QuantizationSpec): string {
  const parts: string[] = [];
  if (spec.weightBits) parts.push(`w${spec.weightBits}a${spec.activationBits}`);
  if (spec.had) parts.push('had');
  if (spec.gptq) parts.push('gptq');
  return parts.join('+') || 'base';
}

/** What Llama needs at run time for this spec. */
export function runtimeQuantization(spec: QuantizationSpec, rotation: LlamaRotation | undefined): LlamaQuantization {
  return {
    activationBits: spec.activationBits,
    clipRatio: spec.clipRatio === 1 ? undefined : spec.clipRatio,
    rotation: rotation ? { residualSigns: Tensor.f32([rotation.residual.width], rotation.residual.signs) } : undefined,
  };
}

/** Which RMSNorm precedes a linear (none for o and down). */
export function normBefore(site: LlamaLinearName): 'inputNorm' | 'postAttentionNorm' | undefined {
  if (site === 'q' || site === 'k' || site === 'v') return 'inputNorm';
  if (site === 'gate' || site === 'up') return 'postAttentionNorm';
  return undefined;
}

/** RTN quantization of one (already rotated) float weight. */
export function quantizeRtnWeight(w: WeightTensor, spec: QuantizationSpec): QuantizedWeight {
  // owned: the codes go straight into the decoder, so the native backend may pack them in place
  return quantizeWeight(w, spec.weightBits === 8 ? 'i8' : 'i4', spec.groupSize === 0 ? undefined : spec.groupSize, { owned: true });
}

/** lm_head [V, D] quantized as the spec asks (int8 per output channel, RTN), or as stored. */
export function quantizeLmHead(w: WeightTensor, spec: QuantizationSpec): LinearWeight {
  // lm_head reads the final norm's output, which the rotation has already undone (rotate.ts): never rotated
  return spec.lmHeadBits === 8 ? quantizeWeight(w, 'i8', undefined, { owned: true }) : w;
}

/**
 * The per-tensor transform for loadLlama: read -> rotate (had) -> RTN (when the spec has weight bits). `norm` is the
 * layer's RMSNorm weight before this linear.
 */
export function transformLinear(site: LlamaLinearName, w: WeightTensor, norm: WeightTensor | undefined, headDim: number, spec: QuantizationSpec, rotation: LlamaRotation | undefined): LinearWeight {
  const rotated = rotation ? rotateLinear(site, w, headDim, rotation, norm) : w;
  return spec.weightBits && !spec.gptq ? quantizeRtnWeight(rotated, spec) : rotated;
}

/** The layer's sites and the captured hook that feeds each (GPTQ Hessians). */
const SITE_INPUT: Record<LlamaLinearName, string> = { q: 'attn_in', k: 'attn_in', v: 'attn_in', o: 'o_in', gate: 'mlp_in', up: 'mlp_in', down: 'down_in' };

/**
 * A float decoder -> the decoder of `spec`. `calibration` (prompt embeddings [T, D], e.g. OpenVLA prefixes) is
 * needed for GPTQ. Layer by layer: layer i is rotated, its Hessians are accumulated from its inputs in the rotated
 * float decoder (the calibration prompts carried through layers 0..i-1 in float), its linears are quantized, and
 * its float copy and Hessians are dropped before layer i+1, so only one layer's Hessians (3·D² + F² float64:
 * 1.4 GB at Llama-2-7B's widths) and rotated float weights exist at a time.
 */
export function quantizeLlama(llm: Llama, spec: QuantizationSpec, calibration: Tensor<'f32'>[] = [], onLayer?: (done: number, total: number) => void): Llama {
  if (llm.quantization) throw new Error('quantizeLlama: the decoder is already quantized or rotated');
  const { config } = llm;
  const rotation = spec.had ? makeRotation(config.hidden, spec.seed) : undefined;
  const ones = rotation ? onesNorm(config.hidden) : undefined;
  const prepare = (layer: LlamaLayer): LlamaLayer => {
    const float = floatLinears(layer);
    const linears = Object.fromEntries(
      LLAMA_LINEARS.map((site) => {
        const norm = normBefore(site);
        const rotated = rotation ? rotateLinear(site, float[site], config.headDim, rotation, norm ? float[norm] : undefined) : float[site];
        return [site, rotated];
      }),
    ) as Record<LlamaLinearName, WeightTensor>;
    return { ...linears, inputNorm: ones ?? layer.inputNorm, postAttentionNorm: ones ?? layer.postAttentionNorm };
  };
  const floatRuntime = runtimeQuantization({ ...spec, activationBits: 16 }, rotation);
  const lmHead = isQuantizedWeight(llm.weights.lmHead) ? llm.weights.lmHead : quantizeLmHead(llm.weights.lmHead as WeightTensor, spec);
  if (!spec.weightBits) return new Llama(config, { ...llm.weights, layers: llm.weights.layers.map(prepare), lmHead }, llm.backend, floatRuntime);
  if (spec.gptq && calibration.length === 0) throw new UserError('gptq needs calibration samples (give --calib DIR, or use the default rendered frames)');
  // each calibration prompt's residual stream entering the current layer, in the stored (unrotated) basis
  let states = spec.gptq ? calibration : undefined;
  const layers = llm.weights.layers.map((layer, i) => {
    const prepared = prepare(layer);
    let hessians: Map<string, HessianAccumulator> | undefined;
    if (states) ({ hessians, outputs: states } = layerHessians(new Llama(config, { ...llm.weights, layers: [prepared] }, llm.backend, floatRuntime), states));
    const out = { ...prepared } as LlamaLayer;
    for (const site of LLAMA_LINEARS) {
      const w = prepared[site] as WeightTensor;
      if (hessians) {
        const [rows, cols] = w.shape;
        const codes = quantizeGptq(w.toF32(), rows, cols, hessians.get(SITE_INPUT[site])!.hessian(), { bits: spec.weightBits!, groupSize: spec.groupSize }, { actOrder: spec.actOrder });
        out[site] = toQuantizedWeight(codes, { owned: true });
      } else {
        out[site] = quantizeRtnWeight(w, spec);
      }
    }
    onLayer?.(i + 1, llm.weights.layers.length);
    return out;
  });
  return new Llama(config, { ...llm.weights, layers, lmHead }, llm.backend, runtimeQuantization(spec, rotation));
}

/**
 * One decoder layer's calibration pass: `layer` is a Llama holding just that layer (rotated float, with the
 * decoder's rotation), `inputs` the residual stream entering it per prompt ([T, D], stored basis). Returns XᵀX of
 * each linear input keyed by hook name ('attn_in', 'o_in', 'mlp_in', 'down_in') and the stream leaving the layer
 * (stored basis: the rotation the forward pass applies at its input is undone, as the forward does at its end).
 */
export function layerHessians(layer: Llama, inputs: Tensor<'f32'>[]): { hessians: Map<string, HessianAccumulator>; outputs: Tensor<'f32'>[] } {
  if (layer.weights.layers.length !== 1) throw new Error('layerHessians: expects a single-layer decoder');
  const single = layer.config.layers === 1 ? layer : new Llama({ ...layer.config, layers: 1 }, layer.weights, layer.backend, layer.quantization);
  const hessians = new Map<string, HessianAccumulator>();
  const wanted = new Set(Object.values(SITE_INPUT));
  const bk = single.backend;
  const signs = single.quantization?.rotation?.residualSigns;
  const outputs = inputs.map((x) => {
    let out: Tensor<'f32'> | undefined;
    single.forward(x, single.newCache(), {
      logits: 'none',
      hooks: {
        capture: (name, _layer, t) => {
          if (name === 'layer_out') out = t;
          if (!wanted.has(name)) return;
          let acc = hessians.get(name);
          if (!acc) hessians.set(name, (acc = new HessianAccumulator(t.shape[t.rank - 1])));
          acc.add(t.data);
        },
      },
    });
    // layer_out is in the rotated basis: x·Qᵀ = (x·H) ⊙ s, the forward pass's own last step
    return signs ? bk.scaleChannels(bk.fwht(out!, hadamardBlockFor(out!.shape[1])), signs) : out!;
  });
  return { hessians, outputs };
}

/**
 * Run the calibration prompts through a whole float decoder; XᵀX of every linear's input, keyed
 * `${layer}.${hook name}`. Holds every layer's Hessians at once (small models and tests; quantizeLlama goes layer
 * by layer with layerHessians).
 */
export function collectHessians(llm: Llama, calibration: Tensor<'f32'>[]): Map<string, HessianAccumulator> {
  const hessians = new Map<string, HessianAccumulator>();
  const wanted = new Set(Object.values(SITE_INPUT));
  for (const prompt of calibration) {
    llm.forward(prompt, llm.newCache(), {
      logits: 'none',
      hooks: {
        capture: (name, layer, t) => {
          if (!wanted.has(name)) return;
          const key = `${layer}.${name}`;
          let acc = hessians.get(key);
          if (!acc) hessians.set(key, (acc = new HessianAccumulator(t.shape[t.rank - 1])));
          acc.add(t.data);
        },
      },
    });
  }
  return hessians;
}

/** An OpenVla with its decoder replaced (vision, projector, embeddings and lm_head untouched). */
export function withDecoder(model: OpenVla, llm: Llama): OpenVla {
  return new OpenVla(model.config, model.preprocessor, model.backbones, model.projector, llm, model.backend, model.path);
}

/** true when every linear of the decoder is a QuantizedWeight */
export function isQuantizedDecoder(weights: LlamaWeights): boolean {
  return weights.layers.every((layer) => LLAMA_LINEARS.every((site) => isQuantizedWeight(layer[site])));
}
