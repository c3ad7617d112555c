// npx tsx scripts/make-outlier-checkpoint.ts FROM_DIR TO_DIR: the outlier checkpoint the quantization tests use
// (test/support/outlier.ts), written to disk for `sqap-vla compare`.
import { writeOutlierCheckpoint } from '../test/support/outlier.js';

const [from, to] = process.argv.slice(2);
if (!from || !to) {
  console.error('usage: npx tsx scripts/make-outlier-checkpoint.ts FROM_DIR TO_DIR');
  process.exit(2);
}
writeOutlierCheckpoint(from, to);
console.log(`wrote ${to}`);
