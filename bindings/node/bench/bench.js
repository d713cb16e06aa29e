'use strict';
// W2 and W4 of tools/bench through the Node.js binding, against better-sqlite3
// and lmdb-js (README.md, "Benchmark").  Median of ROUNDS rounds, each on fresh
// databases; every result is verified before it counts.
//
//   node bench.js [--rounds 3] [--procs 8] [--inflight 16] [--duration 2]
//                 [--records 20000] [--lookups 200000] [--c-bench PATH]
//                 [--only W2,W4] [--engines uniqdb,better-sqlite3,lmdb-js]
//                 [--lmdb-sync commit|flushed|sync]
//
// W2: lookups by a unique key, one process, synchronous reads: tools/bench's
//     own records (its booking schema and generator, bench_gen.c) and its own
//     lookups (the same refs in the same order), so that the C API's figure
//     below is for the same work.
// W4: insert_or_get by a unique key from PROCS processes, each with INFLIGHT
//     requests in flight, every op its own durable commit; half the keys exist.
// --c-bench runs tools/bench's uniqdb-bench in the same run, each round: W2
// (--batch 1000 and --batch 1) for the C API's lookups/s, and W4's
// `PROCS procs xINFLIGHT` row for the engine's own cross-process rate.
const { fork, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
}
const ROUNDS = Number(opt('rounds', 3));
const PROCS = Number(opt('procs', 8));
const INFLIGHT = Number(opt('inflight', 16));
const DURATION = Number(opt('duration', 2));
const RECORDS = Number(opt('records', 20000));
const LOOKUPS = Number(opt('lookups', 200000));
const CBENCH = opt('c-bench', '');
const ONLY = opt('only', 'W2,W4').split(',');
const BATCH = 1000;

// lmdb-js's durable configurations (README.md, "Benchmark"): every W4 write must resolve only
// once it is durable, as uniqdb's and better-sqlite3's (synchronous=FULL) do.
//   commit:  lmdb-js's default on Linux, overlappingSync: its write thread commits with
//            MDB_NOSYNC, but in lmdb-js 3.5.6 the promise of root.transaction() still settles
//            after the fdatasync: writer.cpp sets TXN_COMMITTED (what resolves the promise,
//            write.js resolveWrites) only when mdb_txn_commit returns, and lmdb-js's
//            mdb_txn_commit with overlappingSync syncs the data file and writes the flushed
//            meta page through its O_DSYNC descriptor before returning (its mdb.c, the end of
//            mdb_txn_commit).  bench/lmdb-durability.js shows the order under strace.
//   flushed: the same, each lane also awaiting root.flushed after its transaction (what
//            lmdb-js's README documents as the durable point).
//   sync:    overlappingSync: false, the sync inside the write lock.
// The default is `flushed`: durable by lmdb-js's documentation as well as by its code, and as fast
// as `commit` (13.8k and 14.1k ops/s, medians of 3 rounds, one after the other on 2026-12-07;
// `sync`: 4.8k).
const LMDB_SYNC = opt('lmdb-sync', 'flushed');
if (!['commit', 'flushed', 'sync'].includes(LMDB_SYNC)) {
  throw new Error(`--lmdb-sync ${LMDB_SYNC}: expected commit, flushed or sync`);
}
const lmdbOptions = (dir) => ({ path: dir, overlappingSync: LMDB_SYNC !== 'sync' });

// ---- tools/bench's records (bench_gen.c): a pure function of their number ----

const M64 = (1n << 64n) - 1n;
function mix64(x) {
  x ^= x >> 33n;
  x = (x * 0xff51afd7ed558ccdn) & M64;
  x ^= x >> 33n;
  x = (x * 0xc4ceb9fe1a85ec53n) & M64;
  x ^= x >> 33n;
  return x;
}
const STATUSES = ['pending', 'confirmed', 'cancelled', 'completed'];
const NPSY = 997;
const pad = (n, w) => String(n).padStart(w, '0');
const refOf = (i) => `BK-${mix64(BigInt(i)).toString(16).padStart(16, '0')}`;
function booking(i, nusers) {
  const b = BigInt(i);
  const s = Math.floor(i / NPSY);
  return {
    id: i + 1,
    ref: refOf(i),
    psychologist: `psy-${pad(i % NPSY, 4)}`,
    slot: `d${pad(Math.floor(s / 12) % 1000000, 6)} ${pad(8 + (s % 12), 2)}:00`,
    status: STATUSES[Number(mix64(b ^ 0x9e3779b97f4a7c15n) >> 62n)],
    user: `user-${pad(Number(mix64(b ^ 0x5851f42d4c957f2dn) % BigInt(nusers)) % 10000000, 7)}`,
  };
}
// W2's lookups: record numbers in bench_work.c's order (one process: start 0)
const lookupOf = (i, n) => Number(mix64(BigInt(i) ^ 0x2545f4914f6cdd1dn) % BigInt(n));
const bookingSchema = {
  types: {
    booking: {
      key: 'id',
      fields: {
        id: { type: 'uint' },
        ref: { type: 'str', required: true },
        psychologist: { type: 'str', required: true },
        slot: { type: 'str', required: true },
        status: { type: 'enum', required: true,
          values: ['pending', 'confirmed', 'cancelled', 'completed'] },
        user: { type: 'str' },
      },
      unique: {
        ref: { fields: ['ref'] },
        active_slot: { fields: ['psychologist', 'slot'],
          where: "status IN ('pending', 'confirmed')" },
      },
      indexes: { by_user: { fields: ['user', 'slot'] } },
    },
  },
};
const BOOKING_FIELDS = ['id', 'ref', 'psychologist', 'slot', 'status', 'user'];

const schema = {
  types: {
    user: {
      key: 'id',
      fields: {
        id: { type: 'uint', auto: true },
        email: { type: 'str', required: true },
        name: { type: 'str' },
        plan: { type: 'str' },
      },
      unique: { email: { fields: ['email'] } },
    },
  },
};

// ---- the engines: open, insertOrGet(email) -> {created, record}, find(email) ----

const engines = {
  uniqdb: {
    open(dir) {
      const uniqdb = require('..');
      const db = uniqdb.open(dir, { schema });
      return {
        insertOrGet: (email, name) =>
          db.insertOrGet('user', { email, name, plan: 'free' }, { index: 'email' }),
        find: (email) => db.find('user', 'email', [email]),
        // BATCH lookups per read snapshot, as tools/bench's W2 does (--batch)
        findMany: (emails) => db.readSync((r) => emails.map((e) => r.find('user', 'email', [e]))),
        load: (n) => db.exec(Array.from({ length: n }, (_, i) =>
          ({ op: 'insert', type: 'user', record: { email: `u${i}@x`, name: `n${i}`,
            plan: 'free' } }))),
        count: () => {
          let k = 0;
          for (const _ of db.scan('user')) k++;
          return k;
        },
        verify: () => db.check().length === 0,
        close: () => db.close(),
      };
    },
    openW2(dir) {
      const uniqdb = require('..');
      const db = uniqdb.open(dir, { schema: bookingSchema });
      return {
        load: (recs) => db.exec(recs.map((record) => ({ op: 'insert', type: 'booking', record }))),
        find: (ref) => db.find('booking', 'ref', [ref]),
        findMany: (refs) => db.readSync((r) => refs.map((x) => r.find('booking', 'ref', [x]))),
        close: () => db.close(),
      };
    },
  },
  'better-sqlite3': {
    open(dir) {
      const Database = require('better-sqlite3');
      fs.mkdirSync(dir, { recursive: true });
      const db = new Database(path.join(dir, 'db.sqlite'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 10000');
      if (db.pragma('synchronous', { simple: true }) !== 2 ||
          db.pragma('journal_mode', { simple: true }) !== 'wal') {
        throw new Error('better-sqlite3: not WAL with synchronous=FULL');
      }
      db.exec('CREATE TABLE IF NOT EXISTS user (id INTEGER PRIMARY KEY, email TEXT NOT NULL ' +
        'UNIQUE, name TEXT, plan TEXT)');
      const ins = db.prepare('INSERT INTO user (email, name, plan) VALUES (?, ?, ?) ' +
        'ON CONFLICT (email) DO NOTHING RETURNING *');
      const sel = db.prepare('SELECT * FROM user WHERE email = ?');
      return {
        // synchronous: one op at a time per process whatever is "in flight"
        insertOrGet: async (email, name) => {
          const row = ins.get(email, name, 'free');
          return row ? { created: true, record: row } : { created: false, record: sel.get(email) };
        },
        find: (email) => sel.get(email),
        findMany: (emails) => db.transaction(() => emails.map((e) => sel.get(e)))(),
        load: async (n) => db.transaction(() => {
          for (let i = 0; i < n; i++) ins.get(`u${i}@x`, `n${i}`, 'free');
        })(),
        count: () => db.prepare('SELECT count(*) AS n FROM user').get().n,
        verify: () => db.prepare('SELECT count(DISTINCT email) AS d, count(*) AS n FROM user')
          .get().d === db.prepare('SELECT count(*) AS n FROM user').get().n,
        close: () => db.close(),
      };
    },
    openW2(dir) {
      const Database = require('better-sqlite3');
      fs.mkdirSync(dir, { recursive: true });
      const db = new Database(path.join(dir, 'db.sqlite'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec('CREATE TABLE booking (id INTEGER PRIMARY KEY, ref TEXT NOT NULL UNIQUE, ' +
        'psychologist TEXT NOT NULL, slot TEXT NOT NULL, status TEXT NOT NULL, user TEXT)');
      db.exec("CREATE UNIQUE INDEX active_slot ON booking (psychologist, slot) " +
        "WHERE status IN ('pending', 'confirmed')");
      db.exec('CREATE INDEX by_user ON booking (user, slot)');
      const ins = db.prepare('INSERT INTO booking VALUES (@id, @ref, @psychologist, @slot, ' +
        '@status, @user)');
      const sel = db.prepare('SELECT * FROM booking WHERE ref = ?');
      return {
        load: async (recs) => db.transaction(() => recs.forEach((r) => ins.run(r)))(),
        find: (ref) => sel.get(ref),
        findMany: (refs) => db.transaction(() => refs.map((x) => sel.get(x)))(),
        close: () => db.close(),
      };
    },
  },
  'lmdb-js': {
    open(dir) {
      const { open } = require('lmdb');
      const root = open(lmdbOptions(dir));
      const recs = root.openDB({ name: 'user' });
      const idx = root.openDB({ name: 'user.email' });
      const tag = `${process.pid}`;
      let seq = 0;
      return {
        // a key plus a hand-kept unique-index key, in one transaction
        insertOrGet: async (email, name) => {
          const r = await root.transaction(() => {
            const id = idx.get(email);
            if (id !== undefined) return { created: false, record: recs.get(id) };
            const nid = `${tag}:${seq++}`;
            const record = { id: nid, email, name, plan: 'free' };
            recs.put(nid, record);
            idx.put(email, nid);
            return { created: true, record };
          });
          if (LMDB_SYNC === 'flushed') await root.flushed;
          return r;
        },
        find: (email) => {
          const id = idx.get(email);
          return id === undefined ? undefined : recs.get(id);
        },
        findMany: (emails) => root.transactionSync(() => emails.map((e) => recs.get(idx.get(e)))),
        load: (n) => root.transaction(() => {
          for (let i = 0; i < n; i++) {
            const email = `u${i}@x`;
            recs.put(`load:${i}`, { id: `load:${i}`, email, name: `n${i}`, plan: 'free' });
            idx.put(email, `load:${i}`);
          }
        }),
        count: () => recs.getKeysCount(),
        verify: () => {
          for (const { key, value } of idx.getRange()) {
            const r = recs.get(value);
            if (!r || r.email !== key) return false;
          }
          return idx.getKeysCount() === recs.getKeysCount();
        },
        close: () => root.close(),
      };
    },
    openW2(dir) {
      const { open } = require('lmdb');
      const root = open(lmdbOptions(dir));
      const recs = root.openDB({ name: 'booking' });
      const idx = root.openDB({ name: 'booking.ref' });
      return {
        load: (all) => root.transaction(() => {
          for (const r of all) {
            recs.put(r.id, r);
            idx.put(r.ref, r.id);
          }
        }),
        find: (ref) => {
          const id = idx.get(ref);
          return id === undefined ? undefined : recs.get(id);
        },
        findMany: (refs) => root.transactionSync(() => refs.map((x) => recs.get(idx.get(x)))),
        close: () => root.close(),
      };
    },
  },
};

// ---- W4 worker: node bench.js --worker ENGINE DIR KEYSPACE ----

async function worker(engine, dir, keyspace) {
  const e = engines[engine].open(dir);
  process.send('ready');
  await new Promise((resolve) => process.once('message', resolve));
  const end = Date.now() + DURATION * 1000;
  const cpu0 = process.cpuUsage();
  let ops = 0;
  let bad = 0;
  let busy = 0;
  const lane = async () => {
    while (Date.now() < end) {
      const email = `u${Math.floor(Math.random() * keyspace)}@x`;
      let r;
      try {
        r = await e.insertOrGet(email, `p${process.pid}`);
      } catch (err) {
        if (!/busy|locked/i.test(String(err && (err.code || err.message)))) throw err;
        busy++; // better-sqlite3 under 8 writing processes: SQLITE_BUSY, retried
        continue;
      }
      if (!r.record || r.record.email !== email) bad++;
      ops++;
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, lane));
  const cpu = process.cpuUsage(cpu0);
  e.close();
  process.send({ ops, bad, busy, cpuUs: cpu.user + cpu.system });
}

async function w4(engine, dir) {
  const e = engines[engine].open(dir);
  await e.load(RECORDS); // keys u0..u(RECORDS-1) exist; as many again do not
  e.close();
  const kids = Array.from({ length: PROCS }, () => fork(__filename,
    ['--worker', engine, dir, String(2 * RECORDS), ...args],
    { env: { ...process.env, UV_THREADPOOL_SIZE: String(INFLIGHT) } }));
  await Promise.all(kids.map((k) => new Promise((r) => k.once('message', r))));
  const t0 = process.hrtime.bigint();
  const results = Promise.all(kids.map((k) => new Promise((r) => k.once('message', r))));
  for (const k of kids) k.send('go');
  const res = await results;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const ops = res.reduce((a, r) => a + r.ops, 0);
  const v = engines[engine].open(dir);
  const ok = res.every((r) => r.bad === 0) && v.verify() && v.count() <= 2 * RECORDS;
  const busy = res.reduce((a, r) => a + r.busy, 0);
  if (busy) console.error(`W4 ${engine}: ${busy} busy errors retried`);
  cpuPerOp[engine].push(res.reduce((a, r) => a + r.cpuUs, 0) / Math.max(ops, 1));
  v.close();
  if (!ok) throw new Error(`W4 ${engine}: verification failed`);
  return ops / secs;
}

// W2: [lookups/s one call each, lookups/s BATCH per read snapshot], on tools/bench's records
// and lookups.  Each result's ref and id are checked as it is read (the C benchmark compares
// the bytes), and every field of the first BATCH records read afterwards.
async function w2(engine, dir) {
  const nusers = RECORDS >= 16 ? Math.floor(RECORDS / 8) : 2;
  const recs = Array.from({ length: RECORDS }, (_, i) => booking(i, nusers));
  const e = engines[engine].openW2(dir);
  await e.load(recs);
  const which = Array.from({ length: LOOKUPS }, (_, i) => lookupOf(i, RECORDS));
  // Each lookup's key made anew, in lookup order, as uniqdb-bench makes each batch's keys
  // (bench_gen into one array) before it times them: the keys of recs[] would instead be
  // strings scattered over the heap in load order, and reading them at random costs cache
  // misses the C figure does not have (8 alternating passes in one process, 2026-12-07: a
  // median of 270k lookups/s with those keys, 304k with these).
  const keys = which.map(refOf);
  const ids = which.map((i) => i + 1);
  let bad = 0;
  let t0 = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i++) {
    const r = e.find(keys[i]);
    if (r.ref !== keys[i] || r.id !== ids[i]) bad++;
  }
  const single = LOOKUPS / (Number(process.hrtime.bigint() - t0) / 1e9);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i += BATCH) {
    const part = keys.slice(i, i + BATCH);
    const got = e.findMany(part);
    for (let j = 0; j < part.length; j++) {
      if (got[j].ref !== part[j] || got[j].id !== ids[i + j]) bad++;
    }
  }
  const batched = LOOKUPS / (Number(process.hrtime.bigint() - t0) / 1e9);
  for (let i = 0; i < Math.min(BATCH, LOOKUPS); i++) {
    const r = e.find(keys[i]);
    const want = recs[which[i]];
    if (BOOKING_FIELDS.some((f) => r[f] !== want[f])) bad++;
  }
  e.close();
  if (bad) throw new Error(`W2 ${engine}: ${bad} wrong lookups`);
  return [single, batched];
}

// tools/bench's uniqdb-bench (--c-bench): its JSON, checked.
function cBench(extra) {
  const out = JSON.parse(execFileSync(CBENCH, [...extra, '--engines', 'uniqdb', '--json'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  if (!out.ok && out.ok !== undefined) throw new Error(`uniqdb-bench ${extra.join(' ')} failed`);
  return out.results;
}

// The C API's W2 lookups/s on the same records and lookups: [BATCH per read transaction, one].
function cLookups() {
  return [BATCH, 1].map((batch) => {
    const res = cBench(['--only', 'W2', '--records', String(RECORDS), '--lookups',
      String(LOOKUPS), '--batch', String(batch)]);
    const row = res.find((x) => x.workload === 'W2');
    if (!row.engines.uniqdb.verified) throw new Error('uniqdb-bench W2 failed');
    return row.engines.uniqdb.ops_per_sec;
  });
}

// The engine's own W4, from C: the `PROCS procs xINFLIGHT` row (udb_exec_async).
function cW4() {
  const res = cBench(['--only', 'W4', '--threads', '', '--procs', String(PROCS), '--inflight',
    String(INFLIGHT), '--duration', String(DURATION)]);
  const row = res.find((x) => x.workload === 'W4' && x.procs === PROCS && x.inflight === INFLIGHT);
  if (!row || !row.engines.uniqdb.verified) throw new Error('uniqdb-bench W4 failed');
  return row.engines.uniqdb.ops_per_sec;
}

const cpuPerOp = Object.fromEntries(Object.keys(engines).map((n) => [n, []]));
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const names = opt('engines', Object.keys(engines).join(',')).split(',');
  const fig = { W2: {}, W2b: {}, W4: {} };
  const cfig = { W2: [], W2one: [], W4: [] };
  for (const w of Object.keys(fig)) for (const n of names) fig[w][n] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of names) {
      const base = fs.mkdtempSync(path.join(os.tmpdir(), 'uniqdb-node-bench-'));
      if (ONLY.includes('W2')) {
        const [single, batched] = await w2(n, path.join(base, 'w2'));
        fig.W2[n].push(single);
        fig.W2b[n].push(batched);
      }
      if (ONLY.includes('W4')) fig.W4[n].push(await w4(n, path.join(base, 'w4')));
      fs.rmSync(base, { recursive: true, force: true });
    }
    if (CBENCH && ONLY.includes('W2')) {
      const [batched, one] = cLookups();
      cfig.W2.push(batched);
      cfig.W2one.push(one);
    }
    if (CBENCH && ONLY.includes('W4')) cfig.W4.push(cW4());
  }
  const has = (n) => names.includes(n) && names.includes('uniqdb');
  const row = (label, unit, w) => {
    const m = Object.fromEntries(names.map((n) => [n, median(fig[w][n])]));
    const cells = names.map((n) => m[n].toFixed(0).padStart(15)).join('');
    const ratio = (n) => (has(n) ? `${(m.uniqdb / m[n]).toFixed(2).padStart(8)}x` : '');
    console.log(`${label.padEnd(34)}${unit.padEnd(11)}${cells}${ratio('better-sqlite3')}` +
      `${ratio('lmdb-js')}`);
    return m;
  };
  console.log(`${ROUNDS} rounds (median), ${PROCS} processes x ${INFLIGHT} in flight for W4, ` +
    `${RECORDS} records, ${LOOKUPS} lookups, node ${process.version}, lmdb-js --lmdb-sync ` +
    `${LMDB_SYNC}`);
  console.log(`${'workload'.padEnd(34)}${'unit'.padEnd(11)}` +
    `${names.map((n) => n.padStart(15)).join('')}` +
    `${has('better-sqlite3') ? 'udb/bsq3'.padStart(9) : ''}` +
    `${has('lmdb-js') ? 'udb/lmdb'.padStart(9) : ''}`);
  let m2;
  let m2b;
  let m4;
  if (ONLY.includes('W2')) {
    m2 = row('W2 find by unique key, 1 per call', 'lookups/s', 'W2');
    m2b = row(`W2 find, ${BATCH} per read snapshot`, 'lookups/s', 'W2b');
  }
  if (ONLY.includes('W4')) {
    m4 = row(`W4 insertOrGet ${PROCS} procs x ${INFLIGHT}`, 'ops/s', 'W4');
    console.log(`${'W4 CPU per op, all processes'.padEnd(34)}${'us'.padEnd(11)}` +
      `${names.map((n) => median(cpuPerOp[n]).toFixed(0).padStart(15)).join('')}`);
  }
  if (!names.includes('uniqdb')) return;
  if (cfig.W2.length) {
    const c = median(cfig.W2);
    const c1 = median(cfig.W2one);
    console.log(`C API (uniqdb-bench W2, the same records and lookups): ${c.toFixed(0)} ` +
      `lookups/s ${BATCH} per read transaction, ${c1.toFixed(0)} one per transaction; the ` +
      `binding's W2 is ${(m2.uniqdb / c).toFixed(2)}x of the first one per call, ` +
      `${(m2b.uniqdb / c).toFixed(2)}x ${BATCH} per readSync`);
  }
  if (cfig.W4.length) {
    const c = median(cfig.W4);
    console.log(`C API (uniqdb-bench W4 ${PROCS} procs x${INFLIGHT}, udb_exec_async): ` +
      `${c.toFixed(0)} ops/s; the binding's W4 is ${(m4.uniqdb / c).toFixed(2)}x of it`);
  }
}

if (args[0] === '--worker') {
  worker(args[1], args[2], Number(args[3]));
} else {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
