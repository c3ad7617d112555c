// Parity with the PyTorch reference (transformers / timm / OpenVLA predict_action) on the four fixtures, on every
// backend this build has. Reference values come only from test/fixtures/*/expected.safetensors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readImageFile } from '../../src/io/image.js';
import { Llama } from '../../src/models/llama.js';
import { OpenVla } from '../../src/models/openvla.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { readJsonFile } from '../../src/io/json.js';
import { ACTION_MAX_ABS, PARITY_F32_MAX_ABS, PARITY_PROBS_MAX_ABS, PIXEL_VALUES_MAX_ABS } from '../tolerances.js';
import { fixturePath, fixtureWeights, ids, loadExpected, maxAbsDiff } from '../support/fixtures.js';
import { testBackends } from '../support/backends.js';
import type { Tensor } from '../../src/tensor/tensor.js';

function assertClose(name: string, ours: Tensor | Float32Array | number[], reference: Tensor, tolerance: number): void {
  const a = Array.isArray(ours) || ours instanceof Float32Array ? ours : ours.toF32();
  const diff = maxAbsDiff(a, reference.toF32());
  assert.ok(diff <= tolerance, `${name}: max abs error ${diff.toExponential(2)} > ${tolerance}`);
}

for (const backend of await testBackends()) {
  describe(`parity on the ${backend.name} backend`, () => {
    test('tiny-llama: hidden states, attention probabilities, logits, greedy continuation', () => {
      const expected = loadExpected('tiny-llama');
      const config = readJsonFile(fixturePath('tiny-llama', 'config.json'), 'config') as Record<string, unknown>;
      const llm = Llama.load(fixtureWeights('tiny-llama'), config, backend);
      assert.equal(llm.config.kvHeads, 2);
      const inputIds = ids(expected.input_ids);
      const hidden = new Map<number, Tensor>();
      const probs = new Map<number, Tensor>();
      const { logits } = llm.forward(llm.embed(Int32Array.from(inputIds)), llm.newCache(), {
        logits: 'all',
        hooks: {
          capture: (name, layer, t) => {
            if (name === 'embeddings') hidden.set(0, t);
            if (name === 'layer_out' && layer < llm.config.layers - 1) hidden.set(layer + 1, t);
            if (name === 'final_norm') hidden.set(llm.config.layers, t);
          },
          wantAttention: () => true,
          onAttention: (layer, p) => probs.set(layer, p),
        },
      });
      for (let i = 0; i <= llm.config.layers; i++) assertClose(`hidden_states.${i}`, hidden.get(i)!, expected[`hidden_states.${i}`], PARITY_F32_MAX_ABS);
      for (let i = 0; i < llm.config.layers; i++) assertClose(`attentions.${i}`, probs.get(i)!, expected[`attentions.${i}`], PARITY_PROBS_MAX_ABS);
      assertClose('logits', logits!, expected.logits, PARITY_F32_MAX_ABS);
      const generated = ids(expected.generated_ids);
      const { ids: ours } = llm.generateGreedy(llm.embed(Int32Array.from(inputIds)), generated.length);
      assert.deepEqual(ours, generated);
    });

    for (const name of ['tiny-dinov2-reg4', 'tiny-siglip']) {
      test(`${name}: penultimate patch features and forward_features`, () => {
        const expected = loadExpected(name);
        const config = readJsonFile(fixturePath(name, 'config.json'), 'config') as { overrides: { num_heads: number } };
        const vit = VisionTransformer.load(fixtureWeights(name), config.overrides.num_heads, backend);
        const pixels = expected.pixel_values.toF32();
        assertClose('penultimate_patches', vit.penultimatePatches(pixels), expected.penultimate_patches, PARITY_F32_MAX_ABS);
        assertClose('forward_features', vit.forwardFeatures(pixels), expected.forward_features, PARITY_F32_MAX_ABS);
      });
    }

    test('tiny-openvla: pixel values, vision patches, projector, prefix logits, action tokens, action', () => {
      const expected = loadExpected('tiny-openvla');
      const model = OpenVla.load(fixturePath('tiny-openvla'), backend);
      const pixels = model.preprocess(readImageFile(fixturePath('tiny-openvla', 'image.png')));
      assertClose('pixel_values', pixels, expected.pixel_values, PIXEL_VALUES_MAX_ABS);
      const patches = model.visionPatches(pixels);
      assertClose('vision_patches', patches, expected.vision_patches, PARITY_F32_MAX_ABS);
      const projected = model.projector.forward(patches);
      assertClose('projected_patches', projected, expected.projected_patches, PARITY_F32_MAX_ABS);
      const inputIds = ids(expected.input_ids);
      const { logits } = model.llm.forward(model.prefixEmbeds(inputIds, projected), model.llm.newCache(), { logits: 'all' });
      assert.deepEqual(logits!.shape, [27, 576]);
      assertClose('prefix_logits', logits!, expected.prefix_logits, PARITY_F32_MAX_ABS);
      const result = model.predictAction({ pixelValues: pixels, inputIds });
      assert.deepEqual(result.actionTokenIds, ids(expected.action_token_ids));
      assert.ok(maxAbsDiff(result.normalizedAction, expected.normalized_action.data as Float64Array) <= ACTION_MAX_ABS);
      assert.ok(maxAbsDiff(result.action, expected.action.data as Float64Array) <= ACTION_MAX_ABS, `action ${result.action}`);
    });
  });
}
