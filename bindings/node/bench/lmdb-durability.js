'use strict';
// Is lmdb-js's W4 column durable?  bench.js compares writes that resolve only once durable
// (README.md, "Benchmark").  This runs a few lmdb-js transactions one after another under
// strace and checks that each `await root.transaction(...)` settles only after the write thread's
// fdatasync of data.mdb and the flushed meta page's write through the O_DSYNC descriptor:
//
//   node lmdb-durability.js [commit|flushed|sync]     (bench.js's --lmdb-sync modes)
//   node lmdb-durability.js nosync    (noSync: true, the negative control: NOT durable)
//
// Exits 0 and prints "durable" when every transaction settled after both, 1 otherwise.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const N = 6;
if (process.argv[2] === '--child') {
  const mode = process.argv[4];
  const { open } = require('lmdb');
  const root = open({ path: process.argv[3], overlappingSync: mode === 'commit' ||
    mode === 'flushed', noSync: mode === 'nosync' });
  const recs = root.openDB({ name: 'r' });
  (async () => {
    for (let i = 0; i < N; i++) {
      fs.writeSync(2, `MARK start ${i}\n`);
      await root.transaction(() => recs.put(`k${i}`, { v: i }));
      if (mode === 'flushed') await root.flushed;
      fs.writeSync(2, `MARK settled ${i}\n`);
    }
    await root.close();
  })();
} else {
  const mode = process.argv[2] || 'commit';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-durability-'));
  const run = spawnSync('strace', ['-f', '-qq', '-e', 'trace=openat,fdatasync,fsync,pwrite64',
    '-e', 'signal=none', process.execPath, __filename, '--child', path.join(dir, 'db'), mode],
  { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  fs.rmSync(dir, { recursive: true, force: true });
  if (run.error || run.status !== 0) {
    throw new Error(`strace node ...: ${run.error || `exit ${run.status}`}: ${run.stderr}`);
  }
  const out = run.stderr;
  // the O_DSYNC descriptor of data.mdb (LMDB's me_mfd, for meta pages)
  const dsync = [...out.matchAll(/openat\([^"]*"[^"]*data\.mdb", [^)]*O_DSYNC[^)]*\) = (\d+)/g)]
    .map((m) => m[1]);
  let synced = false;
  let metaSynced = false;
  let ok = 0;
  for (const line of out.split('\n')) {
    if (/MARK start/.test(line)) {
      synced = false;
      metaSynced = false;
    } else if (/f(data)?sync\(\d+\)\s+= 0/.test(line)) {
      synced = true;
    } else if (synced && dsync.some((fd) => line.includes(`pwrite64(${fd},`))) {
      metaSynced = true;
    } else if (/MARK settled/.test(line)) {
      console.log(`${line.trim()}: fdatasync ${synced ? 'before' : 'NOT before'}, ` +
        `O_DSYNC meta write ${metaSynced ? 'after it' : 'NOT after it'}`);
      if (synced && metaSynced) ok++;
    }
  }
  const durable = ok === N && dsync.length > 0;
  console.log(`lmdb-js --lmdb-sync ${mode}: ${durable ? 'durable' : 'NOT durable'} (${ok} of ${N})`);
  process.exit(durable ? 0 : 1);
}
