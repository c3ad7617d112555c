#!/usr/bin/env node
// The sqap-vla command. It runs the compiled JavaScript in dist/ (built at install by `prepare`). In a checkout
// whose TypeScript sources are newer than dist/ (or without dist/) it runs the sources through tsx's loader instead,
// so a developer never runs stale code.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

// A closed pipe (`sqap-vla inspect ... | head`) is the reader being done, not an error.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const root = fileURLToPath(new URL('..', import.meta.url));

function newestMtimeMs(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

function distIsFresh() {
  let stamp;
  try {
    stamp = fs.statSync(`${root}dist/.build-stamp`).mtimeMs;
  } catch {
    return false;
  }
  return !fs.existsSync(`${root}src`) || newestMtimeMs(`${root}src`) <= stamp;
}

let main;
if (distIsFresh()) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
