// Opens an eval report in headless Chromium and saves a screenshot, to check what a person would see (not CI).
// Needs Debian's `chromium` package (apt-get install -y chromium), or CHROMIUM=/path/to/chrome.
//   npx tsx scripts/screenshot-report.ts DIR/report.html OUT.png [--width 1280] [--height 2400]
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { width: { type: 'string', default: '1280' }, height: { type: 'string', default: '2400' } },
});
const [htmlArg, outArg] = positionals;
if (!htmlArg || !outArg) {
  console.error('usage: npx tsx scripts/screenshot-report.ts REPORT.html OUT.png [--width PX] [--height PX]');
  process.exit(2);
}
const html = resolve(htmlArg);
const out = resolve(outArg);
if (!existsSync(html)) {
  console.error(`screenshot-report: ${html} does not exist`);
  process.exit(2);
}
const browser = process.env.CHROMIUM ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(existsSync);
if (!browser) {
  console.error('screenshot-report: no Chromium found; install it (apt-get install -y chromium) or set CHROMIUM');
  process.exit(2);
}
// a fresh profile, and nothing that talks to the network: the report must render from the file alone
const profile = mkdtempSync(join(tmpdir(), 'sqap-chromium-'));
try {
  const run = spawnSync(
    browser,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--hide-scrollbars',
      `--user-data-dir=${profile}`,
      `--window-size=${values.width},${values.height}`,
      `--screenshot=${out}`,
      pathToFileURL(html).href,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (run.status !== 0 || !existsSync(out)) {
    console.error(`screenshot-report: chromium failed (status ${run.status}):\n${run.stderr}`);
    process.exit(1);
  }
  console.log(`wrote ${out} (${statSync(out).size} bytes) from ${html}`);
} finally {
  rmSync(profile, { recursive: true, force: true });
}
