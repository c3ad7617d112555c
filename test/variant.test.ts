import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseVariant, parseVariantList } from '../src/variant.js';
import { UserError } from '../src/errors.js';

test('parseVariant: canonical names and parts', () => {
  assert.deepEqual(parseVariant('base'), { name: 'base', quant: undefined, had: false, gptq: false, prune: undefined });
  const v = parseVariant('sqap@0.5+had+W4A4');
  assert.equal(v.name, 'w4a4+had+sqap@0.5');
  assert.deepEqual(v.quant, { scheme: 'w4a4', weightBits: 4, activationBits: 4 });
  assert.deepEqual(v.prune, { method: 'sqap', keep: 0.5 });
  assert.equal(parseVariant('w4a16+gptq').quant?.activationBits, 16);
  assert.equal(parseVariant('had').name, 'had');
  assert.equal(parseVariant('fastv@1').prune?.keep, 1);
});

test('parseVariant: one-line UserErrors for bad parts', () => {
  for (const bad of ['', 'w3a3', 'w4a4+w8a8', 'gptq', 'base+had', 'sqap@0', 'sqap@1.5', 'sqap@-0.5', 'foo@0.5', 'sqap@', 'sqap@0.5@1', 'had+had', 'w4a4++had']) {
    assert.throws(() => parseVariant(bad), (e: unknown) => e instanceof UserError && !e.message.includes('\n'), bad);
  }
});

test('parseVariantList: distinct canonical names', () => {
  assert.deepEqual(parseVariantList('base,w4a4+had').map((v) => v.name), ['base', 'w4a4+had']);
  assert.throws(() => parseVariantList('had+w4a4,w4a4+had'), UserError);
});
