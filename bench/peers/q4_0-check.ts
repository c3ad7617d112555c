// Checks gguf.ts's Q4_0 quantizer bit for bit against llama.cpp's own reference, ggml's quantize_row_q4_0_ref in the
// libggml-base.so that node-llama-cpp ships, called through python3's ctypes (standard library only).
// Run from the repository root: npx tsx bench/peers/q4_0-check.ts
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mulberry32 } from '../../src/random.js';
import { Q4_0_BLOCK, Q4_0_BLOCK_BYTES, quantizeRowQ4_0 } from './gguf.js';

const BLOCKS = 1 << 16;
const next = mulberry32(11);
const x = new Float32Array(BLOCKS * Q4_0_BLOCK);
for (let i = 0; i < x.length; i++) x[i] = (2 * next() - 1) * 10 ** (Math.floor(next() * 8) - 4);
// edge blocks: all zeros, a lone negative / positive maximum, codes exactly at a rounding boundary, equal magnitudes
x.fill(0, 0, 32);
x.fill(0, 32, 64); x[40] = -3;
x.fill(0, 64, 96); x[70] = 3;
for (let j = 0; j < 32; j++) x[96 + j] = (j - 16) / 2; // x/d + 8.5 lands on halves
for (let j = 0; j < 32; j++) x[128 + j] = j % 2 ? 1 : -1;

const ours = new Uint8Array(BLOCKS * Q4_0_BLOCK_BYTES);
quantizeRowQ4_0(x, ours, 0);

// the CPU build node-llama-cpp installs for linux-x64 (bench/peers/node_modules)
const library = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so');
if (!fs.existsSync(library)) throw new Error(`${library} not found: install bench/peers (see bench/README.md) on linux-x64`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'q4_0-check-'));
try {
  fs.writeFileSync(path.join(dir, 'x.f32'), x);
  execFileSync('python3', ['-c', `
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
data = open(sys.argv[2] + '/x.f32', 'rb').read()
k = len(data) // 4
out = ctypes.create_string_buffer(k // 32 * 18)
lib.quantize_row_q4_0_ref.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int64]
lib.quantize_row_q4_0_ref(data, out, k)
open(sys.argv[2] + '/ggml.q4_0', 'wb').write(out.raw)
`, library, dir], { stdio: 'inherit' });
  const ggml = new Uint8Array(fs.readFileSync(path.join(dir, 'ggml.q4_0')));
  let differing = 0;
  for (let b = 0; b < BLOCKS; b++) {
    for (let j = 0; j < Q4_0_BLOCK_BYTES; j++) {
      if (ours[b * Q4_0_BLOCK_BYTES + j] !== ggml[b * Q4_0_BLOCK_BYTES + j]) { differing++; break; }
    }
  }
  console.log(`Q4_0: ${BLOCKS} blocks, ${differing} differ from ggml's quantize_row_q4_0_ref (${library})`);
  process.exitCode = differing === 0 ? 0 : 1;
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
