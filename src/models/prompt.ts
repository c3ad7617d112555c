// OpenVLA's prompt: the instruction in a fixed template, tokenized with BOS, then the Llama "space" token 29871
// appended when the prompt does not already end with it (OpenVLA's predict_action does this because the
// training prompts ended with it). The instruction is lower-cased as OpenVLA's deploy script does.

/** Llama-2's id of the bare SentencePiece space piece "▁". */
export const LLAMA2_SPACE_TOKEN_ID = 29871;

export function openVlaPrompt(instruction: string): string {
  return `In: What action should the robot take to ${instruction.trim().toLowerCase()}?\nOut:`;
}

/** prompt ids -> the same ids ending with the space token */
export function withTrailingSpaceToken(ids: number[], spaceTokenId = LLAMA2_SPACE_TOKEN_ID): number[] {
  return ids[ids.length - 1] === spaceTokenId ? ids : [...ids, spaceTokenId];
}

/**
 * Prompt ids for an instruction, as `act --instruction` builds them: OpenVLA's template, BOS, then the tokenizer's
 * bare space piece "▁" appended unless last (29871 for Llama-2; a checkpoint with its own small vocabulary uses its
 * own "▁" id, and one without such a piece falls back to 29871, OpenVLA's literal).
 */
export function instructionInputIds(
  tokenizer: { encode(text: string, options?: { addBos?: boolean }): number[]; tokenId(token: string): number | undefined },
  instruction: string,
): number[] {
  const spaceId = tokenizer.tokenId('\u2581') ?? LLAMA2_SPACE_TOKEN_ID;
  return withTrailingSpaceToken(tokenizer.encode(openVlaPrompt(instruction), { addBos: true }), spaceId);
}
