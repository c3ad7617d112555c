// KVCache: append/grow, pruning with keep(), and positions that continue from the unpruned length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVCache } from '../../src/models/kv-cache.js';
import { Tensor } from '../../src/tensor/tensor.js';

const KV_HEADS = 2;
const HEAD_DIM = 3;
const ROW = KV_HEADS * HEAD_DIM;

/** [tokens, Hkv, Dh] whose every element of token t is `base + t` */
function tokens(base: number, count: number): Tensor<'f32'> {
  return Tensor.f32([count, KV_HEADS, HEAD_DIM], Float32Array.from({ length: count * ROW }, (_, i) => base + Math.floor(i / ROW)));
}

/** first element of each cached token row */
function rowIds(t: Tensor<'f32'>): number[] {
  return Array.from({ length: t.shape[0] }, (_, i) => t.data[i * ROW]);
}

test('append grows past the initial capacity and keeps every token in order', () => {
  const cache = new KVCache(2, KV_HEADS, HEAD_DIM, 2);
  for (let layer = 0; layer < 2; layer++) {
    cache.append(layer, tokens(0, 3), tokens(100, 3));
    const [k, v] = cache.append(layer, tokens(3, 4), tokens(103, 4));
    assert.deepEqual(k.shape, [7, KV_HEADS, HEAD_DIM]);
    assert.deepEqual(rowIds(k), [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(rowIds(v), [100, 101, 102, 103, 104, 105, 106]);
  }
});

test('keep removes tokens from layers >= fromLayer only, and new tokens keep the unpruned positions', () => {
  const cache = new KVCache(3, KV_HEADS, HEAD_DIM);
  const prefixPositions = cache.takePositions(6);
  assert.deepEqual([...prefixPositions], [0, 1, 2, 3, 4, 5]);
  for (let layer = 0; layer < 3; layer++) cache.append(layer, tokens(0, 6), tokens(50, 6));
  cache.keep(Int32Array.of(0, 2, 5), 1);
  assert.equal(cache.layerLength(0), 6);
  assert.deepEqual(rowIds(cache.layerKeys(0)), [0, 1, 2, 3, 4, 5]);
  for (const layer of [1, 2]) {
    assert.equal(cache.layerLength(layer), 3);
    assert.deepEqual(rowIds(cache.layerKeys(layer)), [0, 2, 5]);
    assert.deepEqual(rowIds(cache.layerValues(layer)), [50, 52, 55]);
  }
  // the next token is position 6 (the 7th of the full prompt), not 3
  assert.deepEqual([...cache.takePositions(1)], [6]);
  const [k] = cache.append(2, tokens(6, 1), tokens(56, 1));
  assert.deepEqual(rowIds(k), [0, 2, 5, 6]);
});

test('keep never pads a layer the current pass has not reached (no phantom keys)', () => {
  // prune at layer 1 of 3 mid-prefill: layers 0 and 1 are filled, layer 2 is not yet
  const cache = new KVCache(3, KV_HEADS, HEAD_DIM);
  cache.takePositions(5);
  for (const layer of [0, 1]) cache.append(layer, tokens(0, 5), tokens(50, 5));
  assert.throws(() => cache.keep(Int32Array.of(0, 2, 4), 1), /outside layer 2's 0 cached tokens/);
  assert.equal(cache.layerLength(2), 0);
  cache.keep(Int32Array.of(0, 2, 4), 1, 2);
  assert.deepEqual(rowIds(cache.layerKeys(1)), [0, 2, 4]);
  assert.deepEqual(rowIds(cache.layerKeys(0)), [0, 1, 2, 3, 4]);
  const [k] = cache.append(2, tokens(0, 3), tokens(50, 3));
  assert.equal(k.shape[0], 3);
});

test('keep checks that indices are strictly ascending and inside the cache', () => {
  const cache = new KVCache(2, KV_HEADS, HEAD_DIM);
  for (let layer = 0; layer < 2; layer++) cache.append(layer, tokens(0, 4), tokens(50, 4));
  assert.throws(() => cache.keep(Int32Array.of(2, 1)), /strictly ascending/);
  assert.throws(() => cache.keep(Int32Array.of(1, 1)), /strictly ascending/);
  assert.throws(() => cache.keep(Int32Array.of(-1, 1)), /non-negative/);
  assert.throws(() => cache.keep(Int32Array.of(0, 4)), /outside layer 0's 4/);
  assert.throws(() => cache.keep(Int32Array.of(0), 1, 3), /layer range/);
  assert.equal(cache.layerLength(0), 4);
  cache.keep(Int32Array.of(1, 3));
  assert.deepEqual(rowIds(cache.layerValues(1)), [51, 53]);
});
