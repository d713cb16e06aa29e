'use strict';
// One writer of threads.test.js, as a worker thread, a child process or a
// function of the main thread: PER_KEY concurrent insertOrGet per key, plus
// one case per key through transactionSync.
const { isMainThread, parentPort } = require('node:worker_threads');
const uniqdb = require('../..');
const { scenarios: schema } = require('./common');

async function run(db, who, keys, perKey) {
  const writes = [];
  for (let k = 0; k < keys; k++) {
    for (let j = 0; j < perKey; j++) {
      writes.push(db.insertOrGet('schedule_workflow',
        { scheduleId: 'threads', doctorName: `Dr. ${k}`, state: `${who}-${j}` },
        { index: 'schedule_doctor' }).then(
        (r) => ({ k, ok: true, created: r.created, id: r.record.id }),
        (e) => ({ k, ok: false, error: String(e) })));
    }
    db.transactionSync((tx) => {
      const n = tx.seqNext('threads');
      tx.insert('case', { case_number: `T-${n}`, caller: who });
    });
  }
  return { results: await Promise.all(writes), environments: uniqdb.openEnvironments() };
}

module.exports = { run };

if (require.main === module || !isMainThread) {
  const [dir, who, keys, perKey] = isMainThread ? process.argv.slice(2)
    : require('node:worker_threads').workerData || process.argv.slice(2);
  const db = uniqdb.open(dir, { schema });
  run(db, who, Number(keys), Number(perKey)).then((out) => {
    db.close();
    if (isMainThread) {
      process.send(out, () => process.disconnect());
    } else {
      parentPort.postMessage(out);
    }
  });
}
