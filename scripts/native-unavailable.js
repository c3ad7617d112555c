// Runs when `node-gyp rebuild` fails during `npm ci` / `npm install`: the package still installs and works on the
// pure-TypeScript `ref` backend, so the failure must not fail the install. Print what happened and how to retry.
process.stderr.write(
  [
    '',
    'sqap-vla: the native addon (build/Release/sqap_native.node) could not be built; continuing without it.',
    '  The runtime falls back to the pure-TypeScript backend, which is much slower.',
    '  To build it: install a C++17 compiler, make and Python 3 (node-gyp needs them), then run `npm rebuild`',
    '  (or `npm run install`) in this package. See native/README.md.',
    '',
  ].join('\n'),
);
