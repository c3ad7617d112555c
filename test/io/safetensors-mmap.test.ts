// Memory-mapped reads (src/io/safetensors.ts, MAP_MIN_BYTES): large float tensors come back over a private mapping
// of the file when the native addon is built. They must hold the stored bytes, never write through to the file
// (copy-on-write), stay valid after the file is closed, and be skipped for small and integer tensors, for reads with
// map: false (tensors converted and dropped at once) and with SQAP_MMAP=0.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import nodePath from 'node:path';
import { test } from 'node:test';
import { MAP_MIN_BYTES, SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { nativeBackend } from '../../src/tensor/backends/native.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { tempDir } from './helpers.js';

const skip = nativeBackend && process.platform === 'linux' ? false : 'needs the native addon and /proc/self/maps (Linux)';

/** Whether `file` is memory-mapped by this process. */
function isMapped(file: string): boolean {
  return fs.readFileSync('/proc/self/maps', 'utf8').includes(fs.realpathSync(file));
}

test('large float tensors are memory-mapped, copy-on-write; small and integer ones are read', { skip }, () => {
  const dir = tempDir();
  const file = nodePath.join(dir, 'm.safetensors');
  const n = MAP_MIN_BYTES / 2 + 5; // bf16 elements: just over the threshold
  const big = new Tensor('bf16', [n], Uint16Array.from({ length: n }, (_, i) => (i * 7919) & 0xffff));
  const codes = new Tensor('u8', [MAP_MIN_BYTES * 2], Uint8Array.from({ length: MAP_MIN_BYTES * 2 }, (_, i) => i & 255));
  writeSafetensors(file, { big, codes, small: Tensor.f32([3], [1, 2, 3]) });
  const before = fs.readFileSync(file);
  const reader = SafetensorsFile.open(file);
  const small = reader.read('small');
  const bytes = reader.read('codes');
  const copied = reader.read('big', { map: false });
  assert.equal(isMapped(file), false, 'small float and integer tensors, and map: false reads, are copied');
  assert.deepEqual(copied.data, big.data);
  const mapped = reader.read('big');
  assert.equal(isMapped(file), true, 'a float tensor over the threshold is mapped');
  assert.deepEqual(mapped.data, big.data);
  assert.deepEqual([...small.data], [1, 2, 3]);
  assert.deepEqual(bytes.data, codes.data);
  reader.close();
  // still readable after close; writes stay private
  mapped.data[0] = 0xabcd;
  mapped.data[n - 1] = 0x1234;
  assert.equal(mapped.data[0], 0xabcd);
  assert.ok(fs.readFileSync(file).equals(before), 'writing a mapped tensor must not change the file');
  const again = SafetensorsFile.open(file);
  assert.deepEqual(again.read('big').data, big.data);
  again.close();
});

test('SQAP_MMAP=0 reads instead of mapping (same values)', { skip }, () => {
  const dir = tempDir();
  const file = nodePath.join(dir, 'n.safetensors');
  const n = MAP_MIN_BYTES / 4;
  const big = Tensor.f32([n], Float32Array.from({ length: n }, (_, i) => i / 3));
  writeSafetensors(file, { big });
  const saved = process.env.SQAP_MMAP;
  process.env.SQAP_MMAP = '0';
  try {
    const reader = SafetensorsFile.open(file);
    assert.deepEqual(reader.read('big').data, big.data);
    assert.equal(isMapped(file), false);
    reader.close();
  } finally {
    if (saved === undefined) delete process.env.SQAP_MMAP;
    else process.env.SQAP_MMAP = saved;
  }
});
