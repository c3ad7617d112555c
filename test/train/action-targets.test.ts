// Behaviour-cloning targets: OpenVLA's q01/q99 normalization and the --min-action-range widening (action-targets.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { actionTokenIds, normalizeAction, widenActionStats } from '../../src/train/action-targets.js';

const STATS = {
  q01: [-1, -1, -0.734, -0.073, -0.073, -1, -1],
  q99: [1, 1, 0.6, 0.072, 0.075, 1, 1],
  mask: [true, true, true, true, true, true, false],
};

test('widenActionStats: ranges narrower than the minimum grow about their midpoint; wide ones and the gripper stay', () => {
  const wide = widenActionStats(STATS, 1);
  // roll: midpoint -0.0005, range 1 -> [-0.5005, 0.4995]
  assert.ok(Math.abs(wide.q01[3] - -0.5005) < 1e-12 && Math.abs(wide.q99[3] - 0.4995) < 1e-12);
  assert.ok(Math.abs(wide.q01[4] - -0.499) < 1e-12 && Math.abs(wide.q99[4] - 0.501) < 1e-12);
  for (const i of [0, 1, 2, 5, 6]) assert.deepEqual([wide.q01[i], wide.q99[i]], [STATS.q01[i], STATS.q99[i]], `dimension ${i}`);
  assert.deepEqual(wide.mask, STATS.mask);
  assert.equal(widenActionStats(STATS, 0), STATS);
  // the gripper is not normalized, so it is never widened even when its range is small
  const narrowGripper = widenActionStats({ ...STATS, q01: [...STATS.q01.slice(0, 6), 0], q99: [...STATS.q99.slice(0, 6), 0.1] }, 1);
  assert.deepEqual([narrowGripper.q01[6], narrowGripper.q99[6]], [0, 0.1]);
});

test('widened roll/pitch labels land in the central bins: +-0.08 spans about 20 bins each side instead of all 256', () => {
  const label = [0, 0, 0, 0.08, -0.08, 0, 1];
  const tight = actionTokenIds(normalizeAction(label, STATS), 448, 256);
  const wide = actionTokenIds(normalizeAction(label, widenActionStats(STATS, 1)), 448, 256);
  const centre = actionTokenIds([0], 448, 256)[0];
  // with q01/q99 of +-0.073 the label is clipped to the last bins
  assert.ok(Math.abs(tight[3] - centre) >= 127 && Math.abs(tight[4] - centre) >= 125);
  // 0.08 / 0.5 of the half-range = 0.16 of 127.5 bins: 20 or 21 bins from the centre
  assert.ok(Math.abs(wide[3] - centre) >= 19 && Math.abs(wide[3] - centre) <= 22, `roll bin ${wide[3]} vs centre ${centre}`);
  assert.ok(Math.abs(wide[4] - centre) >= 19 && Math.abs(wide[4] - centre) <= 22, `pitch bin ${wide[4]} vs centre ${centre}`);
});
