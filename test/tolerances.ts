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
