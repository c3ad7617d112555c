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
