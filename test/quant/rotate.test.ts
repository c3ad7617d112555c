// Rotation invariance: the rotated but unquantized decoder (`had`) computes the base function on every fixture
// that has a decoder — logits against the PyTorch reference within the parity bound, same greedy tokens.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Llama } from '../../src/models/llama.js';
import { OpenVla } from '../../src/models/openvla.js';
import { readJsonFile } from '../../src/io/json.js';
import { quantizeLlama, specFromVariant, withDecoder } from '../../src/quant/apply.js';
import { parseVariant } from '../../src/variant.js';
import { PARITY_F32_MAX_ABS } from '../tolerances.js';
import { fixturePath, fixtureWeights, ids, loadExpected, maxAbsDiff } from '../support/fixtures.js';
import { testBackends } from '../support/backends.js';

const had = specFromVariant(parseVariant('had'))!;

for (const backend of await testBackends()) {
  describe(`rotation invariance on the ${backend.name} backend`, () => {
    test('tiny-llama: rotated logits and greedy continuation equal the reference', () => {
      const expected = loadExpected('tiny-llama');
      const config = readJsonFile(fixturePath('tiny-llama', 'config.json'), 'config') as Record<string, unknown>;
      const rotated = quantizeLlama(Llama.load(fixtureWeights('tiny-llama'), config, backend), had);
      assert.ok(rotated.quantization?.rotation);
      const inputIds = Int32Array.from(ids(expected.input_ids));
      const { logits } = rotated.forward(rotated.embed(inputIds), rotated.newCache(), { logits: 'all' });
      const diff = maxAbsDiff(logits!.data, expected.logits.toF32());
      assert.ok(diff <= PARITY_F32_MAX_ABS, `logits max abs error ${diff.toExponential(2)}`);
      const generated = ids(expected.generated_ids);
      assert.deepEqual(rotated.generateGreedy(rotated.embed(inputIds), generated.length).ids, generated);
    });

    test('tiny-openvla: rotated prefix logits, action tokens and action equal the reference', () => {
      const expected = loadExpected('tiny-openvla');
      const base = OpenVla.load(fixturePath('tiny-openvla'), backend);
      const model = withDecoder(base, quantizeLlama(base.llm, had));
      const pixels = expected.pixel_values.toF32();
      const inputIds = ids(expected.input_ids);
      const projected = model.projector.forward(model.visionPatches(pixels));
      const { logits } = model.llm.forward(model.prefixEmbeds(inputIds, projected), model.llm.newCache(), { logits: 'all' });
      const diff = maxAbsDiff(logits!.data, expected.prefix_logits.toF32());
      assert.ok(diff <= PARITY_F32_MAX_ABS, `prefix logits max abs error ${diff.toExponential(2)}`);
      const result = model.predictAction({ pixelValues: pixels, inputIds });
      assert.deepEqual(result.actionTokenIds, ids(expected.action_token_ids));
    });
  });
}
