// timm VisionTransformer as OpenVLA uses it: DINOv2 with registers (cls + 4 register tokens, LayerScale, position
// embeddings only on patches) and SigLIP (no prefix tokens). Pre-norm blocks, exact GELU, LayerNorm eps 1e-6.
// OpenVLA reads the output of the second-to-last block with prefix tokens dropped and no final norm
// (timm get_intermediate_layers(n={depth-2})), so `penultimatePatches` runs only depth-1 blocks.
import type { Backend, LinearWeight, PrepackOptions, WeightTensor } from '../tensor/backend.js';
import { concatRows, Tensor } from '../tensor/tensor.js';
import { isFloatTensor } from '../tensor/formats.js';
import { countBlocks, readWeight, type TensorSource } from './weights.js';

const LAYER_NORM_EPS = 1e-6;

export interface VitConfig {
  width: number;
  depth: number;
  heads: number;
  patchSize: number;
  /** input image side in pixels */
  imageSize: number;
  mlpHidden: number;
  /** cls token present (DINOv2) */
  classToken: boolean;
  registers: number;
}

/** The linears hold their weight as stored, or prepacked for inference (VisionTransformer.prepacked). */
interface VitBlock {
  norm1: [WeightTensor, WeightTensor];
  qkv: [LinearWeight, WeightTensor];
  proj: [LinearWeight, WeightTensor];
  ls1?: WeightTensor;
  norm2: [WeightTensor, WeightTensor];
  fc1: [LinearWeight, WeightTensor];
  fc2: [LinearWeight, WeightTensor];
  ls2?: WeightTensor;
}

export interface VitWeights {
  /** [D, 3*P*P] (the conv kernel flattened in (c, kh, kw) order) */
  patchWeight: LinearWeight;
  patchBias: WeightTensor;
  /** [1, nPatches, D] (timm no_embed_class: prefix tokens get no position embedding) or [1, nPrefix+nPatches, D] */
  posEmbed: Tensor<'f32'>;
  /** [nPrefix, D]: cls then registers */
  prefixTokens: Tensor<'f32'>;
  blocks: VitBlock[];
  norm: [WeightTensor, WeightTensor];
}

/** Sizes from tensor shapes; `heads` must come from outside (config), as it cannot be read from shapes. */
export function loadVit(source: TensorSource, heads: number): { config: VitConfig; weights: VitWeights } {
  const conv = readWeight(source, 'patch_embed.proj.weight');
  const [width, channels, patchSize] = conv.shape;
  const depth = countBlocks(source, 'blocks', 'norm1.weight');
  const posEmbed = readWeight(source, 'pos_embed').asF32Tensor();
  const classToken = source.has('cls_token');
  const regTokens = source.has('reg_token') ? readWeight(source, 'reg_token', [1, undefined, width]) : undefined;
  const registers = regTokens ? regTokens.shape[1] : 0;
  const prefix: Tensor<'f32'>[] = [];
  if (classToken) prefix.push(readWeight(source, 'cls_token', [1, 1, width]).asF32Tensor().reshape([1, width]));
  if (regTokens) prefix.push(regTokens.asF32Tensor().reshape([registers, width]));
  const nPrefix = prefix.length ? concatRows(prefix).shape[0] : 0;
  const posRows = posEmbed.shape[1];
  // timm no_embed_class models (DINOv2-reg) store positions for patches only; others have rows for prefix tokens too.
  const nPatches = isSquare(posRows) ? posRows : posRows - nPrefix;
  if (!isSquare(nPatches)) throw new Error(`${source.description}: pos_embed has ${posRows} rows, not a square patch grid`);
  const gridSide = Math.round(Math.sqrt(nPatches));
  const pair = (name: string, shape?: number[]): [WeightTensor, WeightTensor] => [
    readWeight(source, `${name}.weight`, shape),
    readWeight(source, `${name}.bias`, shape ? [shape[0]] : undefined),
  ];
  const layerScale = (name: string) => (source.has(`${name}.scale_factor`) ? readWeight(source, `${name}.scale_factor`, [width]) : source.has(`${name}.gamma`) ? readWeight(source, `${name}.gamma`, [width]) : undefined);
  const blocks: VitBlock[] = [];
  let mlpHidden = 0;
  for (let i = 0; i < depth; i++) {
    const b = `blocks.${i}`;
    const fc1 = pair(`${b}.mlp.fc1`);
    mlpHidden = fc1[0].shape[0];
    blocks.push({
      norm1: pair(`${b}.norm1`, [width]),
      qkv: pair(`${b}.attn.qkv`, [3 * width, width]),
      proj: pair(`${b}.attn.proj`, [width, width]),
      ls1: layerScale(`${b}.ls1`),
      norm2: pair(`${b}.norm2`, [width]),
      fc1,
      fc2: pair(`${b}.mlp.fc2`, [width, mlpHidden]),
      ls2: layerScale(`${b}.ls2`),
    });
  }
  const config: VitConfig = { width, depth, heads, patchSize, imageSize: gridSide * patchSize, mlpHidden, classToken, registers };
  if (width % heads !== 0) throw new Error(`ViT width ${width} is not divisible by ${heads} heads`);
  return {
    config,
    weights: {
      patchWeight: conv.reshape([width, channels * patchSize * patchSize]) as WeightTensor,
      patchBias: readWeight(source, 'patch_embed.proj.bias', [width]),
      posEmbed,
      prefixTokens: nPrefix ? concatRows(prefix) : Tensor.zeros([0, width]),
      blocks,
      norm: pair('norm', [width]),
    },
  };
}

function isSquare(n: number): boolean {
  return Math.round(Math.sqrt(n)) ** 2 === n;
}

/** pixels [3, H, W] -> patch rows [nPatches, 3*P*P] in (c, kh, kw) order, patches in raster order */
export function im2col(pixels: Float32Array, channels: number, size: number, patch: number): Tensor<'f32'> {
  const grid = size / patch;
  const cols = channels * patch * patch;
  const out = new Float32Array(grid * grid * cols);
  for (let gy = 0; gy < grid; gy++) {
    for (let gx = 0; gx < grid; gx++) {
      const row = (gy * grid + gx) * cols;
      for (let c = 0; c < channels; c++) {
        for (let ky = 0; ky < patch; ky++) {
          const src = (c * size + gy * patch + ky) * size + gx * patch;
          out.set(pixels.subarray(src, src + patch), row + (c * patch + ky) * patch);
        }
      }
    }
  }
  return Tensor.f32([grid * grid, cols], out);
}

export class VisionTransformer {
  constructor(
    readonly config: VitConfig,
    readonly weights: VitWeights,
    readonly backend: Backend,
  ) {}

  static load(source: TensorSource, heads: number, backend: Backend): VisionTransformer {
    const { config, weights } = loadVit(source, heads);
    return new VisionTransformer(config, weights, backend);
  }

  /**
   * The same tower with every linear weight in the backend's prepacked layout (Backend.prepack): the same outputs,
   * faster GEMMs, one copy of each weight (the stored one is dropped). For inference only: weights must not change.
   * `options` as Backend.prepack's (bf16Activations: bf16 x, no longer the same outputs to the last bit).
   */
  prepacked(options?: PrepackOptions): VisionTransformer {
    const bk = this.backend;
    const pack = ([w, b]: [LinearWeight, WeightTensor]): [LinearWeight, WeightTensor] => [isFloatTensor(w) ? bk.prepack(w, options) : w, b];
    const weights: VitWeights = {
      ...this.weights,
      patchWeight: isFloatTensor(this.weights.patchWeight) ? bk.prepack(this.weights.patchWeight, options) : this.weights.patchWeight,
      blocks: this.weights.blocks.map((b) => ({ ...b, qkv: pack(b.qkv), proj: pack(b.proj), fc1: pack(b.fc1), fc2: pack(b.fc2) })),
    };
    return new VisionTransformer(this.config, weights, bk);
  }

  get numPrefixTokens(): number {
    return this.weights.prefixTokens.shape[0];
  }

  /** pixels [3, H, W] -> tokens [nPrefix + nPatches, D] (position embeddings added) */
  embed(pixels: Float32Array): Tensor<'f32'> {
    const { patchSize, imageSize } = this.config;
    const { patchWeight, patchBias, posEmbed, prefixTokens } = this.weights;
    if (pixels.length !== 3 * imageSize * imageSize) {
      throw new Error(`ViT expects 3x${imageSize}x${imageSize} pixels, got ${pixels.length} values`);
    }
    const patches = this.backend.linear(im2col(pixels, 3, imageSize, patchSize), patchWeight, patchBias);
    const nPatches = patches.shape[0];
    const pos = posEmbed.reshape([posEmbed.shape[1], posEmbed.shape[2]]);
    if (pos.shape[0] === nPatches) {
      return concatRows([prefixTokens, this.backend.add(patches, pos)]);
    }
    return this.backend.add(concatRows([prefixTokens, patches]), pos);
  }

  /** x [N, D] -> [N, D]: one pre-norm block with optional LayerScale */
  block(x: Tensor<'f32'>, index: number): Tensor<'f32'> {
    const b = this.weights.blocks[index];
    const bk = this.backend;
    const { width, heads } = this.config;
    const tokens = x.shape[0];
    const headDim = width / heads;
    const h = bk.layerNorm(x, b.norm1[0], b.norm1[1], LAYER_NORM_EPS);
    const qkv = bk.linear(h, b.qkv[0], b.qkv[1]); // [N, 3D] laid out (3, heads, headDim)
    const [q, k, v] = splitQkv(qkv, tokens, heads, headDim);
    let attn = bk.linear(bk.attention(q, k, v, { causal: false }).out, b.proj[0], b.proj[1]);
    if (b.ls1) attn = bk.scaleChannels(attn, b.ls1);
    x = bk.add(x, attn);
    const m = bk.layerNorm(x, b.norm2[0], b.norm2[1], LAYER_NORM_EPS);
    let mlp = bk.linear(bk.gelu(bk.linear(m, b.fc1[0], b.fc1[1])), b.fc2[0], b.fc2[1]);
    if (b.ls2) mlp = bk.scaleChannels(mlp, b.ls2);
    return bk.add(x, mlp);
  }

  /** pixels [3, H, W] -> patch features [nPatches, D] from the second-to-last block, no final norm */
  penultimatePatches(pixels: Float32Array): Tensor<'f32'> {
    let x = this.embed(pixels);
    for (let i = 0; i < this.config.depth - 1; i++) x = this.block(x, i);
    return x.rows(this.numPrefixTokens, x.shape[0]);
  }

  /** pixels [3, H, W] -> all tokens after every block and the final norm [nPrefix + nPatches, D] */
  forwardFeatures(pixels: Float32Array): Tensor<'f32'> {
    let x = this.embed(pixels);
    for (let i = 0; i < this.config.depth; i++) x = this.block(x, i);
    return this.backend.layerNorm(x, this.weights.norm[0], this.weights.norm[1], LAYER_NORM_EPS);
  }
}

/** qkv [N, 3*H*Dh] -> q, k, v each [N, H, Dh] */
export function splitQkv(qkv: Tensor<'f32'>, tokens: number, heads: number, headDim: number): Tensor<'f32'>[] {
  const width = heads * headDim;
  return [0, 1, 2].map((part) => {
    const out = new Float32Array(tokens * width);
    for (let t = 0; t < tokens; t++) out.set(qkv.data.subarray(t * 3 * width + part * width, t * 3 * width + (part + 1) * width), t * width);
    return Tensor.f32([tokens, heads, headDim], out);
  });
}
