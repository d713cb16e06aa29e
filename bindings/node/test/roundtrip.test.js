'use strict';
// Record conversion in C: every value written and read back, the edge values
// the CLI handles, and bad JS input refused with a TypeError naming the field
// before anything is written.
const test = require('node:test');
const assert = require('node:assert/strict');
const uniqdb = require('..');
const { tmpdir } = require('./lib/common');

const schema = {
  types: {
    rt: {
      key: 'id',
      fields: {
        id: { type: 'uint', auto: true },
        i: { type: 'int' },
        u: { type: 'uint' },
        f: { type: 'float' },
        s: { type: 'str' },
        b: { type: 'bin' },
        t: { type: 'bool' },
        a: { type: 'any' },
      },
    },
  },
};

// [field, value written, value expected back]
const table = [
  ['i', 0, 0],
  ['i', -1, -1],
  ['i', 2 ** 53 - 1, 2 ** 53 - 1],
  ['i', -(2 ** 53 - 1), -(2 ** 53 - 1)],
  ['i', 5n, 5],
  ['i', 2n ** 53n, 2n ** 53n],
  ['i', 2n ** 63n - 1n, 2n ** 63n - 1n],
  ['i', -(2n ** 63n), -(2n ** 63n)],
  ['u', 2n ** 64n - 1n, 2n ** 64n - 1n],
  ['u', 2 ** 32, 2 ** 32],
  ['f', 1.5, 1.5],
  ['f', -0, -0],
  ['f', 3, 3],
  ['f', 1e308, 1e308],
  ['f', Infinity, Infinity],
  ['f', -Number.MIN_VALUE, -Number.MIN_VALUE],
  ['s', '', ''],
  ['s', 'héllo 🎉 \u0000 nul', 'héllo 🎉 \u0000 nul'],
  ['b', Buffer.from([0, 1, 255]), Buffer.from([0, 1, 255])],
  ['b', new Uint8Array([7, 8]), Buffer.from([7, 8])],
  ['b', Buffer.alloc(0), Buffer.alloc(0)],
  ['t', true, true],
  ['t', false, false],
  ['a', NaN, NaN],
  ['a', -0, -0],
  ['a', new uniqdb.Float32(0.1), Math.fround(0.1)],
  ['a', new uniqdb.Float32(NaN), NaN],
  ['a', 2n ** 64n - 1n, 2n ** 64n - 1n],
  ['a', -(2n ** 63n), -(2n ** 63n)],
  ['a', null, undefined], // nil is the same as missing: not stored
  ['a', { x: [1, { y: null, z: 'deep' }], e: {}, l: [] },
    { x: [1, { y: null, z: 'deep' }], e: {}, l: [] }],
  ['a', JSON.parse('{"__proto__": 1}'), JSON.parse('{"__proto__": 1}')],
  ['a', new Map([[1, 'one'], ['two', 2]]), new Map([[1, 'one'], ['two', 2]])],
  ['a', new uniqdb.RawString(Buffer.from([0xff, 0xfe, 0x41])),
    new uniqdb.RawString(Buffer.from([0xff, 0xfe, 0x41]))],
  ['a', [undefined, 1], [null, 1]],
];

test('round trips: written, read back by get, find-free scan and the write result', async (t) => {
  const db = uniqdb.open(tmpdir(t), { schema });
  t.after(() => db.close());
  for (const [field, input, expected] of table) {
    const what = `${field} = ${typeof input === 'bigint' ? `${input}n` : String(input)}`;
    const stored = await db.insert('rt', { [field]: input });
    assert.deepEqual(stored[field], expected, `${what}: the insert's result`);
    const got = db.get('rt', stored.id);
    assert.deepEqual(got[field], expected, `${what}: get`);
    assert.ok(Object.is(got[field], expected) || typeof expected === 'object' ||
      typeof expected === 'bigint', `${what}: Object.is (-0 stays -0, NaN stays NaN)`);
    if (expected !== undefined) assert.equal(typeof got[field], typeof expected, what);
  }
  assert.equal([...db.scan('rt')].length, table.length);
  assert.deepEqual(db.check(), []);
});

test('msgpack bytes from other clients decode: float32, non-UTF-8 str, int-keyed maps', () => {
  // fixmap {a: float32 0.5}, str8 of bytes ff fe, {1: true}
  assert.deepEqual(uniqdb.decode(Buffer.from([0x81, 0xa1, 0x61, 0xca, 0x3f, 0, 0, 0])), { a: 0.5 });
  const raw = uniqdb.decode(Buffer.from([0xd9, 2, 0xff, 0xfe]));
  assert.ok(raw instanceof uniqdb.RawString);
  assert.deepEqual(raw.bytes, Buffer.from([0xff, 0xfe]));
  assert.deepEqual(uniqdb.encode(raw), Buffer.from([0xa2, 0xff, 0xfe]));
  assert.deepEqual(uniqdb.decode(Buffer.from([0x81, 0x01, 0xc3])), new Map([[1, true]]));
  assert.deepEqual(uniqdb.decode(Buffer.from([0xcf, ...Array(8).fill(0xff)])),
    2n ** 64n - 1n);
  assert.throws(() => uniqdb.decode(Buffer.from([0x92, 0x01])), /malformed msgpack/);
  assert.throws(() => uniqdb.decode(Buffer.from([0xd4, 0x01, 0x00])), /extension/);
  // numbers: safe integers as ints, -0 and fractions as float64
  assert.deepEqual(uniqdb.encode(-0), Buffer.from([0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(uniqdb.encode(-33), Buffer.from([0xd0, 0xdf]));
  assert.deepEqual(uniqdb.encode(2 ** 53), Buffer.from([0xcb, 0x43, 0x40, 0, 0, 0, 0, 0, 0]));
});

test('the engine\'s checks: NaN in a float field, non-UTF-8 in a str field', async (t) => {
  const db = uniqdb.open(tmpdir(t), { schema });
  t.after(() => db.close());
  await assert.rejects(db.insert('rt', { f: NaN }),
    { name: 'RecordError', code: 'UDB_EBADRECORD', field: 'f', status: 422 });
  await assert.rejects(db.insert('rt', { s: new uniqdb.RawString(Buffer.from([0xc3])) }),
    { name: 'RecordError', field: 's' });
  await assert.rejects(db.insert('rt', { i: 2n ** 63n }), { name: 'RecordError', field: 'i' });
  await assert.rejects(db.insert('rt', { nope: 1 }), (e) => e.name === 'RecordError' &&
    /unknown field "nope"/.test(e.message));
});

test('bad JS input is a TypeError naming the field, and nothing is written', async (t) => {
  const db = uniqdb.open(tmpdir(t), { schema });
  t.after(() => db.close());
  const cyclic = { x: 1 };
  cyclic.self = cyclic;
  const cases = [
    [{ s: Symbol('x') }, 's', /a symbol/],
    [{ a: () => 1 }, 'a', /a function/],
    [{ a: { list: [1, cyclic] } }, 'a.list[1].self', /a cycle/],
    [{ i: 2n ** 64n }, 'i', /bigint out of range/],
    [{ a: -(2n ** 63n) - 1n }, 'a', /bigint out of range/],
    [{ s: new Date() }, 's', /a Date cannot be stored/],
    [{ a: new Set([1]) }, 'a', /a Set cannot be stored/],
    [{ a: new Float64Array(2) }, 'a', /typed array/],
    [{ a: new (class Point {})() }, 'a', /a Point cannot be stored/],
  ];
  for (const [rec, field, msg] of cases) {
    await assert.rejects(db.insert('rt', rec), (e) => {
      assert.ok(e instanceof TypeError, `${field}: ${e}`);
      assert.equal(e.field, field);
      assert.match(e.message, msg);
      assert.match(e.message, new RegExp(`field "${field.replace(/[[\].]/g, '\\$&')}"`));
      return true;
    });
  }
  // the same through every write call and in transactions
  await assert.rejects(db.update('rt', 1, { s: Symbol('y') }), TypeError);
  await assert.rejects(db.upsert('rt', { s: 'x' }, { onInsert: { a: () => 0 } }),
    { name: 'TypeError', field: 'onInsert.a' });
  await assert.rejects(db.insertFirst('rt', [{ s: 'ok' }, { s: Symbol('z') }]),
    { name: 'TypeError', field: 'candidates[1].s' });
  await assert.rejects(db.exec([{ op: 'insert', type: 'rt', record: { s: 'fine' } },
    { op: 'insert', type: 'rt', record: { t: Symbol('w') } }]),
  { name: 'TypeError', field: 'ops[1].t' });
  assert.throws(() => db.transactionSync((tx) => tx.insert('rt', { s: new Date() })),
    { name: 'TypeError', field: 's' });
  assert.throws(() => db.get('rt', Symbol('k')), { name: 'TypeError', field: 'key' });
  assert.equal([...db.scan('rt')].length, 0, 'nothing was written');
  assert.equal(db.seqGet('rt.id'), undefined, 'not even an auto key was taken');
});

// The stored bytes as the C tool sees them, both ways: what the binding
// writes reads back in the CLI's JSON forms ($float32, $str, $map, -0.0,
// 2^64-1), and what the CLI writes reads back here.  run-tests.sh names the
// build's tool in UNIQDB_CLI.
test('the edge values cross to and from the uniqdb tool', { skip: !process.env.UNIQDB_CLI &&
  'UNIQDB_CLI not set (run-tests.sh sets it)' }, async (t) => {
  const { execFileSync } = require('node:child_process');
  const cli = (...args) => execFileSync(process.env.UNIQDB_CLI, args, { encoding: 'utf8' });
  const dir = tmpdir(t);
  const db = uniqdb.open(dir, { schema });
  const value = [new uniqdb.Float32(0.1), new uniqdb.RawString(Buffer.from([0xff])),
    new Map([[1, 2]]), -0, NaN, 2n ** 64n - 1n, -(2n ** 63n), Buffer.from([1])];
  const rec = await db.insert('rt', { a: value, u: 2n ** 64n - 1n, f: -0 });
  db.close();
  // JSON cannot hold these numbers as JS reads it: compare them as text
  const got = JSON.parse(cli('get', dir, 'rt', String(rec.id))
    .replace(/18446744073709551615/g, '"U64MAX"').replace(/-9223372036854775808/g, '"I64MIN"')
    .replace(/-0\.0/g, '"NEGZERO"'));
  assert.deepEqual(got, { id: rec.id, u: 'U64MAX', f: 'NEGZERO', a: [{ $float32: 0.1 },
    { $str: '/w==' }, { $map: [[1, 2]] }, 'NEGZERO', { $float: 'nan' }, 'U64MAX', 'I64MIN',
    { $bin: 'AQ==' }] });
  cli('put', dir, 'rt', JSON.stringify({ id: 100, a: [{ $float32: 0.5 }, { $str: '/w==' },
    { $map: [[true, 'yes']] }, { $float: '-inf' }] }));
  const back = uniqdb.open(dir);
  t.after(() => back.close());
  const a = back.get('rt', 100).a;
  assert.equal(a[0], 0.5);
  assert.ok(a[1] instanceof uniqdb.RawString);
  assert.deepEqual(a[1].bytes, Buffer.from([0xff]));
  assert.deepEqual(a[2], new Map([[true, 'yes']]));
  assert.equal(a[3], -Infinity);
});
