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

// Evaluation statistics (test/eval/stats.test.ts).
/** Wilson bounds against Newcombe (1998) Table I, which prints 4 decimals: half a unit of the last one */
export const WILSON_PRINTED_4DP = 5e-5;
/** Wilson bounds and exact McNemar p-values against SciPy 1.17 (float64 both): relative */
export const STATS_VS_SCIPY_RELATIVE = 1e-12;
/** exact McNemar beyond 1000 discordant pairs sums exp(log terms): about n ulps of float64 */
export const STATS_LOG_SPACE_RELATIVE = 1e-10;
