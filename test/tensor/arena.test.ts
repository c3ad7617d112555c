// The per-step buffer pool (src/tensor/arena.ts): buffers are zero-filled, reused after releaseAll (not before),
// sized by capacity class, and allocF32 outside an arena is a plain new array.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allocF32, BufferArena, capacityClass, withArena } from '../../src/tensor/arena.js';

test('capacity classes round up by at most 25% and never below the request', () => {
  for (const n of [1, 1023, 1024, 1025, 1280, 1281, 1536, 1537, 1792, 1793, 2047, 2048, 100_000, 3_000_001]) {
    const c = capacityClass(n);
    assert.ok(c >= n, `${n} -> ${c}`);
    if (n > 1024) assert.ok(c <= n * 1.25 + 1, `${n} -> ${c}`);
  }
  assert.equal(capacityClass(1025), 1280);
  assert.equal(capacityClass(1281), 1536);
  assert.equal(capacityClass(2047), 2048);
});

test('a released buffer is reused, zero-filled; a lent one is not handed out twice', () => {
  const arena = new BufferArena();
  const a = withArena(arena, () => allocF32(5000));
  const b = withArena(arena, () => allocF32(5000));
  assert.notEqual(a.buffer, b.buffer);
  a.fill(7);
  b.fill(9);
  assert.equal(arena.allocated, 2);
  arena.releaseAll();
  const c = withArena(arena, () => allocF32(4990));
  assert.equal(c.length, 4990);
  assert.ok(c.buffer === a.buffer || c.buffer === b.buffer, 'reused');
  assert.ok(c.every((x) => x === 0), 'zero-filled');
  assert.equal(arena.allocated, 2);
  // small requests are not pooled
  const small = withArena(arena, () => allocF32(100));
  assert.equal(small.length, 100);
  assert.equal(arena.allocated, 2);
});

test('outside an arena allocF32 is a fresh array; withArena restores the previous arena, even on a throw', () => {
  const arena = new BufferArena();
  assert.throws(() => withArena(arena, () => { throw new Error('boom'); }), /boom/);
  allocF32(10_000);
  assert.equal(arena.allocated, 0);
  const inner = new BufferArena();
  withArena(arena, () => {
    withArena(inner, () => allocF32(10_000));
    allocF32(10_000);
  });
  assert.equal(inner.allocated, 1);
  assert.equal(arena.allocated, 1);
});
