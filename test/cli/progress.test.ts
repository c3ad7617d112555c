// Progress when stderr is not a terminal: a plain line every interval, nothing for work that ends sooner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { plainProgress } from '../../src/cli/progress.js';

test('plain progress prints one line per interval, with the payload, and nothing for quick work', () => {
  let clock = 0;
  const lines: string[] = [];
  const options = { intervalMs: 5000, write: (line: string) => void lines.push(line), now: () => clock };
  const quick = plainProgress('sim run', 3, 'episodes', '', {}, options);
  for (let done = 1; done <= 3; done++) quick.update(done);
  assert.deepEqual(lines, []);

  const slow = plainProgress('sim run', 4, 'episodes', ' | {successes} succeeded', { successes: 0 }, options);
  clock = 2000;
  slow.update(1, { successes: 1 }); // before the first interval: quiet
  clock = 6000;
  slow.update(2, { successes: 1 });
  clock = 7000;
  slow.update(3, { successes: 2 }); // within the interval: quiet
  clock = 8000;
  slow.update(4, { successes: 3 }); // the last one is always reported
  assert.deepEqual(lines, ['sim run: 2/4 episodes (50%), 6 s elapsed | 1 succeeded\n', 'sim run: 4/4 episodes (100%), 8 s elapsed | 3 succeeded\n']);
});
