#!/usr/bin/env node
// sqap-vla ships its TypeScript sources and runs them through tsx's loader (no build step to forget).
import { register } from 'tsx/esm/api';

// A closed pipe (`sqap-vla inspect ... | head`) is the reader being done, not an error.
process.stdout.on('error', (error) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
