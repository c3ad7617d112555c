// Wilson intervals and the exact McNemar test against textbook and SciPy values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mcnemarExactP, median, pairedComparison, wilsonInterval } from '../../src/eval/stats.js';
import { STATS_LOG_SPACE_RELATIVE, STATS_VS_SCIPY_RELATIVE, WILSON_PRINTED_4DP } from '../tolerances.js';

const close = (ours: number, reference: number, relative: number, what: string) =>
  assert.ok(Math.abs(ours - reference) <= relative * Math.max(Math.abs(reference), 1e-300), `${what}: ${ours} vs ${reference}`);

test('Wilson 95% interval: Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score)', () => {
  // (successes, trials) -> printed interval
  const table: [number, number, number, number][] = [
    [81, 263, 0.2553, 0.3662],
    [15, 148, 0.0624, 0.1605],
    [0, 20, 0.0, 0.1611],
    [1, 29, 0.0061, 0.1718],
  ];
  for (const [k, n, low, high] of table) {
    const [ours_low, ours_high] = wilsonInterval(k, n);
    assert.ok(Math.abs(ours_low - low) <= WILSON_PRINTED_4DP, `${k}/${n} low ${ours_low} vs ${low}`);
    assert.ok(Math.abs(ours_high - high) <= WILSON_PRINTED_4DP, `${k}/${n} high ${ours_high} vs ${high}`);
  }
});

test('Wilson 95% interval: SciPy 1.17 binomtest(k, n).proportion_ci(0.95, "wilson")', () => {
  const table: [number, number, number, number][] = [
    [81, 263, 0.2552885198782742, 0.36620957698280004],
    [1, 29, 0.006113214292762667, 0.17175521879320282],
    [29, 29, 0.8830302015002592, 1.0],
    [50, 50, 0.9286524008666412, 1.0],
    [0, 1, 0.0, 0.7934506856227626],
  ];
  for (const [k, n, low, high] of table) {
    const [ours_low, ours_high] = wilsonInterval(k, n);
    close(ours_low, low, STATS_VS_SCIPY_RELATIVE, `${k}/${n} low`);
    close(ours_high, high, STATS_VS_SCIPY_RELATIVE, `${k}/${n} high`);
  }
});

test('exact McNemar p: the binomial sums by hand and SciPy 1.17 binomtest(min(b,c), b+c, 0.5).pvalue', () => {
  // by hand: (1, 9) -> 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024; (0, 5) -> 2/32; (2, 8) -> 2 * 56/1024
  assert.equal(mcnemarExactP(1, 9), 22 / 1024);
  assert.equal(mcnemarExactP(9, 1), 22 / 1024);
  assert.equal(mcnemarExactP(0, 5), 2 / 32);
  assert.equal(mcnemarExactP(2, 8), 112 / 1024);
  assert.equal(mcnemarExactP(7, 7), 1, 'balanced discordance is capped at 1');
  assert.equal(mcnemarExactP(0, 0), 1, 'no discordant pairs: no evidence');
  close(mcnemarExactP(150, 86), 3.7159361395713866e-5, STATS_VS_SCIPY_RELATIVE, '(150, 86)');
  close(mcnemarExactP(12, 30), 0.007915897334896727, STATS_VS_SCIPY_RELATIVE, '(12, 30)');
  // large n stays finite where 2^-n would underflow
  // large n (log-space sum) agrees with SciPy: binomtest(600, 1220, 0.5).pvalue
  close(mcnemarExactP(600, 620), 0.5864812402931913, STATS_LOG_SPACE_RELATIVE, '(600, 620)');
  close(mcnemarExactP(500, 700), 8.535366081034316e-9, STATS_LOG_SPACE_RELATIVE, '(500, 700)');
});

test('paired comparison counts discordant pairs by (task, seed) and ignores unpaired episodes', () => {
  const first = [
    { task: 'a', seed: 0, success: true },
    { task: 'a', seed: 1, success: true },
    { task: 'a', seed: 2, success: false },
    { task: 'b', seed: 0, success: false },
  ];
  const other = [
    { task: 'a', seed: 0, success: false },
    { task: 'a', seed: 1, success: true },
    { task: 'a', seed: 2, success: true },
    { task: 'b', seed: 0, success: true },
    { task: 'b', seed: 9, success: true },
  ];
  const c = pairedComparison(first, other);
  assert.deepEqual([c.pairs, c.onlyFirst, c.onlyOther], [4, 1, 2]);
  assert.equal(c.difference, 1 / 4);
  assert.equal(c.p, mcnemarExactP(1, 2));
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.ok(Number.isNaN(median([])));
});
