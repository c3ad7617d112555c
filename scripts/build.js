// `npm run build` (also run by `prepare`, so `npm ci` / `npm install` / `npm pack` produce it): compile src/ to dist/
// (JavaScript + type declarations) with the project's TypeScript, copy the plain-JS worker bootstrap beside the
// compiled runner, and stamp the build so bin/sqap-vla.js can tell a fresh dist/ from sources edited since.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  // an install without devDependencies of a checkout that ships no dist/: the CLI then needs tsx and the sources
  console.warn('sqap-vla: typescript is not installed, so dist/ was not built; the CLI will run the TypeScript sources through tsx.');
  process.exit(0);
}
fs.rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit', cwd: root });
fs.copyFileSync(path.join(root, 'src', 'sim', 'worker-bootstrap.mjs'), path.join(dist, 'sim', 'worker-bootstrap.mjs'));
fs.writeFileSync(path.join(dist, '.build-stamp'), `${new Date().toISOString()}\n`);

// In a checkout (not when installed as a dependency under someone's node_modules), link the CLI into
// node_modules/.bin: `npx sqap-vla` then runs this checkout at once. Without the link npm's npx treats the package
// as missing and first installs a copy of it into its cache (measured: 63 s for the first `npx sqap-vla act`).
if (!root.split(path.sep).includes('node_modules') && fs.existsSync(path.join(root, 'node_modules'))) {
  const binDir = path.join(root, 'node_modules', '.bin');
  const link = path.join(binDir, 'sqap-vla');
  fs.mkdirSync(binDir, { recursive: true });
  fs.rmSync(link, { force: true });
  fs.symlinkSync(path.relative(binDir, path.join(root, 'bin', 'sqap-vla.js')), link);
}
