'use strict';
// index.d.ts: a TypeScript file using every call and error type compiles
// with `tsc --noEmit` (strict), and the misuses it marks @ts-expect-error are
// refused (tsc fails on an expect-error that is not needed).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

test('tsc --noEmit compiles test/types/check.ts against index.d.ts', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  // tsc never loads the addon: run it without the ASan runtime run-tests.sh
  // may preload (it only slows the compiler down)
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  const r = spawnSync(process.execPath,
    [tsc, '--noEmit', '-p', path.join(__dirname, 'types', 'tsconfig.json')],
    { encoding: 'utf8', env });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
