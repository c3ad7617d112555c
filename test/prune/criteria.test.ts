// The pruning criteria as pure functions: what each keeps, determinism, coverage of farthest-point sampling, and the
// sqap budget split (query share, end-effector ring, FPS fill).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  coverageRadius, farthestPointSampling, fastv, grid, keepBudget, patchAt, patchesWithin, query, random, sqap, squareGrid, topK, topkOverlap,
} from '../../src/prune/index.js';
import { mulberry32 } from '../../src/random.js';

const GRID = squareGrid(256); // OpenVLA: 16 x 16
const scores = (seed: number, n = 256) => {
  const next = mulberry32(seed);
  return Float32Array.from({ length: n }, () => next());
};

test('keep budget: round(keep * count), at least one, at most all', () => {
  assert.equal(keepBudget(0.5, 256), 128);
  assert.equal(keepBudget(0.3, 256), 77);
  assert.equal(keepBudget(1, 256), 256);
  assert.equal(keepBudget(0.001, 256), 1);
});

test('topK: highest scores, lower index on ties, ascending output', () => {
  assert.deepEqual(topK([0.1, 0.9, 0.5, 0.9, 0.2], 2), [1, 3]);
  assert.deepEqual(topK([1, 1, 1, 1], 2), [0, 1]);
  assert.deepEqual(topK([0.3, 0.1, 0.2], 3), [0, 1, 2]);
});

test('fastv keeps the most-attended tokens, query the tokens the query attends to most', () => {
  const received = Float32Array.from({ length: 16 }, (_, j) => j);
  const fromQuery = Float32Array.from({ length: 16 }, (_, j) => 16 - j);
  assert.deepEqual(fastv({ received, fromQuery }, 4).kept, [12, 13, 14, 15]);
  assert.deepEqual(query({ received, fromQuery }, 4).kept, [0, 1, 2, 3]);
  assert.throws(() => fastv({ fromQuery }, 4), /received/);
});

test('farthest-point sampling is deterministic and covers the grid better as the budget grows', () => {
  const first = farthestPointSampling(GRID, [], 40);
  assert.deepEqual(farthestPointSampling(GRID, [], 40), first);
  assert.equal(new Set(first).size, 40);
  // the first pick is the patch nearest the centre (four tie on an even grid: the lowest index, row 7 column 7), the
  // next one a corner
  assert.equal(first[0], 7 * 16 + 7);
  assert.ok([0, 15, 240, 255].includes(first[1]));
  let previous = Infinity;
  const radii: number[] = [];
  for (const budget of [1, 4, 16, 64, 128, 256]) {
    const radius = coverageRadius(GRID, farthestPointSampling(GRID, [], budget));
    assert.ok(radius <= previous, `coverage radius ${radius} grew at budget ${budget}`);
    radii.push(radius);
    previous = radius;
  }
  assert.ok(radii[radii.length - 1] === 0 && radii[2] < radii[0] / 2, `radii ${radii}`);
  // FPS over 16 points on a 16x16 grid covers it within a few patches; topK of random scores usually does not
  assert.ok(coverageRadius(GRID, farthestPointSampling(GRID, [], 16)) < 3.2);
  // starting from kept patches: none is picked twice, and the farthest point from a corner is the opposite corner
  assert.deepEqual(farthestPointSampling(GRID, [0], 1), [255]);
});

test('sqap: a share by query, the end-effector ring, then FPS; exactly the budget', () => {
  const fromQuery = scores(1);
  const eef = { x: 0.3, y: 0.6 };
  const budget = 128;
  const { kept, ring } = sqap({ fromQuery }, GRID, budget, eef, { queryShare: 0.5, ringRadius: 1.5 });
  assert.equal(kept.length, budget);
  assert.deepEqual(kept, [...kept].sort((a, b) => a - b));
  assert.equal(new Set(kept).size, budget);
  for (const j of topK(fromQuery, 64)) assert.ok(kept.includes(j), `query top-64 patch ${j} missing`);
  assert.deepEqual(ring, patchesWithin(GRID, eef, 1.5));
  assert.ok(ring.length >= 4 && ring.every((j) => kept.includes(j)));
  assert.equal(ring[0], patchAt(GRID, eef));
  // deterministic
  assert.deepEqual(sqap({ fromQuery }, GRID, budget, eef, { queryShare: 0.5, ringRadius: 1.5 }).kept, kept);
  // without a robot context: query + FPS, no ring
  const blind = sqap({ fromQuery }, GRID, budget, null, { queryShare: 0.5, ringRadius: 1.5 });
  assert.deepEqual(blind.ring, []);
  assert.equal(blind.kept.length, budget);
  // an end effector outside the image protects nothing (not an error)
  assert.deepEqual(sqap({ fromQuery }, GRID, budget, { x: 1.4, y: 0.2 }, { queryShare: 0.5, ringRadius: 1.5 }).ring, []);
  // share 0: ring then FPS only; FPS coverage beats the query top-k's
  const spread = sqap({ fromQuery }, GRID, 32, null, { queryShare: 0, ringRadius: 1.5 }).kept;
  assert.ok(coverageRadius(GRID, spread) < coverageRadius(GRID, topK(fromQuery, 32)));
  // a small budget is filled by the ring nearest-first and never exceeded
  const tight = sqap({ fromQuery }, GRID, 3, eef, { queryShare: 0, ringRadius: 3 });
  assert.deepEqual(tight.kept, [...patchesWithin(GRID, eef, 3).slice(0, 3)].sort((a, b) => a - b));
});

test('random is seeded; grid takes a uniform stride', () => {
  const a = random(256, 100, 1).kept;
  assert.deepEqual(random(256, 100, 1).kept, a);
  assert.notDeepEqual(random(256, 100, 2).kept, a);
  assert.equal(new Set(a).size, 100);
  assert.ok(a.every((j) => j >= 0 && j < 256));
  assert.deepEqual(grid(16, 4).kept, [2, 6, 10, 14]);
  assert.deepEqual(grid(256, 256).kept, Array.from({ length: 256 }, (_, j) => j));
});

test('top-k overlap is the shared share of the first set', () => {
  assert.equal(topkOverlap([1, 2, 3, 4], [3, 4, 5, 6]), 0.5);
  assert.equal(topkOverlap([1, 2], [1, 2]), 1);
  assert.equal(topkOverlap([], []), 1);
});

test('patch geometry: the patch under a point, patches within a radius', () => {
  assert.equal(patchAt(GRID, { x: 0, y: 0 }), 0);
  assert.equal(patchAt(GRID, { x: 0.999, y: 0.999 }), 255);
  assert.equal(patchAt(GRID, { x: 17 / 224, y: 30 / 224 }), 2 * 16 + 1);
  assert.equal(patchAt(GRID, { x: -0.01, y: 0.5 }), null);
  // radius 0.75 around a patch centre: that patch only; radius 1: its 4-neighbours too
  const centre = { x: 5.5 / 16, y: 7.5 / 16 };
  assert.deepEqual(patchesWithin(GRID, centre, 0.75), [7 * 16 + 5]);
  assert.deepEqual(patchesWithin(GRID, centre, 1).sort((a, b) => a - b), [6 * 16 + 5, 7 * 16 + 4, 7 * 16 + 5, 7 * 16 + 6, 8 * 16 + 5]);
});
