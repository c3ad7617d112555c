// Hadamard matrices and transforms against the math: orthogonality, the Sylvester construction, and the fast
// transform equal to multiplying by the explicit matrix, for powers of two and the other widths we meet
// (fixtures' 160, head dims 24/40/80, Llama-2's 11008 = 2^8·43).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hadamardBlockSize, hadamardMatrix, hadamardRows, randomSigns, rotateRows, rotateRowsInverse } from '../../src/quant/hadamard.js';
import { mulberry32 } from '../../src/random.js';
import { EXACT } from '../tolerances.js';

test('block size: largest power of two dividing the width', () => {
  assert.deepEqual([64, 128, 4096, 160, 24, 40, 80, 11008, 1, 7].map(hadamardBlockSize), [64, 128, 4096, 32, 8, 8, 16, 256, 1, 1]);
});

for (const width of [1, 2, 8, 16, 24, 40, 64, 80, 160]) {
  test(`hadamard ${width}: orthogonal, symmetric, FWHT equals the explicit matrix`, () => {
    const h = hadamardMatrix(width);
    for (let i = 0; i < width; i++) {
      for (let j = 0; j < width; j++) {
        assert.equal(h[i * width + j], h[j * width + i]);
        let dot = 0;
        for (let k = 0; k < width; k++) dot += h[i * width + k] * h[j * width + k];
        assert.ok(Math.abs(dot - (i === j ? 1 : 0)) <= EXACT, `H·Hᵀ[${i},${j}] = ${dot}`);
      }
    }
    const uniform = mulberry32(width);
    const rows = 3;
    const x = Float64Array.from({ length: rows * width }, () => uniform() * 2 - 1);
    const fast = Float64Array.from(x);
    hadamardRows(fast, width);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < width; c++) {
        let sum = 0;
        for (let k = 0; k < width; k++) sum += x[r * width + k] * h[k * width + c];
        assert.ok(Math.abs(sum - fast[r * width + c]) <= EXACT);
      }
    }
  });
}

test('a power-of-two Hadamard spreads a one-hot outlier evenly; 11008 spreads it over a 256-block', () => {
  const x = new Float64Array(4096);
  x[17] = 100;
  hadamardRows(x, 4096);
  assert.ok(x.every((v) => Math.abs(Math.abs(v) - 100 / 64) <= EXACT));
  const y = new Float64Array(11008);
  y[300] = 16;
  hadamardRows(y, 11008);
  assert.equal(y.filter((v) => v !== 0).length, 256);
});

test('randomized Hadamard: Q·Qᵀ = I (rotate then inverse gives the input back), seeded signs', () => {
  for (const width of [64, 160, 11008]) {
    const q = { width, signs: randomSigns(width, 7) };
    const uniform = mulberry32(1);
    const x = Float64Array.from({ length: 2 * width }, () => uniform() - 0.5);
    const y = Float64Array.from(x);
    rotateRows(y, q);
    rotateRowsInverse(y, q);
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= EXACT);
  }
  assert.deepEqual(randomSigns(32, 3), randomSigns(32, 3));
  assert.notDeepEqual(randomSigns(32, 3), randomSigns(32, 4));
});
