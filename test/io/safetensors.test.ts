import assert from 'node:assert/strict';
import fs from 'node:fs';
import nodePath from 'node:path';
import { test } from 'node:test';
import { readJsonFile } from '../../src/io/json.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { allocate, BYTES_PER_ELEMENT, type DType } from '../../src/tensor/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { bytesOf, concatBytes, countingIO, seededRandom, tempDir, u64le } from './helpers.js';

const FIXTURES = nodePath.join(import.meta.dirname, '..', 'fixtures');
const ALL_DTYPES: DType[] = ['f32', 'f64', 'bf16', 'f16', 'i8', 'u8', 'i32', 'i64'];

/** A tensor of random bit patterns (any bits are valid for the round trip; floats may be NaN with payloads). */
function randomTensor(dtype: DType, shape: number[], random: () => number): Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = allocate(dtype, size);
  const bytes = bytesOf(data);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
  return new Tensor(dtype, shape, data);
}

test('round trip: every dtype, with 2-d, 3-d, empty and 0-d shapes, and metadata', () => {
  const dir = tempDir();
  const random = seededRandom(1234);
  const shapes = [[3, 5], [2, 1, 3], [0], [4, 0, 2], []];
  const tensors: Record<string, Tensor> = {};
  for (const dtype of ALL_DTYPES) shapes.forEach((shape, i) => (tensors[`${dtype}.${i}`] = randomTensor(dtype, shape, random)));
  const file = nodePath.join(dir, 'roundtrip.safetensors');
  writeSafetensors(file, tensors, { format: 'pt', note: 'héllo "quoted"\nline' });

  const reader = SafetensorsFile.open(file);
  try {
    assert.deepEqual(reader.metadata, { format: 'pt', note: 'héllo "quoted"\nline' });
    assert.deepEqual(reader.keys(), Object.keys(tensors).sort());
    for (const [name, expected] of Object.entries(tensors)) {
      const got = reader.read(name);
      assert.equal(got.dtype, expected.dtype, name);
      assert.deepEqual(got.shape, expected.shape, name);
      assert.deepEqual(bytesOf(got.data), bytesOf(expected.data), name);
      assert.equal(got.data.byteOffset % got.data.BYTES_PER_ELEMENT, 0, `${name} is aligned`);
    }
    assert.equal(reader.read('bf16.0').data.constructor, Uint16Array, 'bf16 stays 16-bit, no conversion');
    assert.equal(reader.read('f32.4').rank, 0);
    assert.equal(reader.read('f32.4').size, 1);
  } finally {
    reader.close();
  }
  assert.equal(fs.readdirSync(dir).length, 1, 'no temporary file left behind');
});

test('writer is byte-identical to the reference (huggingface/safetensors tensor.rs test vectors)', () => {
  const dir = tempDir();
  const text = (s: string) => new TextEncoder().encode(s);
  const zeroToFive = bytesOf(Float32Array.from([0, 1, 2, 3, 4, 5]));
  const cases: Array<[string, Record<string, Tensor>, Record<string, string> | undefined, Uint8Array]> = [
    // test_serialization: a 64-byte header needs no padding.
    [
      'serialization',
      { 'attn.0': Tensor.f32([1, 2, 3], [0, 1, 2, 3, 4, 5]) },
      undefined,
      concatBytes(u64le(64), text('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'), zeroToFive),
    ],
    // test_serialization_forced_alignement: 65 bytes of JSON padded with 7 spaces to 72.
    [
      'forced_alignment',
      { attn0: Tensor.f32([1, 1, 2, 3], [0, 1, 2, 3, 4, 5]) },
      undefined,
      concatBytes(u64le(72), text('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       '), zeroToFive),
    ],
    // test_empty, without and with metadata.
    ['empty', {}, undefined, concatBytes(u64le(8), text('{}      '))],
    ['empty_metadata', {}, { framework: 'pt' }, concatBytes(u64le(40), text('{"__metadata__":{"framework":"pt"}}     '))],
  ];
  for (const [label, tensors, metadata, expected] of cases) {
    const file = nodePath.join(dir, `${label}.safetensors`);
    writeSafetensors(file, tensors, metadata);
    assert.deepEqual(new Uint8Array(fs.readFileSync(file)), expected, label);
  }
});

test('writer orders data by descending dtype alignment, then name, as the reference writer does', () => {
  const dir = tempDir();
  const tensors: Record<string, Tensor> = {
    b_u8: Tensor.zeros([3], 'u8'),
    a_u8: Tensor.zeros([1], 'u8'),
    c_bf16: Tensor.zeros([2], 'bf16'),
    d_f32: Tensor.zeros([1], 'f32'),
    e_i64: Tensor.zeros([1], 'i64'),
    f_f16: Tensor.zeros([1], 'f16'),
    g_i32: Tensor.zeros([1], 'i32'),
    h_i8: Tensor.zeros([1], 'i8'),
    i_f64: Tensor.zeros([1], 'f64'),
    '10': Tensor.zeros([1], 'f32'), // an integer-like name must not jump to the front of the JSON object
  };
  const file = nodePath.join(dir, 'order.safetensors');
  writeSafetensors(file, tensors);
  const bytes = fs.readFileSync(file);
  const headerText = bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8');
  const namesInHeaderOrder = [...headerText.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
  assert.deepEqual(namesInHeaderOrder, ['e_i64', 'i_f64', '10', 'd_f32', 'g_i32', 'c_bf16', 'f_f16', 'h_i8', 'a_u8', 'b_u8']);
  const reader = SafetensorsFile.open(file);
  let previousEnd = reader.info('e_i64').byteOffset;
  for (const name of namesInHeaderOrder) {
    const info = reader.info(name);
    assert.equal(info.byteOffset, previousEnd, `${name} follows the previous tensor`);
    assert.equal(info.byteOffset % BYTES_PER_ELEMENT[info.dtype], 0, `${name} is aligned in the file`);
    previousEnd = info.byteOffset + info.byteLength;
  }
  reader.close();
});

test('reads the tiny-llama fixture: names, shapes and dtypes implied by its config.json', () => {
  const dir = nodePath.join(FIXTURES, 'tiny-llama');
  const config = readJsonFile(nodePath.join(dir, 'config.json'), 'model config') as Record<string, number | boolean>;
  const hidden = config.hidden_size as number;
  const kvWidth = (config.num_key_value_heads as number) * (config.head_dim as number);
  const reader = SafetensorsFile.open(nodePath.join(dir, 'model.safetensors'));
  try {
    const expectShape = (name: string, shape: number[]) => {
      const info = reader.info(name);
      assert.deepEqual(info.shape, shape, name);
      assert.equal(info.dtype, 'f32', `${name}: the fixture README says everything is float32`);
    };
    expectShape('model.embed_tokens.weight', [config.vocab_size as number, hidden]);
    assert.deepEqual(reader.info('model.embed_tokens.weight').shape, [320, 64]);
    expectShape('lm_head.weight', [config.vocab_size as number, hidden]); // tie_word_embeddings is false
    expectShape('model.norm.weight', [hidden]);
    for (let layer = 0; layer < (config.num_hidden_layers as number); layer++) {
      const p = `model.layers.${layer}`;
      expectShape(`${p}.self_attn.q_proj.weight`, [hidden, hidden]);
      expectShape(`${p}.self_attn.k_proj.weight`, [kvWidth, hidden]);
      expectShape(`${p}.self_attn.v_proj.weight`, [kvWidth, hidden]);
      expectShape(`${p}.mlp.gate_proj.weight`, [config.intermediate_size as number, hidden]);
      expectShape(`${p}.mlp.down_proj.weight`, [hidden, config.intermediate_size as number]);
      expectShape(`${p}.input_layernorm.weight`, [hidden]);
    }
    // 9 tensors per layer + embeddings, final norm and the untied lm_head.
    assert.equal(reader.keys().length, 9 * (config.num_hidden_layers as number) + 3);
    assert.deepEqual(reader.metadata, {});

    // The peer's own output ties the data to the file: hidden_states.0 is embed_tokens[input_ids] exactly.
    const expected = SafetensorsFile.open(nodePath.join(dir, 'expected.safetensors'));
    try {
      const inputIds = expected.read('input_ids');
      assert.equal(inputIds.dtype, 'i64');
      const embeddings = expected.read('hidden_states.0');
      const table = reader.read('model.embed_tokens.weight').data as Float32Array;
      const ids = inputIds.data as BigInt64Array;
      ids.forEach((id, t) => {
        const row = table.subarray(Number(id) * hidden, (Number(id) + 1) * hidden);
        assert.deepEqual(row, (embeddings.data as Float32Array).subarray(t * hidden, (t + 1) * hidden), `token ${t}`);
      });
    } finally {
      expected.close();
    }
  } finally {
    reader.close();
  }
});

test('open reads only the header; read() reads only the tensor asked for (counted at the fs.readSync hook)', () => {
  const dir = tempDir();
  const file = nodePath.join(dir, 'big.safetensors');
  const big = Tensor.zeros([64, 1024, 1024], 'u8'); // 64 MiB
  big.data[0] = 7;
  big.data[big.size - 1] = 9;
  writeSafetensors(file, { big, small: Tensor.f32([4], [1, 2, 3, 4]) });
  const prefix = Buffer.alloc(8);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, prefix, 0, 8, 0);
  fs.closeSync(fd);
  const headerLength = Number(prefix.readBigUInt64LE(0));

  const io = countingIO();
  const reader = SafetensorsFile.open(file, io);
  assert.equal(io.bytesRead, 8 + headerLength, 'open reads the length prefix and the header, nothing else');
  assert.ok(io.bytesRead < 4096);
  assert.deepEqual(reader.info('big').shape, [64, 1024, 1024]);
  assert.equal(io.bytesRead, 8 + headerLength, 'info() reads nothing');
  assert.deepEqual([...reader.read('small').data], [1, 2, 3, 4]);
  assert.equal(io.bytesRead, 8 + headerLength + 16);
  const bigRead = reader.read('big');
  assert.equal(io.bytesRead, 8 + headerLength + 16 + 64 * 1024 * 1024);
  assert.equal(bigRead.data[0], 7);
  assert.equal(bigRead.data[bigRead.size - 1], 9);
  reader.close();
});

test('a 5 GB (sparse) file opens instantly; a tensor past 4 GiB reads correctly', () => {
  // If open() buffered the file, this would fail (Node cannot read a 5 GB file into one Buffer) or take seconds.
  const dir = tempDir();
  const file = nodePath.join(dir, 'sparse.safetensors');
  const hugeBytes = 5_000_000_000;
  const header = JSON.stringify({
    huge: { dtype: 'BF16', shape: [hugeBytes / 2], data_offsets: [0, hugeBytes] },
    tail: { dtype: 'I32', shape: [2, 2], data_offsets: [hugeBytes, hugeBytes + 16] },
  });
  const headerBytes = new TextEncoder().encode(header);
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, concatBytes(u64le(headerBytes.length), headerBytes));
  fs.ftruncateSync(fd, 8 + headerBytes.length + hugeBytes + 16);
  fs.writeSync(fd, bytesOf(Int32Array.from([1, -2, 3, -4])), 0, 16, 8 + headerBytes.length + hugeBytes);
  fs.closeSync(fd);

  const io = countingIO();
  const started = performance.now();
  const reader = SafetensorsFile.open(file, io);
  assert.ok(performance.now() - started < 1000, 'open is instant');
  assert.equal(io.bytesRead, 8 + headerBytes.length);
  assert.deepEqual(reader.info('huge'), {
    name: 'huge',
    dtype: 'bf16',
    shape: [hugeBytes / 2],
    file,
    byteOffset: 8 + headerBytes.length,
    byteLength: hugeBytes,
  });
  assert.deepEqual([...reader.read('tail').data], [1, -2, 3, -4]);
  reader.close();
});
