'use strict';
// The records db.get and db.find return are decoded in JS (decode.js) from bytes the addon
// copies into a buffer of the realm; everything else (scans, write results, uniqdb.decode) in
// C (src/convert.c).  Both must give the same values, byte for byte: every value of the
// round-trip table and the edges around each msgpack format, malformed bytes refused alike.
// And the read snapshot get/find keep between reads of a turn must still see every write
// committed before each read: another process's (run synchronously in the same turn),
// another thread's, and this thread's own writes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { Worker } = require('node:worker_threads');
const uniqdb = require('..');
const { tmpdir } = require('./lib/common');

const { Float32, RawString } = uniqdb;

// values, as written (the C encoder gives their bytes)
const values = [
  0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33,
  -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53 - 1),
  2n ** 53n, 2n ** 63n - 1n, 2n ** 64n - 1n, -(2n ** 53n), -(2n ** 53n) - 1n, -(2n ** 63n),
  1.5, -0, NaN, Infinity, -Infinity, Number.MIN_VALUE, 1e308, 2 ** 53, -(2 ** 53),
  new Float32(0.1), new Float32(-0), new Float32(NaN), new Float32(Infinity),
  true, false, null,
  '', 'a', 'abcdefghijklmnop', 'abcdefghijklmnopq', 'x'.repeat(31), 'x'.repeat(32),
  'y'.repeat(255), 'y'.repeat(256), 'z'.repeat(70000), 'héllo 🎉 \u0000 nul', 'ü'.repeat(40),
  new RawString(Buffer.from([0xff, 0xfe, 0x41])), new RawString(Buffer.from([0xc3])),
  new RawString(Buffer.from([0xed, 0xa0, 0x80])), // a surrogate: not UTF-8
  new RawString(Buffer.from([0xc0, 0x80])), // overlong
  new RawString(Buffer.concat([Buffer.alloc(40, 0x61), Buffer.from([0xf5, 0x80, 0x80, 0x80])])),
  Buffer.alloc(0), Buffer.from([0, 1, 255]), Buffer.alloc(300, 7), Buffer.alloc(70000, 9),
  [], [1, [2, [3]]], Array.from({ length: 20 }, (_, i) => i), Array(70000).fill(0),
  {}, { a: 1, b: 'two', c: [3] }, JSON.parse('{"__proto__": 1, "x": {"__proto__": [2]}}'),
  { 1: 'one', b: 2, 0: 'zero' }, Object.fromEntries(Array.from({ length: 20 }, (_, i) =>
    [`k${i}`, i])),
  new Map([[1, 'one'], ['two', 2]]), new Map([['b', 1], ['1', 2], [3, 4]]),
  new Map([[new RawString(Buffer.from([0xff])), 1], ['ok', 2]]), new Map([[null, true]]),
  new Map([[[1, 2], 'list key']]),
  { nested: { deeper: { deepest: [{ m: new Map([[1n << 60n, 'big key']]) }] } } },
];

function same(a, b, what) {
  assert.deepStrictEqual(a, b, what);
  if (typeof a !== 'object' || a === null) assert.ok(Object.is(a, b), `${what}: Object.is`);
  if (a instanceof RawString) assert.ok(Buffer.isBuffer(a.bytes), what);
  if (a && typeof a === 'object') {
    assert.equal(Object.getPrototypeOf(a), Object.getPrototypeOf(b), `${what}: prototype`);
  }
}

const show = (v) => (typeof v === 'bigint' ? `${v}n` : String(v).slice(0, 40));

test('decode.js and the C decoder agree on every value', () => {
  for (const v of values) {
    const bytes = uniqdb.encode(v);
    same(uniqdb.decodeJs(bytes), uniqdb.decode(bytes), show(v));
  }
  // encodings the binding never writes but other clients may: wide ints of small values
  const wide = [
    [0xcf, 0, 0, 0, 0, 0, 0, 0, 5], [0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb],
    [0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 1], [0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 0],
    [0xcf, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], [0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0],
    [0xd0, 5], [0xd1, 0, 5], [0xd2, 0, 0, 0, 5], [0xcc, 5], [0xcd, 0, 5], [0xce, 0, 0, 0, 5],
    [0xd9, 1, 0x61], [0xda, 0, 1, 0x61], [0xdb, 0, 0, 0, 1, 0x61], [0xc5, 0, 1, 1],
    [0xc6, 0, 0, 0, 1, 1], [0xdc, 0, 1, 0xc0], [0xdd, 0, 0, 0, 1, 0xc0],
    [0xde, 0, 1, 0xa1, 0x61, 1], [0xdf, 0, 0, 0, 1, 0xa1, 0x61, 1],
    [0x82, 0xa1, 0x61, 1, 0xa1, 0x61, 2], // a key twice: the last value, the first place
    [0x82, 0xd9, 1, 0x61, 1, 0x01, 2], // str8 key, then an int key: a Map
    [0x81, 0xca, 0x3f, 0, 0, 0, 0xc3], // a float32 key
  ];
  for (const w of wide) {
    const bytes = Buffer.from(w);
    same(uniqdb.decodeJs(bytes), uniqdb.decode(bytes), bytes.toString('hex'));
  }
});

test('decode.js refuses what the C decoder refuses, with the same error', () => {
  const deep = (n) => Buffer.concat([Buffer.alloc(n, 0x91), Buffer.from([0x01])]);
  const bad = [
    [0x92, 0x01], [0xa3, 0x61], [0xcd, 0], [0xcf, 0, 0], [0xd9], [0xc4, 3, 1], [0x81, 0xa1],
    [0x81, 0xa1, 0x61], [0x01, 0x02], [0xdd, 0xff, 0xff, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff,
      0xff], [0xd4, 0x01, 0x00], [0xc7, 1, 1, 0], [0xc1], [0xd8, 1], [0x81, 0xd9], [],
    [0x81, 0xc1, 0xc0], [0x81, 0xa1, 0x61, 0xd4],
  ].map((b) => Buffer.from(b));
  bad.push(deep(128), deep(129), deep(200));
  for (const bytes of bad) {
    let cErr;
    let jsErr;
    let cVal;
    try {
      cVal = uniqdb.decode(bytes);
    } catch (e) {
      cErr = e;
    }
    try {
      const v = uniqdb.decodeJs(bytes);
      if (!cErr) same(v, cVal, bytes.toString('hex').slice(0, 20));
    } catch (e) {
      jsErr = e;
    }
    const what = bytes.toString('hex').slice(0, 20);
    assert.equal(Boolean(jsErr), Boolean(cErr), `${what}: ${jsErr} / ${cErr}`);
    if (cErr) {
      assert.equal(jsErr.message, cErr.message, what);
      assert.equal(jsErr.code, cErr.code, what);
    }
  }
});

// Differential fuzzing (seeded, so a failure repeats): every value's encoding with bytes
// flipped, cut short or extended, and random bytes, through both decoders: the same value or
// the same error.  (convert.c's decoder has libFuzzer coverage through fuzz/; this holds
// decode.js to it.)
// A seeded xorshift: rnd(n) is in [0, n).
function seeded(seed) {
  return (n) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
}

test('decode.js and the C decoder agree on mutated and random bytes', () => {
  const rnd = seeded(0x2545f491);
  const inputs = values.filter((v) => !(typeof v === 'string' && v.length > 1000) &&
    !(v && v.length > 1000)).map((v) => uniqdb.encode(v));
  const outcome = (fn, bytes) => {
    try {
      return { v: fn(bytes) };
    } catch (e) {
      return { e: `${e.code} ${e.message}` };
    }
  };
  for (let round = 0; round < 4000; round++) {
    let bytes;
    if (round % 4 === 3) {
      bytes = Buffer.from(Array.from({ length: 1 + rnd(24) }, () => rnd(256)));
    } else {
      bytes = Buffer.from(inputs[rnd(inputs.length)]);
      const k = 1 + rnd(3);
      for (let j = 0; j < k && bytes.length; j++) bytes[rnd(bytes.length)] = rnd(256);
      if (round % 4 === 1) bytes = bytes.subarray(0, rnd(bytes.length + 1));
      if (round % 4 === 2) bytes = Buffer.concat([bytes, Buffer.from([rnd(256)])]);
    }
    const c = outcome(uniqdb.decode, bytes);
    const js = outcome(uniqdb.decodeJs, bytes);
    const what = bytes.toString('hex').slice(0, 60);
    assert.equal(js.e, c.e, what);
    if (!c.e) same(js.v, c.v, what);
  }
});

// Records of a known shape (decode.js, decodeRecord): a shape learnt from one record decodes the
// next records whose map header and keys are the same bytes, and leaves every other input to
// the generic decoder.  Differential fuzzing as above, on records: of the learnt shapes with
// every value of the table, of shapes that differ from them a little (a field missing, one
// more, two swapped, a key as str8, a key twice, __proto__, a digit key, a map16 header), each
// mutated, through decodeRecord with the learnt shapes, the generic decoder and the C decoder:
// the same value or the same error, and a good share of them decoded by a shape.
test('decodeRecord with learnt shapes agrees with both decoders on mutated records', () => {
  const codec = require('../decode');
  const rnd = seeded(0x9e3779b9);
  const small = values.filter((v) => !(typeof v === 'string' && v.length > 1000) &&
    !(v && v.length > 1000) && !(Buffer.isBuffer(v) && v.length > 1000));
  const pick = () => small[rnd(small.length)];
  const booking = () => ({ id: rnd(1e6), ref: `BK-${rnd(1e9)}`, psychologist: 'psy-0001',
    slot: 'd000001 09:00', status: 'confirmed', user: 'user-0000001' });
  const makers = [
    booking,
    () => ({ ...booking(), user: pick() }), // the shape, a value of any kind
    () => ({ id: pick(), ref: pick(), psychologist: pick(), slot: pick(), status: pick() }),
    () => ({ k: pick(), a: pick() }),
    () => ({ k: pick() }),
  ];
  const enc = (o) => Buffer.from(uniqdb.encode(o));
  // other shapes, close to the learnt ones
  const near = [
    () => ({ ref: 'x', id: 1, psychologist: 'p', slot: 's', status: 'confirmed', user: 'u' }),
    () => ({ ...booking(), extra: pick() }),
    () => ({ id: 1, ref: 'x', psychologist: 'p', slot: 's', status: 'confirmed', usex: 'u' }),
    () => JSON.parse('{"__proto__": 1, "k": 2}'),
    () => ({ 1: 'one', k: pick() }),
    () => ({ k: pick(), a: pick(), b: pick() }),
    () => Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`f${i}`, pick()])),
    () => Buffer.from([0x82, 0xd9, 1, 0x6b, 1, 0xa1, 0x61, 2]), // {k: 1, a: 2}, k as str8
    () => Buffer.from([0x82, 0xa1, 0x6b, 1, 0xa1, 0x6b, 2]), // k twice
    () => Buffer.from([0xde, 0, 2, 0xa1, 0x6b, 1, 0xa1, 0x61, 2]), // map16 of {k, a}
    () => Buffer.from([0x81, 0xa1, 0x6b, 0xc1]), // {k: <never used>}
    () => Buffer.from([0x82, 0xa1, 0x6b, 0x91, 0x91, 0xc0, 0xa1, 0x61, 0x80]), // nested
    () => pick(),
  ];
  const outcome = (fn, bytes) => {
    try {
      return { v: fn(bytes) };
    } catch (e) {
      return { e: `${e.code} ${e.message}` };
    }
  };
  // the learnt shapes: one per shape of the makers (the first records of a type)
  const learnt = [];
  for (const m of [0, 2, 3, 4]) codec.decodeShaped(enc(makers[m]()), learnt);
  assert.equal(learnt.length, 4, 'a shape learnt from each of the first records');
  // every record of a learnt shape is decoded by it, whatever its values
  for (const m of makers) {
    for (let j = 0; j < 50; j++) {
      const bytes = enc(m());
      const before = codec.shapedCount();
      same(codec.decodeShaped(bytes, learnt), uniqdb.decode(bytes), bytes.toString('hex'));
      assert.equal(codec.shapedCount(), before + 1, `by its shape: ${bytes.toString('hex')}`);
    }
  }
  assert.equal(learnt.length, 4, 'no shape learnt from records of the learnt shapes');
  const hits0 = codec.shapedCount();
  const rounds = 6000;
  for (let round = 0; round < rounds; round++) {
    const from = round % 3 === 2 ? near[rnd(near.length)] : makers[rnd(makers.length)];
    const made = from();
    let bytes = Buffer.isBuffer(made) ? made : enc(made);
    if (round % 2 === 1) {
      bytes = Buffer.from(bytes);
      const k = 1 + rnd(3);
      for (let j = 0; j < k && bytes.length; j++) bytes[rnd(bytes.length)] = rnd(256);
      if (round % 6 === 3) bytes = bytes.subarray(0, rnd(bytes.length + 1));
      if (round % 6 === 5) bytes = Buffer.concat([bytes, Buffer.from([rnd(256)])]);
    }
    const what = bytes.toString('hex').slice(0, 80);
    const c = outcome(uniqdb.decode, bytes);
    const js = outcome(uniqdb.decodeJs, bytes);
    // with the learnt shapes (a copy: a shape learnt from this input is tried just below)
    const shapes = learnt.slice(0, 3 + (round % 2));
    const sh = outcome((b) => codec.decodeShaped(b, shapes), bytes);
    assert.equal(js.e, c.e, `generic ${what}`);
    assert.equal(sh.e, c.e, `shaped ${what}`);
    if (!c.e) {
      same(js.v, c.v, `generic ${what}`);
      same(sh.v, c.v, `shaped ${what}`);
    }
    if (shapes.length > 3 + (round % 2)) { // a shape learnt from these bytes: by it now
      const again = outcome((b) => codec.decodeShaped(b, shapes.slice(-1)), bytes);
      assert.equal(again.e, c.e, `learnt from ${what}`);
      if (!c.e) same(again.v, c.v, `learnt from ${what}`);
    }
  }
  const hits = codec.shapedCount() - hits0;
  assert.ok(hits > rounds / 4, `${hits} of ${rounds} records decoded by a shape`);
});

// Where code cannot be made from strings (a page's Content-Security-Policy without
// 'unsafe-eval' in Electron; node --disallow-code-generation-from-strings) decode.js makes no
// shapes and strings without its generated function: the same values still.
test('decode.js without code generation from strings: the same values, no shapes', () => {
  const code = `const assert = require('node:assert/strict');
    const u = require(${JSON.stringify(require.resolve('..'))});
    const codec = require(${JSON.stringify(require.resolve('../decode'))});
    const shapes = [];
    const recs = [{ id: 1, ref: 'BK-0123456789abcdef', s: 'x'.repeat(32), t: 'é' },
      { k: 'a', n: [1, 'two', { three: 3 }] }, { id: 1, ref: 'BK-0123456789abcdef', s: '', t: 'ü' }];
    for (const r of recs) {
      const b = Buffer.from(u.encode(r));
      assert.deepStrictEqual(codec.decodeShaped(b, shapes), u.decode(b));
      assert.deepStrictEqual(u.decodeJs(b), u.decode(b));
    }
    assert.equal(shapes.length, 0);
    assert.equal(codec.shapedCount(), 0);
    process.stdout.write('ok');`;
  const r = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '-e', code],
    { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'ok');
});

test('keys encoded by decode.js are the bytes the C encoder makes, or left to it', () => {
  const codec = require('../decode');
  const buf = Buffer.alloc(1024);
  const keys = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33,
    -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53 - 1, -0, 1.5, NaN, 5n,
    '', 'a', 'x'.repeat(31), 'x'.repeat(32), 'y'.repeat(255), 'y'.repeat(256), 'é', '\u0000',
    true, false, null, undefined, Buffer.from([1]), [1], { a: 1 }, Symbol('s')];
  let fast = 0;
  for (const v of keys) {
    const what = typeof v === 'symbol' ? 'symbol' : show(v);
    const n = codec.encodeKey(buf, v);
    if (n > 0) {
      fast++;
      assert.deepStrictEqual(buf.subarray(0, n), uniqdb.encode(v), `key ${what}`);
    }
    const m = codec.encodeValues(buf, [v, 'b', v]);
    if (m > 0) {
      assert.deepStrictEqual(buf.subarray(0, m), uniqdb.encode([v === undefined ? null : v,
        'b', v === undefined ? null : v]), `values ${what}`);
    }
    const one = codec.encodeValues(buf, v);
    if (one > 0 && !Array.isArray(v)) {
      assert.deepStrictEqual(buf.subarray(0, one), uniqdb.encode([v === undefined ? null : v]),
        `bare ${what}`);
    }
  }
  assert.ok(fast >= 25, `${fast} keys took decode.js's way`);
  assert.equal(codec.encodeValues(buf, Array(16).fill(1)), -1);
  assert.deepStrictEqual(buf.subarray(0, codec.encodeValues(buf, Array(15).fill(1))),
    uniqdb.encode(Array(15).fill(1)));
});

const schema = {
  types: {
    rec: {
      key: 'id',
      fields: { id: { type: 'uint', auto: true }, k: { type: 'str' }, a: { type: 'any' } },
      unique: { k: { fields: ['k'] } },
    },
  },
};

test('get and find return, through decode.js, what the C decoder makes of the record',
  async (t) => {
    const db = uniqdb.open(tmpdir(t), { schema });
    t.after(() => db.close());
    const stored = [];
    for (const [i, v] of values.entries()) {
      // nil is a missing field; a value the record cannot hold is left out
      stored.push(await db.insert('rec', { k: `k${i}`, a: v }));
    }
    // over 4096 field names: decode.js's cache of names has collisions
    const many = Object.fromEntries(Array.from({ length: 6000 }, (_, i) => [`f${i}`, i]));
    stored.push(await db.insert('rec', { k: 'many', a: many }));
    for (const [i, rec] of stored.entries()) {
      const c = uniqdb.decode(uniqdb.encode(rec)); // the write result went through C
      same(db.get('rec', rec.id), c, `get ${i}`);
      same(db.find('rec', 'k', rec.k), c, `find ${i}`);
      same(db.readSync((r) => r.find('rec', 'k', [rec.k])), c, `readSync find ${i}`);
    }
    // keys of every kind, through either encoder: the same records
    const keyed = await db.insert('rec', { k: 'é'.repeat(40) });
    same(db.find('rec', 'k', ['é'.repeat(40)]), uniqdb.decode(uniqdb.encode(keyed)), 'find é');
    same(db.get('rec', BigInt(keyed.id)), db.get('rec', keyed.id), 'get by bigint');
    assert.equal(db.find('rec', 'k', [null]), undefined);
    assert.throws(() => db.find('rec', 'k', [Symbol('x')]), TypeError);
    assert.throws(() => db.find('re\0c', 'k', ['a']), /must not contain a NUL/);
    assert.throws(() => db.find('nope', 'k', ['a']), (e) => e.code !== undefined);
    assert.throws(() => db.get('rec', undefined), (e) => e.code !== undefined);
    // records over the 64 KiB read buffer are decoded by the addon
    const big = stored.find((r) => typeof r.a === 'string' && r.a.length === 70000);
    assert.equal(db.get('rec', big.id).a, 'z'.repeat(70000));
    assert.equal(db.get('rec', 1e9), undefined);
    assert.equal(db.find('rec', 'k', 'none'), undefined);
  });

// A child process that inserts {k} and exits once the insert is durable.
function insertElsewhere(dir, k) {
  const code = `const u = require(${JSON.stringify(require.resolve('..'))});
    const db = u.open(${JSON.stringify(dir)});
    db.insert('rec', { k: ${JSON.stringify(k)} }).then(() => db.close());`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

test('a kept read snapshot sees every write committed before the read, in the same turn',
  async (t) => {
    const dir = tmpdir(t);
    const db = uniqdb.open(dir, { schema });
    t.after(() => db.close());
    await db.insert('rec', { k: 'first' });
    // all below runs in one turn of the event loop: the snapshot is kept between the reads
    assert.ok(db.find('rec', 'k', 'first'));
    for (let i = 0; i < 3; i++) {
      assert.equal(db.find('rec', 'k', `other${i}`), undefined);
      insertElsewhere(dir, `other${i}`); // another process commits meanwhile
      assert.ok(db.find('rec', 'k', `other${i}`), `another process's write ${i} is seen`);
      assert.ok(db.get('rec', i + 2), `get ${i}`);
    }
    // this thread's writes, with the snapshot kept: transactionSync is not refused
    db.transactionSync((tx) => tx.insert('rec', { k: 'tx' }));
    assert.ok(db.find('rec', 'k', 'tx'));
    // another handle of the same database, and open() applying a schema, in the same turn
    const db2 = uniqdb.open(dir, { schema });
    assert.ok(db2.find('rec', 'k', 'tx'));
    db2.transactionSync((tx) => tx.insert('rec', { k: 'tx2' }));
    assert.ok(db.find('rec', 'k', 'tx2'));
    db2.close();
    // a promise write, awaited (its promise settles in a later turn)
    assert.equal(db.find('rec', 'k', 'later'), undefined);
    await db.insert('rec', { k: 'later' });
    assert.ok(db.find('rec', 'k', 'later'));
  });

test('a kept read snapshot sees another thread\'s commits', async (t) => {
  const dir = tmpdir(t);
  const db = uniqdb.open(dir, { schema });
  t.after(() => db.close());
  await db.insert('rec', { k: 'seed' });
  const flag = new Int32Array(new SharedArrayBuffer(8));
  const w = new Worker(`
    const { workerData: { dir, flag, mod } } = require('node:worker_threads');
    const u = require(mod);
    const db = u.open(dir);
    (async () => {
      for (let i = 1; i <= 5; i++) {
        while (Atomics.load(flag, 0) !== i) Atomics.wait(flag, 0, Atomics.load(flag, 0), 50);
        await db.insert('rec', { k: 'w' + i });
        Atomics.store(flag, 1, i);
        Atomics.notify(flag, 1);
      }
      db.close();
    })();`, { eval: true, workerData: { dir, flag, mod: require.resolve('..') } });
  const done = new Promise((resolve, reject) => {
    w.once('exit', resolve);
    w.once('error', reject);
  });
  // synchronously, in one turn: read, let the worker commit, read again
  try {
    for (let i = 1; i <= 5; i++) {
      assert.equal(db.find('rec', 'k', `w${i}`), undefined);
      Atomics.store(flag, 0, i);
      Atomics.notify(flag, 0);
      while (Atomics.load(flag, 1) !== i) Atomics.wait(flag, 1, Atomics.load(flag, 1), 50);
      assert.ok(db.find('rec', 'k', `w${i}`), `the worker's write ${i} is seen`);
    }
  } catch (e) {
    await w.terminate();
    throw e;
  }
  await done;
});
