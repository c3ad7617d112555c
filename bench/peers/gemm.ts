// Our linear kernels against ONNX Runtime's CPU kernels on OpenVLA-7B's Llama shapes, in one process, interleaved,
// with the same thread count (2 unless --threads N): ORT MatMul (f32, its constant weights prepacked at session
// creation) vs our f32 and bf16, plain and prepacked (Backend.prepack, as the vision towers run); ORT DynamicQuantizeMatMul
// (W8A8: int8 weights per column, activations quantized per tensor at run time) vs our W8A8; ORT MatMulNBits (bits 4,
// block 32, accuracy_level 4 = int8 activations) vs our W4A8 (per channel and group 128) and W4A16.
// The ONNX models are written in code (onnx-model.ts). Install once: cd bench/peers &&
// ONNXRUNTIME_NODE_INSTALL=skip npm install. Run from the repository root: npx tsx bench/peers/gemm.ts [--quick] [--threads N] [--rows 1,290]
import * as ort from 'onnxruntime-node';
import { nativeBackend, nativeInfo } from '../../src/tensor/backends/native.js';
import { benchActivations, benchWeights, makeCase, measureBandwidth, timeInterleaved, type CaseName } from '../linear-cases.js';
import { DataType, intAttribute, model, node, tensor, valueInfo } from './onnx-model.js';

const quick = process.argv.includes('--quick');
const threadsFlag = process.argv.indexOf('--threads');
const threads = threadsFlag > 0 ? Number(process.argv[threadsFlag + 1]) : 2;
const SHAPES: Array<[number, number]> = quick ? [[4096, 4096]] : [[4096, 4096], [4096, 11008], [11008, 4096]];
const rowsFlag = process.argv.indexOf('--rows');
/** M values to run (--rows 1,290: the default) */
const ROWS = rowsFlag > 0 ? process.argv[rowsFlag + 1].split(',').map(Number) : [1, 290];
if (ROWS.some((m) => !Number.isInteger(m) || m < 1)) throw new Error(`--rows takes positive integers joined by commas, got ${process.argv[rowsFlag + 1]}`);

/** W [N,K] row-major -> [K,N] (ONNX MatMul's B) */
function transpose(w: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) out[c * n + r] = w[r * k + c];
  return out;
}

function matmulModel(w: Float32Array, n: number, k: number): Uint8Array {
  return model({
    nodes: [node('MatMul', ['X', 'W'], ['Y'])],
    initializers: [tensor('W', DataType.FLOAT, [k, n], transpose(w, n, k))],
    inputs: [valueInfo('X', DataType.FLOAT, ['M', k])],
    outputs: [valueInfo('Y', DataType.FLOAT, ['M', n])],
  });
}

/** int8 B [K,N] symmetric per column (zero point 0), scales [N] */
function dynamicQuantizeMatMulModel(w: Float32Array, n: number, k: number): Uint8Array {
  const codes = new Int8Array(k * n);
  const scales = new Float32Array(n);
  for (let c = 0; c < n; c++) {
    let amax = 0;
    for (let r = 0; r < k; r++) amax = Math.max(amax, Math.abs(w[c * k + r]));
    scales[c] = amax / 127 || 1;
    for (let r = 0; r < k; r++) codes[r * n + c] = Math.round(w[c * k + r] / scales[c]);
  }
  return model({
    nodes: [node('DynamicQuantizeMatMul', ['X', 'B', 'b_scale', 'b_zero_point'], ['Y'], [], 'com.microsoft')],
    initializers: [
      tensor('B', DataType.INT8, [k, n], codes),
      tensor('b_scale', DataType.FLOAT, [n], scales),
      tensor('b_zero_point', DataType.INT8, [n], new Int8Array(n)),
    ],
    inputs: [valueInfo('X', DataType.FLOAT, ['M', k])],
    outputs: [valueInfo('Y', DataType.FLOAT, ['M', n])],
  });
}

/** B uint8 [N, K/32, 16] (4-bit codes + 8, low nibble first), scales [N·K/32], default zero point 8 */
function matMulNBitsModel(w: Float32Array, n: number, k: number, block = 32): Uint8Array {
  const blocks = k / block;
  const packed = new Uint8Array((n * k) / 2);
  const scales = new Float32Array(n * blocks);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      for (let i = 0; i < block; i++) amax = Math.max(amax, Math.abs(w[r * k + b * block + i]));
      const scale = amax / 7 || 1;
      scales[r * blocks + b] = scale;
      for (let i = 0; i < block; i++) {
        const q = Math.max(-8, Math.min(7, Math.round(w[r * k + b * block + i] / scale))) + 8;
        packed[(r * k + b * block + i) >> 1] |= q << (i & 1 ? 4 : 0);
      }
    }
  }
  return model({
    nodes: [
      node('MatMulNBits', ['X', 'B', 'scales'], ['Y'], [
        intAttribute('K', k), intAttribute('N', n), intAttribute('bits', 4), intAttribute('block_size', block),
        intAttribute('accuracy_level', 4),
      ], 'com.microsoft'),
    ],
    initializers: [tensor('B', DataType.UINT8, [n, blocks, block / 2], packed), tensor('scales', DataType.FLOAT, [n * blocks], scales)],
    inputs: [valueInfo('X', DataType.FLOAT, ['M', k])],
    outputs: [valueInfo('Y', DataType.FLOAT, ['M', n])],
  });
}

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // ORT's pool threads spin after each run by default, which would steal the cores from the next (our) call in
    // the interleaved timing; our pool blocks on a condition variable, so both sides sleep between calls.
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}

/** ORT run made synchronous for the interleaved timer: the promise resolves on the native thread pool's completion. */
async function timeAsyncInterleaved(fns: Array<() => unknown>, reps: number): Promise<number[]> {
  for (const f of fns) await f();
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    for (let i = 0; i < fns.length; i++) {
      const start = performance.now();
      await fns[i]();
      times[i].push((performance.now() - start) / 1e3);
    }
  }
  return times.map((t) => [...t].sort((a, b) => a - b)[t.length >> 1]);
}

async function main(): Promise<void> {
  const backend = nativeBackend;
  if (!backend) throw new Error('the native addon is not built (npm rebuild)');
  if (process.env.SQAP_THREADS === undefined) console.log(`(set SQAP_THREADS=${threads} to match ORT's thread count exactly)`);
  const info = nativeInfo()!;
  const bandwidth = measureBandwidth();
  console.log(`ours: native isa ${info.isa}, ${info.threads} threads; ONNX Runtime ${ort.env.versions.common}, ${threads} intra-op threads`);
  console.log(`memory bandwidth (256 MiB stream read): ${(bandwidth / 1e9).toFixed(1)} GB/s`);
  console.log('G(FL)OP/s = 2·M·K·N / median time (interleaved calls); ratio = ORT time / our time (> 1: we are faster)\n');
  const pairs: Array<[string, CaseName[]]> = [
    ['MatMul f32', ['f32', 'f32-pre', 'bf16', 'bf16-pre', 'bf16-dot']],
    ['DynamicQuantizeMatMul', ['w8a8']],
    ['MatMulNBits b4 blk32 acc4', ['w4a8', 'w4a8-g128', 'w4a16']],
  ];
  const header = ['M', 'K', 'N', 'ORT op', 'ORT GOP/s', 'ours', 'ours GOP/s', 'ours/ORT', 'ours % bw'];
  const rows: string[][] = [];
  for (const [k, n] of SHAPES) {
    const w = benchWeights(n, k, k * 31 + n);
    const sessions = [await session(matmulModel(w, n, k)), await session(dynamicQuantizeMatMulModel(w, n, k)), await session(matMulNBitsModel(w, n, k))];
    for (const m of ROWS) {
      const x = benchActivations(m, k);
      const feeds = { X: new ort.Tensor('float32', x.data, [m, k]) };
      const ours = pairs.map(([, names]) => names.map((name) => makeCase(backend, name, x, w, n, k)));
      const fns: Array<() => unknown> = [];
      sessions.forEach((s, i) => {
        fns.push(() => s.run(feeds));
        for (const c of ours[i]) fns.push(c.run);
      });
      const seconds = await timeAsyncInterleaved(fns, quick ? 3 : m === 1 ? 11 : 5);
      let at = 0;
      pairs.forEach(([op], i) => {
        const ortSeconds = seconds[at++];
        for (const c of ours[i]) {
          const s = seconds[at++];
          const gops = (t: number) => ((2 * m * k * n) / t / 1e9).toFixed(1);
          rows.push([`${m}`, `${k}`, `${n}`, op, gops(ortSeconds), c.name, gops(s), `${(ortSeconds / s).toFixed(2)}x`,
            m === 1 ? `${((100 * c.weightBytes) / s / bandwidth).toFixed(0)}%` : '']);
        }
      });
      console.error(`  measured M=${m} K=${k} N=${n}`);
    }
    for (const s of sessions) await s.release();
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

await main();
