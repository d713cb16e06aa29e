'use strict';
// db.backup(): a copy, plain or compacted, that opens, checks and holds what
// the source held; refusals reject with the engine's code; writes go on while
// it runs; close() meanwhile does not break it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const uniqdb = require('..');
const { scenarios: schema, tmpdir } = require('./lib/common');

test('backup: plain and compact copies open, check and hold every record', async (t) => {
  const dir = tmpdir(t);
  const db = uniqdb.open(dir, { schema });
  t.after(() => db.close());
  for (let i = 0; i < 200; i++) {
    await db.insert('client', { id: `c${i}`, email: `c${i}@x`, name: 'n'.repeat(100) });
  }
  const base = path.dirname(dir);
  const writes = [];
  for (let i = 0; i < 50; i++) writes.push(db.insert('client', { id: `w${i}`, email: `w${i}@x` }));
  await db.backup(path.join(base, 'plain'));
  await db.backup(new URL(`file://${path.join(base, 'small')}`), { compact: true });
  await Promise.all(writes);
  assert.deepEqual(fs.readdirSync(path.join(base, 'plain')), ['data.mdb']);
  for (const name of ['plain', 'small']) {
    const copy = uniqdb.open(path.join(base, name), { readOnly: true });
    assert.deepEqual(copy.check(), []);
    assert.equal(copy.get('client', 'c199').email, 'c199@x');
    assert.ok(copy.scan('client').toArray().length >= 200);
    copy.close();
  }
  fs.mkdirSync(path.join(base, 'full'));
  fs.writeFileSync(path.join(base, 'full', 'x'), 'x');
  await assert.rejects(db.backup(path.join(base, 'full')),
    (e) => e.code === 'ENOTEMPTY' && /is not empty/.test(e.message));
  await assert.rejects(db.backup(path.join(base, 'no', 'such')), { code: 'ENOENT' });
  assert.throws(() => db.backup(path.join(base, 'x'), { compactt: true }), TypeError);
  assert.throws(() => db.backup(42), TypeError);
  // closed right after: the backup holds the environment until it is done
  const p = db.backup(path.join(base, 'late'));
  db.close();
  await p;
  const late = uniqdb.open(path.join(base, 'late'), { readOnly: true });
  assert.equal(late.get('client', 'w49').email, 'w49@x');
  late.close();
  assert.throws(() => db.backup(path.join(base, 'after')), { code: 'UDB_ECLOSED' });
});
