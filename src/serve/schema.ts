// JSON schema of a POST /act body (plain form). Fastify validates the outer body with it and the double-encoded
// form's inner JSON is validated with the same schema, so both forms get the same types and the same messages.
// The schema checks types and sizes; act-request.ts checks what a schema cannot (base64, byte counts against
// shapes, finiteness, vocabulary, dataset keys).

/** Longest instruction accepted, in UTF-16 code units. */
export const MAX_INSTRUCTION_LENGTH = 2000;
/** Most prompt ids accepted (OpenVLA prompts are 20-40 tokens; llm_max_length is 2048 with the patches). */
export const MAX_INPUT_IDS = 1024;

const finiteList = (length: number) => ({ type: 'array', minItems: length, maxItems: length, items: { type: 'number' } });
/** a list of `length` numbers, or a json-numpy object (checked in act-request.ts) */
const listOrNdArray = (length: number) => ({ ...finiteList(length), type: ['array', 'object'] });

export const ACT_BODY_SCHEMA = {
  type: 'object',
  properties: {
    image: { type: ['object', 'string'] },
    instruction: { type: 'string', maxLength: MAX_INSTRUCTION_LENGTH },
    unnorm_key: { type: ['string', 'null'], maxLength: 200 },
    input_ids: { type: ['array', 'object'], maxItems: MAX_INPUT_IDS, items: { type: 'integer', minimum: 0 } },
    eef_pixel: listOrNdArray(2),
    eef: listOrNdArray(3),
    camera: {
      type: 'object',
      required: ['width', 'height', 'intrinsics', 'worldToCamera'],
      properties: {
        name: { type: 'string', maxLength: 200 },
        width: { type: 'integer', minimum: 1, maximum: 65535 },
        height: { type: 'integer', minimum: 1, maximum: 65535 },
        intrinsics: finiteList(9),
        worldToCamera: finiteList(16),
      },
    },
    return_details: { type: 'boolean' },
    encoded: { type: 'string' },
  },
} as const;
