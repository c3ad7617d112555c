// A fake eval policy (loadEvalPolicy(variant, options)) for the fake env of test/sim/fake-env.ts: it steers to the
// seeded target (recomputed from task and seed), but gives up on a deterministic, variant-dependent share of the
// episodes, and reports fixed per-step timings that shrink with quantization and pruning — so reports made from
// it show differences without any model, and its results files are byte-for-byte reproducible.
import { createHash } from 'node:crypto';
import { parseVariant } from '../../src/variant.js';
import type { BatchPolicy, PatchOverlay } from '../../src/eval/lockstep.js';
import { pruningMask, squareGrid } from '../../src/prune/index.js';
import { createEnv } from '../sim/fake-env.js';

export interface FakeEvalOptions {
  /** wait this long per policy call (so a test can kill a run midway) */
  delayMs?: number;
}

function unitHash(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32BE(0) / 2 ** 32;
}

export async function loadEvalPolicy(variantText: string, options: FakeEvalOptions = {}): Promise<BatchPolicy> {
  const variant = parseVariant(variantText);
  const keep = variant.prune?.keep ?? 1;
  const bits = variant.quant?.weightBits ?? 16;
  // share of episodes the policy gives up on: more with 4 bits (less with rotations), more with fewer tokens
  const failShare = 0.15 + (bits === 4 ? (variant.had ? 0.05 : 0.3) : 0) + (1 - keep) * 0.2;
  const llmScale = bits === 16 ? 1 : bits === 8 ? 0.6 : 0.4;
  const targets = new Map<string, number[]>();
  return {
    async actBatch(items) {
      if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
      const actions = [];
      const masks: (PatchOverlay | undefined)[] = [];
      for (const { observation, task, seed } of items) {
        const key = `${task}/${seed}`;
        if (!targets.has(key)) targets.set(key, (await createEnv(task, seed)).target);
        const target = targets.get(key)!;
        const givesUp = unitHash(`${variant.name}|${key}`) < failShare;
        const position = observation.eePosition;
        actions.push(givesUp ? [0, 0, 0, 0, 0, 0, -1] : [0, 1, 2].map((d) => Math.max(-1, Math.min(1, (target[d] - position[d]) / 0.1))).concat([0, 0, 0, 1]));
        const kept = Array.from({ length: 16 }, (_, i) => i).filter((i) => unitHash(`${key}|${observation.step}|${i}`) < keep);
        masks.push(variant.prune ? (image) => pruningMask(image, squareGrid(16), kept, [5, 6, 9, 10], { x: 0.5, y: 0.5 }) : undefined);
      }
      const vision = 10;
      const prefill = 30 * llmScale * keep;
      const decode = 20 * llmScale;
      const timing = { vision, llm: prefill + decode, total: vision + prefill + decode, prefill, decode };
      return { actions, timingsMs: items.map(() => ({ ...timing })), masks };
    },
  };
}
