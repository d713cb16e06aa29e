'use strict';
// examples/server.js answered over HTTP: 201 / 200 / 409 problem+json (S3, S4).
const test = require('node:test');
const assert = require('node:assert/strict');
const uniqdb = require('..');
const { createServer, schema } = require('../examples/server');
const { tmpdir } = require('./lib/common');

async function serve(t) {
  const db = uniqdb.open(tmpdir(t), { schema });
  const server = createServer(db);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(() => {
    db.close();
    resolve();
  })));
  const base = `http://127.0.0.1:${server.address().port}`;
  return async (method, path, body) => {
    const res = await fetch(base + path, { method, body: body && JSON.stringify(body),
      headers: body ? { 'content-type': 'application/json' } : {} });
    return { status: res.status, type: res.headers.get('content-type'), body: await res.json() };
  };
}

test('S3 over HTTP: concurrent duplicates get one 201 and 409s naming the holder', async (t) => {
  const req = await serve(t);
  const wf = { workflow_name: 'billing', version: 2, execution_engine: 'argo' };
  const answers = await Promise.all(Array.from({ length: 12 },
    () => req('POST', '/workflows', wf)));
  const created = answers.filter((a) => a.status === 201);
  assert.equal(created.length, 1);
  const id = created[0].body.id;
  for (const a of answers.filter((x) => x.status !== 201)) {
    assert.equal(a.status, 409);
    assert.equal(a.type, 'application/problem+json');
    assert.equal(a.body.status, 409);
    assert.equal(a.body.index, 'name_version');
    assert.deepEqual(a.body.values, ['billing', 2]);
    assert.equal(a.body.existingKey, id);
    assert.equal(a.body.instance, '/workflows');
  }
  const got = await req('GET', '/workflows/billing/2');
  assert.equal(got.status, 200);
  assert.equal(got.body.id, id);
  const bad = await req('POST', '/workflows', { ...wf, version: 3, execution_engine: 'cron' });
  assert.equal(bad.status, 422);
  assert.equal(bad.body.field, 'execution_engine');
  assert.equal((await req('GET', '/workflows/none/1')).status, 404);
});

test('S4 over HTTP: one active booking per slot, cancel frees it, auto-booking', async (t) => {
  const req = await serve(t);
  const slot = { psychologist: 'dr-x', date: '2025-10-01', time: '10:00' };
  const answers = await Promise.all(['u1', 'u2', 'u3', 'u4'].map((user) =>
    req('POST', '/bookings', { ...slot, user })));
  const won = answers.filter((a) => a.status === 201);
  assert.equal(won.length, 1);
  for (const a of answers.filter((x) => x.status !== 201)) {
    assert.equal(a.status, 409);
    assert.equal(a.body.index, 'active_slot');
    assert.equal(a.body.existingKey, won[0].body.id);
  }
  const cancelled = await req('POST', `/bookings/${won[0].body.id}/cancel`);
  assert.equal(cancelled.status, 200);
  assert.equal(cancelled.body.status, 'cancelled');
  assert.equal((await req('POST', '/bookings', { ...slot, user: 'u5' })).status, 201);
  const times = ['10:00', '11:00', '12:00'];
  const auto = await Promise.all(['a', 'b', 'c'].map((user) =>
    req('POST', '/bookings/auto', { psychologist: 'dr-x', date: '2025-10-01', times, user })));
  assert.deepEqual(auto.map((a) => a.status).sort(), [201, 201, 409]);
  assert.deepEqual(auto.filter((a) => a.status === 201).map((a) => a.body.booking.time).sort(),
    ['11:00', '12:00']);
  assert.equal((await req('POST', '/bookings/999/cancel')).status, 404);
});
