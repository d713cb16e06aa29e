'use strict';
// The binding on PostgreSQL (issue 24/25): open() takes a postgresql:// URL
// (no realpath: the database is on the server), and insert, insertOrGet and
// a conflict's detail come back as on LMDB.  Runs under tests/postgres/pg_run
// (meson test pg-node), which exports PGHOST and sets UNIQDB_PG_TEST; skipped
// elsewhere.
const test = require('node:test');
const assert = require('node:assert/strict');
const uniqdb = require('..');
const { scenarios: schema } = require('./lib/common');

const onServer = process.env.UNIQDB_PG_TEST === '1' && !!process.env.PGHOST;
const skip = onServer ? false : 'needs a PostgreSQL server (meson test pg-node, under pg_run)';

let n = 0;
function url() {
  n += 1;
  return `postgresql:///uniqdb_test?schema=node_${process.pid}_${n}`;
}

test('open(URL): insert, insertOrGet, conflict detail, shared environment', { skip },
  async (t) => {
    const u = url();
    const db = uniqdb.open(u, { schema });
    t.after(() => db.close());
    assert.match(db.schemaChanges, /added type "client"/);
    const before = uniqdb.openEnvironments();
    const again = uniqdb.open(u);          // the same URL: the same environment
    assert.equal(uniqdb.openEnvironments(), before);
    again.close();

    const b = await db.insert('booking', { psychologist: 'p1', date: '2026-01-15',
      time: '10:00', status: 'pending', user: 'u1' });
    assert.equal(b.id, 1);
    const got = await db.insertOrGet('client', { id: 'c1', email: 'a@x.org', name: 'Ana' },
      { index: 'email' });
    assert.equal(got.created, true);
    const same = await db.insertOrGet('client', { id: 'c2', email: 'a@x.org' },
      { index: 'email' });
    assert.deepEqual([same.created, same.record.id, same.record.name], [false, 'c1', 'Ana']);
    await assert.rejects(db.insert('booking', { psychologist: 'p1', date: '2026-01-15',
      time: '10:00', status: 'confirmed' }), (e) => e instanceof uniqdb.ConflictError &&
      e.type === 'booking' && e.index === 'active_slot' &&
      JSON.stringify(e.values) === '["p1","2026-01-15","10:00"]' && e.existingKey === 1);
    await assert.rejects(db.insert('client', { id: 'c1', email: 'b@x.org' }),
      (e) => e.code === 'UDB_ECONFLICT' && e.index === 'id' && e.existingKey === 'c1');
    assert.equal(db.get('client', 'c1').email, 'a@x.org');
    assert.equal(db.find('client', 'email', 'a@x.org').id, 'c1');
    // a URL object works too
    const viaUrl = uniqdb.open(new URL(u));
    assert.equal(viaUrl.get('booking', 1).user, 'u1');
    viaUrl.close();
  });

test('open(URL): a server that cannot be reached is UDB_ECONNECT', { skip }, () => {
  assert.throws(() => uniqdb.open('postgresql:///uniqdb_test?host=/nonexistent&schema=x'),
    (e) => e.code === 'UDB_ECONNECT');
});
