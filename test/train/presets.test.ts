// The mini/tiny presets' initialization: the ViT position embeddings start as 2-D sine-cosine codes of the patch's
// row and column (values from the formula, written out here), so a from-scratch ViT knows where each patch is.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getPreset, initWeights, sincosPositionEmbedding } from '../../src/train/presets.js';

test('sincos position embedding: row code then column code, ω_i = 10000^(-i/(d/4))', () => {
  const side = 3;
  const d = 8; // quarter = 2: ω = 1, 1/100
  const pe = sincosPositionEmbedding(side, d);
  assert.deepEqual(pe.shape, [1, 9, 8]);
  const at = (r: number, c: number) => Array.from(pe.data.subarray((r * side + c) * d, (r * side + c + 1) * d));
  const expected = (r: number, c: number) => [
    Math.sin(r), Math.sin(r / 100), Math.cos(r), Math.cos(r / 100),
    Math.sin(c), Math.sin(c / 100), Math.cos(c), Math.cos(c / 100),
  ];
  for (const [r, c] of [[0, 0], [1, 2], [2, 1]]) {
    at(r, c).forEach((v, i) => assert.ok(Math.abs(v - expected(r, c)[i]) < 1e-6, `(${r},${c})[${i}] ${v} vs ${expected(r, c)[i]}`));
  }
  assert.throws(() => sincosPositionEmbedding(2, 6), /divisible by 4/);
});

test('initWeights gives every ViT the sincos position embedding of its patch grid', () => {
  const sizes = getPreset('tiny');
  const weights = initWeights(sizes, 64, 1);
  const side = sizes.imageSize / 14;
  for (const [part, b] of [['featurizer', 0], ['fused_featurizer', 1]] as const) {
    const pe = weights.get(`vision_backbone.${part}.pos_embed`)!;
    assert.deepEqual(Array.from(pe.data), Array.from(sincosPositionEmbedding(side, sizes.vitWidths[b]).data));
  }
});
