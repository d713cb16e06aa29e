'use strict';
// Every call of the API on one process: reads, writes, exec, transactionSync,
// errors, one environment per database, and the life cycle of a handle.
const test = require('node:test');
const assert = require('node:assert/strict');
const { pathToFileURL } = require('node:url');
const uniqdb = require('..');
const { scenarios: schema, tmpdir } = require('./lib/common');

function fresh(t, options = {}) {
  const db = uniqdb.open(tmpdir(t), { schema, ...options });
  t.after(() => db.close());
  return db;
}

test('reads: get, find, scan (index, prefix, limit), seqGet', async (t) => {
  const db = fresh(t);
  const rows = [['ann', '2025-10-02'], ['bob', '2025-10-01'], ['ann', '2025-10-01']];
  for (const [user, date] of rows) {
    await db.insert('booking', { psychologist: 'p', date, time: user, status: 'pending', user });
  }
  assert.equal(db.get('booking', 1).user, 'ann');
  assert.equal(db.get('booking', 99), undefined);
  assert.equal(db.find('booking', 'active_slot', ['p', '2025-10-01', 'bob']).id, 2);
  assert.equal(db.find('booking', 'active_slot', ['p', '2025-10-01', 'zed']), undefined);
  assert.deepEqual([...db.scan('booking')].map((b) => b.id), [1, 2, 3]);
  assert.deepEqual([...db.scan('booking', { index: 'by_user' })].map((b) => b.id), [3, 1, 2]);
  assert.deepEqual([...db.scan('booking', { index: 'by_user', prefix: ['ann'] })]
    .map((b) => b.date), ['2025-10-01', '2025-10-02']);
  assert.deepEqual(db.scan('booking', { limit: 2 }).toArray().map((b) => b.id), [1, 2]);
  assert.equal(db.seqGet('booking.id'), 3);
  assert.equal(db.seqGet('never'), undefined);
  assert.throws(() => db.get('nosuchtype', 1), (e) => e.code === 'UDB_EINVAL' &&
    /booking/.test(e.message));
  assert.throws(() => db.find('booking', 'by_user', ['ann', 'x']), { code: 'UDB_EINVAL' });
});

test('range scans: bounds, reverse, NULLs, paging with lastKey', async (t) => {
  const db = fresh(t);
  const times = ['09:00', '10:00', '11:00', '12:30', '14:00'];
  for (const time of times) {
    for (const psychologist of ['p1', 'p2']) {
      const user = time === '11:00' ? undefined : psychologist === 'p1' ? 'ann' : 'bob';
      await db.insert('booking', { psychologist, date: '2026-01-15', time, status: 'pending',
        ...(user ? { user } : {}) });
    }
  }
  const ids = (it) => [...it].map((b) => b.id);
  // p1 between 10:00 and 14:00 (ids: p1 at 09:00 is 1, p2 at 09:00 is 2, ...)
  const day = ['p1', '2026-01-15'];
  assert.deepEqual(ids(db.scan('booking', { index: 'active_slot', gte: [...day, '10:00'],
    lt: [...day, '14:00'] })), [3, 5, 7]);
  assert.deepEqual(ids(db.scan('booking', { index: 'active_slot', gt: [...day, '10:00'],
    lte: [...day, '14:00'], reverse: true })), [9, 7, 5]);
  assert.deepEqual(ids(db.scan('booking', { index: 'active_slot', gt: 'p1' })),
    [2, 4, 6, 8, 10]);
  assert.deepEqual(ids(db.scan('booking', { index: 'active_slot', prefix: ['p2'],
    reverse: true })), [10, 8, 6, 4, 2]);
  // NULL is the smallest value: a bound of its own
  assert.deepEqual(ids(db.scan('booking', { index: 'by_user', lt: 'bob' })), [5, 6, 1, 3, 7, 9]);
  assert.deepEqual(ids(db.scan('booking', { index: 'by_user', gt: null, lt: 'bob' })),
    [1, 3, 7, 9]);
  assert.deepEqual(ids(db.scan('booking', { index: 'by_user', lte: [null], reverse: true })),
    [6, 5]);
  // pages of 3, newest first, deleting each page's last record before the next
  const pages = [];
  let after;
  for (;;) {
    const s = db.scan('booking', { index: 'by_user', reverse: true, limit: 3, keys: true,
      after });
    const page = ids(s);
    if (page.length === 0) break;
    pages.push(page);
    after = s.lastKey;
    await db.delete('booking', page[page.length - 1]);
  }
  assert.deepEqual(pages, [[10, 8, 4], [2, 9, 7], [3, 1, 6], [5]]);
  assert.deepEqual(after, [null, '2026-01-15', 5]);
  assert.throws(() => db.scan('booking').lastKey, { code: 'UDB_EINVAL' });
  assert.throws(() => db.scan('booking', { gte: 1, gt: 2 }), { code: 'UDB_EINVAL' });
  assert.throws(() => db.scan('booking', { prefix: [1], lt: 2 }), { code: 'UDB_EINVAL' });
  assert.throws(() => db.scan('booking', { index: 'by_user', gte: [1] }),
    (e) => e.code === 'UDB_EBADRECORD' && /range lo of "booking.by_user"/.test(e.message));
  assert.throws(() => db.scan('booking', { index: 'by_user', after: ['bob'] }),
    (e) => e.code === 'UDB_EBADRECORD' && /3 values/.test(e.message));
});

test('a scan reads one snapshot, held until it ends, break or close()', async (t) => {
  const db = fresh(t);
  // more records than one batch (256) of the iterator: the cursor stays open
  await db.exec(Array.from({ length: 300 }, (_, i) =>
    ({ op: 'insert', type: 'case', record: { case_number: `c${i}` } })));
  const write = () => db.transactionSync((tx) =>
    tx.insert('case', { case_number: `w${Math.random()}` }));
  const refused = { code: 'UDB_EINVAL', message: /already has a transaction open/ };
  const it = db.scan('case');
  assert.equal(it.next().value.id, 1);
  // the engine refuses a write on a thread that holds a transaction: the scan's
  assert.throws(write, refused);
  await db.insert('case', { case_number: 'late' });
  const seen = [...it].map((c) => c.id);
  assert.equal(seen.length, 299, 'records written since the scan began are not seen');
  assert.equal(seen[298], 300);
  write(); // exhausted: the snapshot is released
  for (const c of db.scan('case')) if (c.id === 2) break;
  write(); // break released it
  const open = db.scan('case');
  open.next();
  assert.throws(write, refused);
  open.close();
  write();
  assert.deepEqual(open.next(), { done: true, value: undefined });
  assert.equal([...db.scan('case', { limit: 3 })].length, 3);
  write(); // a scan stopped by its limit is released too
  assert.deepEqual(db.check(), []);
});

test('writes: insert, insertOrGet, upsert, insertFirst, update, delete, seqNext', async (t) => {
  const db = fresh(t);
  const a = await db.insert('client', { id: 'a', email: 'a@x', name: 'A' });
  assert.deepEqual(a, { id: 'a', email: 'a@x', name: 'A' });
  assert.deepEqual(await db.insertOrGet('client', { id: 'a', email: 'other@x' }),
    { created: false, record: a });
  assert.deepEqual(await db.insertOrGet('client', { id: 'b', email: 'a@x' }, { index: 'email' }),
    { created: false, record: a });
  assert.deepEqual(await db.upsert('client', { id: 'a', email: 'a@x', name: 'A2' }),
    { created: false, record: { id: 'a', email: 'a@x', name: 'A2' } });
  assert.deepEqual(
    await db.upsert('client', { id: 'c', email: 'c@x' }, { onInsert: { name: 'new' } }),
    { created: true, record: { id: 'c', email: 'c@x', name: 'new' } });
  assert.deepEqual(await db.update('client', 'c', { name: 'C' }, { merge: true }),
    { id: 'c', email: 'c@x', name: 'C' });
  assert.deepEqual(await db.update('client', 'c', { email: 'c2@x' }), { id: 'c', email: 'c2@x' });
  const slots = ['09:00', '10:00'].map((time) => ({ psychologist: 'p', date: 'd', time,
    status: 'confirmed' }));
  assert.equal((await db.insertFirst('booking', slots)).chosen, 0);
  const second = await db.insertFirst('booking', slots);
  assert.equal(second.chosen, 1);
  assert.equal(second.record.time, '10:00');
  await assert.rejects(db.insertFirst('booking', slots), { name: 'ConflictError',
    index: 'active_slot' });
  assert.equal(await db.delete('client', 'c'), undefined);
  assert.equal(db.get('client', 'c'), undefined);
  await assert.rejects(db.delete('client', 'c'), { code: 'UDB_ENOTFOUND' });
  assert.equal(await db.seqNext('s'), 1);
  assert.equal(await db.seqNext('s'), 2);
  await assert.rejects(db.update('client', 'zz', { name: 'x' }, { merge: true }),
    { name: 'UdbError', code: 'UDB_ENOTFOUND' });
});

test('exec: one atomic unit, a result per op; a failing op rolls back the unit', async (t) => {
  const db = fresh(t);
  const res = await db.exec([
    { op: 'seqNext', name: 'case:x' },
    { op: 'insert', type: 'case', record: { case_number: 'C-1' }, seqField: 'id', seqOp: 0 },
    { op: 'insertOrGet', type: 'client', record: { id: 'k', email: 'k@x' } },
    { op: 'update', type: 'client', key: 'k', patch: { name: 'K' }, merge: true },
  ]);
  assert.equal(res.length, 4);
  assert.equal(res[0].value, 1);
  assert.deepEqual(res[1].record, { id: 1, case_number: 'C-1' });
  assert.equal(res[2].created, true);
  assert.equal(res[3].record.name, 'K');
  await assert.rejects(db.exec([
    { op: 'insert', type: 'client', record: { id: 'm', email: 'm@x' } },
    { op: 'insert', type: 'client', record: { id: 'n', email: 'k@x' } },
  ]), (e) => e.name === 'ConflictError' && e.opIndex === 1 && e.existingKey === 'k');
  assert.equal(db.get('client', 'm'), undefined, 'op 0 rolled back with the unit');
  await assert.rejects(db.exec([{ op: 'nope' }]), TypeError);
  await assert.rejects(db.exec([]), TypeError);
});

test('transactionSync: read-then-write in one transaction; a throw rolls back', async (t) => {
  const db = fresh(t);
  const made = db.transactionSync((tx) => {
    const n = tx.seqNext('case:2025');
    const rec = tx.insert('case', { case_number: `CASE-${String(n).padStart(6, '0')}` });
    assert.deepEqual(tx.get('case', rec.id), rec, 'the transaction sees its own writes');
    assert.equal(tx.find('case', 'case_number', ['CASE-000001']).id, rec.id);
    return rec;
  });
  assert.equal(made.case_number, 'CASE-000001');
  assert.throws(() => db.transactionSync((tx) => {
    tx.seqNext('case:2025');
    tx.insert('case', { case_number: 'rolled-back' });
    throw new Error('boom');
  }), /boom/);
  assert.equal(db.seqGet('case:2025'), 1, 'the number was given back');
  assert.equal(db.find('case', 'case_number', ['rolled-back']), undefined);
  // a conflict inside is a ConflictError the function may handle
  const r = db.transactionSync((tx) => {
    try {
      tx.insert('case', { case_number: 'CASE-000001' });
    } catch (e) {
      assert.ok(e instanceof uniqdb.ConflictError);
      return tx.insertOrGet('case', { case_number: 'CASE-000001' },
        { index: 'case_number' });
    }
    return null;
  });
  assert.equal(r.created, false);
  assert.throws(() => db.transactionSync(async () => 1), /returned a promise/);
  let kept;
  db.transactionSync((tx) => {
    kept = tx;
  });
  assert.throws(() => kept.insert('case', { case_number: 'late' }), { code: 'UDB_ECLOSED' });
});

test('readSync: several reads in one snapshot; writes refused there', async (t) => {
  const db = fresh(t);
  await db.insert('client', { id: 'a', email: 'a@x' });
  const [a, n] = db.readSync((r) => [r.get('client', 'a'), [...r.scan('client')].length]);
  assert.equal(a.email, 'a@x');
  assert.equal(n, 1);
  assert.throws(() => db.readSync((r) => r.insert('client', { id: 'b', email: 'b@x' })),
    { code: 'UDB_EREADONLY' });
  assert.equal(db.get('client', 'b'), undefined);
  let kept;
  db.readSync((r) => {
    kept = r;
  });
  assert.throws(() => kept.get('client', 'a'), { code: 'UDB_ECLOSED' });
});

test('transactionSync reruns the function when the map fills up (udb_write\'s contract)',
  async (t) => {
    const db = fresh(t, { mapSize: 1 << 20 }); // 1 MiB: grows while the transaction writes
    let runs = 0;
    const big = 'x'.repeat(4000);
    const n = db.transactionSync((tx) => {
      runs++;
      for (let i = 0; i < 600; i++) tx.insert('case', { case_number: `big-${i}`, caller: big });
      return tx.seqGet('case.id');
    });
    assert.equal(n, 600);
    assert.ok(runs > 1, `the function ran ${runs} time(s); expected a rerun after MDB_MAP_FULL`);
    assert.equal([...db.scan('case')].length, 600);
    assert.deepEqual(db.check(), []);
  });

test('errors: ConflictError and RecordError carry their detail and a problem object',
  async (t) => {
    const db = fresh(t);
    const wf = await db.insert('workflow', { workflow_name: 'billing', version: 3,
      execution_engine: 'argo' });
    const e = await db.insert('workflow', { workflow_name: 'billing', version: 3,
      execution_engine: 'argo' }).catch((x) => x);
    assert.ok(e instanceof uniqdb.ConflictError && e instanceof uniqdb.UdbError &&
      e instanceof Error);
    assert.equal(e.code, 'UDB_ECONFLICT');
    assert.equal(e.type, 'workflow');
    assert.equal(e.index, 'name_version');
    assert.deepEqual(e.fields, ['workflow_name', 'version']);
    assert.deepEqual(e.values, ['billing', 3]);
    assert.equal(e.existingKey, wf.id);
    assert.equal(e.conflicts.length, 1);
    assert.match(e.message, /name_version/);
    const p = e.toProblem({ instance: '/workflows' });
    assert.equal(p.status, 409);
    assert.equal(p.instance, '/workflows');
    assert.match(p.detail, /billing/);
    assert.doesNotThrow(() => JSON.stringify(p));
    const r = await db.insert('workflow', { workflow_name: 'x', version: 1,
      execution_engine: 'cron' }).catch((x) => x);
    assert.ok(r instanceof uniqdb.RecordError);
    assert.equal(r.field, 'execution_engine');
    assert.equal(r.toProblem().status, 422);
    const m = await db.insert('workflow', { workflow_name: 'x' }).catch((x) => x);
    assert.equal(m.field, 'version');
    assert.match(m.message, /missing required field "version"/);
  });

test('a "collate": "nocase" index: conflict in another case, with the holder\'s spelling',
  async (t) => {
    const nocase = { types: { user: { key: 'id', fields: { id: { type: 'uint', auto: true },
      email: { type: 'str' } },
    unique: { email: { fields: [{ field: 'email', collate: 'nocase' }] } } } } };
    const db = uniqdb.open(tmpdir(t), { schema: nocase });
    t.after(() => db.close());
    const ana = await db.insert('user', { email: 'ana@example.com' });
    const e = await db.insert('user', { email: 'Ana@Example.COM' }).catch((x) => x);
    assert.ok(e instanceof uniqdb.ConflictError, String(e));
    assert.equal(e.index, 'email');
    assert.deepEqual(e.values, ['ana@example.com']);
    assert.equal(e.existingKey, ana.id);
    assert.equal(db.find('user', 'email', ['ANA@EXAMPLE.COM']).id, ana.id);
    assert.equal(db.get('user', ana.id).email, 'ana@example.com');
  });

test('one environment per database per process: every open of it shares it', (t) => {
  const dir = tmpdir(t);
  const before = uniqdb.openEnvironments();
  const a = uniqdb.open(dir, { schema });
  const b = uniqdb.open(`${dir}/./`);
  const c = uniqdb.open(pathToFileURL(dir));
  assert.equal(uniqdb.openEnvironments(), before + 1);
  a.close();
  b.close();
  assert.equal(c.get('client', 'none'), undefined, 'still open through c');
  c.close();
  assert.equal(uniqdb.openEnvironments(), before);
  assert.throws(() => uniqdb.open(dir, { nosuch: 1 }), /unknown open\(\) option "nosuch"/);
});

test('lockWaitMs: a write that waits longer for another writer fails with UDB_EBUSY',
  async (t) => {
    const { spawn } = require('node:child_process');
    const dir = tmpdir(t);
    const db = uniqdb.open(dir, { schema });
    t.after(() => db.close());
    // another process, its environment opened with lockWaitMs: it writes once told to
    const child = spawn(process.execPath, ['-e', `
      const uniqdb = require(${JSON.stringify(require.resolve('..'))});
      const db = uniqdb.open(process.argv[1], { lockWaitMs: 200 });
      process.stdin.once('data', () => {
        const t0 = Date.now();
        db.insert('case', { case_number: 'child' }).then(
          () => console.log(JSON.stringify({ ok: true })),
          (e) => console.log(JSON.stringify({ code: e.code, ms: Date.now() - t0 })));
      });
      console.log('ready');`, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    const done = new Promise((resolve) => child.once('exit', resolve));
    db.transactionSync((tx) => {
      tx.insert('case', { case_number: 'holder' });
      child.stdin.end('go\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500); // hold the slot
    });
    await done;
    const res = JSON.parse(out.trim().split('\n').pop());
    assert.equal(res.code, 'UDB_EBUSY', `the child's write: ${out}`);
    assert.ok(res.ms < 1400, `gave up after ${res.ms} ms, before the holder let go`);
    assert.equal(db.find('case', 'case_number', ['child']), undefined, 'nothing written');
  });

test('a read-only handle reads and refuses writes', async (t) => {
  const dir = tmpdir(t);
  uniqdb.open(dir, { schema }).close();
  const ro = uniqdb.open(dir, { readOnly: true });
  t.after(() => ro.close());
  assert.equal(ro.get('client', 'x'), undefined);
  await assert.rejects(ro.insert('client', { id: 'x', email: 'x' }), { code: 'UDB_EREADONLY' });
  assert.throws(() => uniqdb.open(dir), { code: 'UDB_EREADONLY' });
});

test('a closed database: a clear error from every call, no crash', async (t) => {
  const db = uniqdb.open(tmpdir(t), { schema });
  db.close();
  db.close();
  assert.equal(db.closed, true);
  const closed = { code: 'UDB_ECLOSED', message: /database is closed/ };
  assert.throws(() => db.get('client', 'a'), closed);
  assert.throws(() => db.find('client', 'email', ['a']), closed);
  assert.throws(() => db.scan('client'), closed);
  assert.throws(() => db.seqGet('s'), closed);
  assert.throws(() => db.check(), closed);
  assert.throws(() => db.transactionSync(() => 1), closed);
  for (const p of [db.insert('client', { id: 'a', email: 'a' }), db.insertOrGet('client', {}),
    db.upsert('client', {}), db.insertFirst('client', [{}]), db.update('client', 'a', {}),
    db.delete('client', 'a'), db.seqNext('s'), db.exec([{ op: 'seqNext', name: 's' }])]) {
    await assert.rejects(p, closed);
  }
});

test('closing with writes in flight: they all complete, then the environment closes',
  async (t) => {
    const dir = tmpdir(t);
    const before = uniqdb.openEnvironments();
    const db = uniqdb.open(dir, { schema });
    const writes = [];
    for (let i = 0; i < 200; i++) writes.push(db.insert('case', { case_number: `c${i}` }));
    db.close();
    await assert.rejects(db.insert('case', { case_number: 'after' }), { code: 'UDB_ECLOSED' });
    const done = await Promise.all(writes);
    assert.equal(done.length, 200);
    assert.equal(uniqdb.openEnvironments(), before, 'closed once the last write finished');
    const again = uniqdb.open(dir);
    assert.equal([...again.scan('case')].length, 200);
    again.close();
  });

test('writes do not block the event loop', async (t) => {
  // A worker thread holds the write lock (transactionSync) until told to let go, so no write
  // can be durable meanwhile: a db.insert that waited for its commit would stall this thread
  // (the worker lets go by itself after 10 s; the loop then took that long).  The writes must
  // be queued at once, and timers must run while they wait.
  const { Worker } = require('node:worker_threads');
  const dir = tmpdir(t);
  const db = uniqdb.open(dir, { schema });
  t.after(() => db.close());
  const flag = new Int32Array(new SharedArrayBuffer(4)); // 1: holding; 2: let go
  const w = new Worker(`
    const { workerData: { dir, flag, mod } } = require('node:worker_threads');
    const db = require(mod).open(dir);
    db.transactionSync((tx) => {
      tx.insert('case', { case_number: 'held' });
      Atomics.store(flag, 0, 1);
      Atomics.notify(flag, 0);
      Atomics.wait(flag, 0, 1, 10000);
    });
    db.close();`, { eval: true, workerData: { dir, flag, mod: require.resolve('..') } });
  const exited = new Promise((resolve, reject) => {
    w.once('exit', resolve);
    w.once('error', reject);
  });
  while (Atomics.load(flag, 0) !== 1) await new Promise((r) => setTimeout(r, 5));
  const t0 = performance.now();
  let settled = 0;
  const writes = [];
  for (let i = 0; i < 50; i++) {
    writes.push(db.insert('case', { case_number: `e${i}` }).finally(() => settled++));
  }
  const queuedMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 20)); // timers run while the writes wait
  const settledWhileHeld = settled;
  Atomics.store(flag, 0, 2);
  Atomics.notify(flag, 0);
  await Promise.all(writes);
  await exited;
  assert.ok(queuedMs < 5000, `50 writes were queued in ${queuedMs} ms, not at once`);
  assert.equal(settledWhileHeld, 0, 'no write was durable while the lock was held');
  assert.equal(db.find('case', 'case_number', 'held').case_number, 'held');
  assert.equal(db.find('case', 'case_number', 'e49').case_number, 'e49');
});
