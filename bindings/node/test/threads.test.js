'use strict';
// Worker threads and child processes on one database at once: every worker
// shares the process's one environment; every writer of every thread and
// process gets a definite answer, and the database checks clean.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { fork } = require('node:child_process');
const uniqdb = require('..');
const { scenarios: schema, tmpdir } = require('./lib/common');

const WORKERS = 3;
const CHILDREN = 2;
const KEYS = 20;
const PER_KEY = 4;

function collect(emitter, exitName) {
  return new Promise((resolve, reject) => {
    emitter.once('message', resolve);
    emitter.once('error', reject);
    emitter.once(exitName, (code) => reject(new Error(`exited with ${code} before answering`)));
  });
}

test('worker threads and child processes race insertOrGet on one database', async (t) => {
  const dir = tmpdir(t);
  const db = uniqdb.open(dir, { schema });
  t.after(() => db.close());
  const script = path.join(__dirname, 'lib', 'writer.js');
  const workers = [];
  for (let w = 0; w < WORKERS; w++) {
    const worker = new Worker(script, { argv: [dir, `w${w}`, String(KEYS), String(PER_KEY)] });
    workers.push(collect(worker, 'exit'));
  }
  for (let c = 0; c < CHILDREN; c++) {
    const child = fork(script, [dir, `c${c}`, String(KEYS), String(PER_KEY)],
      { serialization: 'advanced' });
    workers.push(collect(child, 'exit'));
  }
  // the main thread writes too
  const { run } = require('./lib/writer');
  const mine = run(db, 'main', KEYS, PER_KEY);
  const all = [await mine, ...(await Promise.all(workers))];
  const results = all.flatMap((x) => x.results);
  assert.ok(all.every((x) => x.environments === 1 || x.environments === undefined),
    'each process had the database open once, whatever its threads did');
  assert.equal(results.length, (1 + WORKERS + CHILDREN) * KEYS * PER_KEY);
  for (let k = 0; k < KEYS; k++) {
    const xs = results.filter((x) => x.k === k);
    assert.ok(xs.every((x) => x.ok), 'a definite answer for every caller');
    assert.equal(xs.filter((x) => x.created).length, 1, `key ${k}: exactly one creator`);
    assert.equal(new Set(xs.map((x) => x.id)).size, 1, `key ${k}: one record for all`);
  }
  assert.equal([...db.scan('schedule_workflow')].length, KEYS);
  assert.equal([...db.scan('case')].length, (1 + WORKERS + CHILDREN) * KEYS);
  assert.deepEqual(db.check(), []);
});

test('a worker thread ended with writes in flight: no crash, the database stays usable',
  async (t) => {
    const dir = tmpdir(t);
    const db = uniqdb.open(dir, { schema });
    t.after(() => db.close());
    const src = `
      const { parentPort, workerData } = require('node:worker_threads');
      const uniqdb = require(${JSON.stringify(require.resolve('..'))});
      const db = uniqdb.open(workerData);
      for (let i = 0; i < 300; i++) db.insert('case', { case_number: 'w' + i }).catch(() => {});
      parentPort.postMessage('queued');`;
    for (let round = 0; round < 3; round++) {
      const w = new Worker(src, { eval: true, workerData: dir });
      await new Promise((resolve) => w.once('message', resolve));
      await w.terminate();
    }
    // the writes the workers left behind finish or not; the database is consistent
    const rec = await db.insert('case', { case_number: 'main-after' });
    assert.equal(db.get('case', rec.id).case_number, 'main-after');
    assert.deepEqual(db.check(), []);
  });
