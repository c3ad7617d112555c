// Every tolerance the suite uses, in one place. Model parity bounds are the fixtures' README's
// ("max abs error <= 1e-4 on logits, hidden states and features; actions equal to 1e-9").

/** max |ours - reference| for float32 model outputs against the PyTorch fixtures */
export const PARITY_F32_MAX_ABS = 1e-4;
/** attention probabilities are in [0, 1]; same float32 bound */
export const PARITY_PROBS_MAX_ABS = 1e-4;
/** un-normalized actions, computed in float64 as numpy does */
export const ACTION_MAX_ABS = 1e-9;
/** pixel values after Pillow-exact resize and float32 normalization */
export const PIXEL_VALUES_MAX_ABS = 1e-6;
/** Pillow's integer resampling must be reproduced exactly (uint8 levels). */
export const RESIZE_MAX_DIFF = 0;
/** jpeg-js and libjpeg use different IDCT/upsampling; a q95 round trip stays within a few levels (mean abs). */
export const JPEG_MEAN_ABS_TOL = 3;

// Renderer and camera projection (pixels unless named otherwise).
/** centroid of an object's pixels vs. the projection of its centre (perspective shifts the centroid slightly) */
export const CENTROID_MAX_PX = 1.5;
/** silhouette bounds from pixel centres vs. projected surface points: half a pixel of sampling + tessellation */
export const BOUNDS_MAX_PX = 1.0;
/** pixel count of a sphere's image disc vs. the exact area */
export const DISC_AREA_MAX_RELATIVE = 0.01;
/** rendered depth at the centre of a sphere facing the camera vs. d - r, metres (tessellation) */
export const DEPTH_MAX_M = 1e-3;
/** quantities that are equal in exact arithmetic, compared in float64 */
export const EXACT = 1e-9;
/**
 * GPTQ layer by layer vs one whole-decoder pass on a rotated decoder: the residual stream leaves the rotated basis
 * after each layer and re-enters it (two f32 FWHTs, exact in real arithmetic), so XᵀX differs by f32 rounding,
 * relative to its largest entry.
 */
export const HESSIAN_LAYERWISE_RTOL = 1e-6;

/** An elementwise bound: |ours - reference| <= atol + rtol·|reference|. */
export interface Tolerance {
  readonly atol: number;
  readonly rtol: number;
}

/**
 * native backend vs ref (test/tensor/native.test.ts), keyed by weight dtype, then op. ref computes in float64 and
 * native accumulates in float32, so the bounds are float32 summation-order error on inputs in [-1, 1] with K up to
 * ~1000. bf16/f16 weights are widened exactly in both backends, so they get the same bounds as f32 weights.
 */
export const TOLERANCE = {
  f32: {
    linear: { atol: 2e-5, rtol: 2e-5 },
    attention: { atol: 2e-6, rtol: 2e-5 },
    attentionProbs: { atol: 1e-6, rtol: 2e-5 },
    layerNorm: { atol: 2e-6, rtol: 2e-6 },
    rmsNorm: { atol: 1e-6, rtol: 1e-6 },
    /**
     * ref's erf is a Chebyshev fit good to 1.2e-7; native's generic path uses libm's erff, its SIMD path
     * Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7, as PyTorch's vectorized CPU erf). A sweep of x over [-20, 20] stays
     * within 0.71 of this bound.
     */
    gelu: { atol: 3e-7, rtol: 2e-7 },
    siluMul: { atol: 1e-7, rtol: 1e-6 },
    /** float32 add and multiply are correctly rounded in both backends: exact */
    add: { atol: 0, rtol: 0 },
    scaleChannels: { atol: 0, rtol: 0 },
    /** same f32 angle math; V8's and libm's cos/sin may round an angle's cos/sin to f32 one ulp apart */
    rope: { atol: 2e-7, rtol: 1e-6 },
    embedding: { atol: 0, rtol: 0 },
  },
  bf16: {
    linear: { atol: 2e-5, rtol: 2e-5 },
    layerNorm: { atol: 2e-6, rtol: 2e-6 },
    rmsNorm: { atol: 1e-6, rtol: 1e-6 },
    scaleChannels: { atol: 0, rtol: 0 },
    embedding: { atol: 0, rtol: 0 },
  },
  f16: {
    linear: { atol: 2e-5, rtol: 2e-5 },
    layerNorm: { atol: 2e-6, rtol: 2e-6 },
    rmsNorm: { atol: 1e-6, rtol: 1e-6 },
    scaleChannels: { atol: 0, rtol: 0 },
    embedding: { atol: 0, rtol: 0 },
  },
} as const;

// Quantization fidelity targets (issue #6), measured with `compare`'s metrics against base.
/** `had` alone (rotated, unquantized) computes the base function: mean logit cosine at least this */
export const HAD_MIN_LOGIT_COSINE = 0.99999;
/** `w8a8+had` on the bundled tiny checkpoint: mean logit cosine at least this */
export const W8A8_HAD_MIN_LOGIT_COSINE = 0.995;
/**
 * On the outlier checkpoint, `w4a4+had` must keep at most this fraction of `w4a4`'s logit error (1 - cosine):
 * measured 0.50 (w4a4 1 - cosine 0.34, w4a4+had 0.17 on the fixture input).
 */
export const OUTLIER_HAD_MAX_ERROR_RATIO = 0.7;
// Token pruning (test/models/pruning.test.ts, test/tensor/attention-scores.test.ts).
/** a variant that keeps every visual token vs base: the same computation, so logits agree to float32 noise */
export const PRUNE_KEEP_ALL_MAX_ABS = 1e-6;
/** pruned forward vs the unpruned model with the dropped keys masked out of layers >= K (issue 7: 1e-5) */
export const PRUNE_ORACLE_MAX_ABS = 1e-5;
/**
 * attention scores, native vs ref: probabilities as TOLERANCE.f32.attentionProbs; key totals are sums of up to T
 * float32 probabilities per head over Hq heads, so the bound scales with T·Hq (applied per element by the test)
 */
export const SCORES_PROB = { atol: 1e-6, rtol: 2e-5 };
export const SCORES_TOTAL_PER_TERM = 1e-7;

/**
 * Backward ops on ref vs central finite differences of the ref forward ops (test/tensor/grad-ref.test.ts): inputs of
 * order 1, step h; the forward rounds its outputs to float32 (~6e-8 relative), which over a 2h difference gives
 * ~1e-5 absolute noise, and the O(h²) truncation error is of the same order. A wrong formula errs by O(1).
 */
export const FINITE_DIFFERENCE = { step: 1e-3, atol: 1e-4, rtol: 1e-3 } as const;

/**
 * One training step against PyTorch autograd (test/fixtures/tiny-openvla-train, its README's bounds): every
 * parameter gradient within 1e-4 relative per tensor (max |ours - ref| / max |ref|; float32 PyTorch itself is within
 * 1.8e-6), the parameters after one AdamW step within 2e-4 absolute (the first step moves a parameter by about
 * lr·g/(|g|+eps), which float32 rounding of a near-zero gradient shifts by up to 1.2e-4 in PyTorch itself).
 */
export const TRAIN_GRAD_MAX_RELATIVE = 1e-4;
export const TRAIN_ADAMW_MAX_ABS = 2e-4;

/**
 * native backward kernels vs ref (test/tensor/grad-native.test.ts). ref computes in float64, native accumulates in
 * float32 (the backward GEMMs on the forward linear kernel), so GEMM bounds are linear's; norms and attention
 * recompute their statistics and probabilities in float32; gelu's derivative uses the forward's erf approximation
 * (A&S 7.1.26, |error| < 1.5e-7) where ref uses a Chebyshev fit (1.2e-7).
 */
export const GRAD_TOLERANCE = {
  linear: { atol: 2e-5, rtol: 2e-5 },
  norm: { atol: 2e-6, rtol: 2e-6 },
  attention: { atol: 2e-6, rtol: 2e-5 },
  gelu: { atol: 5e-7, rtol: 1e-6 },
  rope: { atol: 2e-7, rtol: 1e-6 },
  elementwise: { atol: 1e-7, rtol: 1e-6 },
} as const;
// Evaluation statistics (test/eval/stats.test.ts).
/** Wilson bounds against Newcombe (1998) Table I, which prints 4 decimals: half a unit of the last one */
export const WILSON_PRINTED_4DP = 5e-5;
/** Wilson bounds and exact McNemar p-values against SciPy 1.17 (float64 both): relative */
export const STATS_VS_SCIPY_RELATIVE = 1e-12;
/** exact McNemar beyond 1000 discordant pairs sums exp(log terms): about n ulps of float64 */
export const STATS_LOG_SPACE_RELATIVE = 1e-10;
