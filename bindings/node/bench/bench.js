'use strict';
// W2 and W4 of tools/bench through the Node.js binding, against better-sqlite3
// and lmdb-js (README.md, "Benchmark").  Median of ROUNDS rounds, each on fresh
// databases; every result is verified before it counts.
//
//   node bench.js [--rounds 3] [--procs 8] [--inflight 16] [--duration 2]
//                 [--records 20000] [--lookups 200000] [--c-bench PATH]
//
// W2: lookups by a unique key, one process, synchronous reads.
// W4: insert_or_get by a unique key from PROCS processes, each with INFLIGHT
//     requests in flight, every op its own durable commit; half the keys exist.
// --c-bench runs tools/bench's uniqdb-bench --only W2 in the same run, for the
// C API's lookups/s.
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
const BATCH = 1000;

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
  },
  'better-sqlite3': {
    open(dir) {
      const Database = require('better-sqlite3');
      fs.mkdirSync(dir, { recursive: true });
      const db = new Database(path.join(dir, 'db.sqlite'));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 10000');
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
  },
  'lmdb-js': {
    open(dir) {
      const { open } = require('lmdb');
      const root = open({ path: dir });
      const recs = root.openDB({ name: 'user' });
      const idx = root.openDB({ name: 'user.email' });
      const tag = `${process.pid}`;
      let seq = 0;
      return {
        // a key plus a hand-kept unique-index key, in one transaction
        insertOrGet: (email, name) => root.transaction(() => {
          const id = idx.get(email);
          if (id !== undefined) return { created: false, record: recs.get(id) };
          const nid = `${tag}:${seq++}`;
          const record = { id: nid, email, name, plan: 'free' };
          recs.put(nid, record);
          idx.put(email, nid);
          return { created: true, record };
        }),
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
  },
};

// ---- W4 worker: node bench.js --worker ENGINE DIR KEYSPACE ----

async function worker(engine, dir, keyspace) {
  const e = engines[engine].open(dir);
  process.send('ready');
  await new Promise((resolve) => process.once('message', resolve));
  const end = Date.now() + DURATION * 1000;
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
  e.close();
  process.send({ ops, bad, busy });
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
  v.close();
  if (!ok) throw new Error(`W4 ${engine}: verification failed`);
  return ops / secs;
}

// W2: [lookups/s one call each, lookups/s BATCH per read snapshot]
async function w2(engine, dir) {
  const e = engines[engine].open(dir);
  await e.load(RECORDS);
  const keys = Array.from({ length: LOOKUPS }, () => `u${Math.floor(Math.random() * RECORDS)}@x`);
  let bad = 0;
  let t0 = process.hrtime.bigint();
  for (const k of keys) if (e.find(k).email !== k) bad++;
  const single = LOOKUPS / (Number(process.hrtime.bigint() - t0) / 1e9);
  t0 = process.hrtime.bigint();
  for (let i = 0; i < LOOKUPS; i += BATCH) {
    const part = keys.slice(i, i + BATCH);
    const got = e.findMany(part);
    for (let j = 0; j < part.length; j++) if (got[j].email !== part[j]) bad++;
  }
  const batched = LOOKUPS / (Number(process.hrtime.bigint() - t0) / 1e9);
  e.close();
  if (bad) throw new Error(`W2 ${engine}: ${bad} wrong lookups`);
  return [single, batched];
}

function cLookups() {
  if (!CBENCH) return undefined;
  const out = JSON.parse(execFileSync(CBENCH, ['--only', 'W2', '--engines', 'uniqdb',
    '--records', String(RECORDS), '--lookups', String(LOOKUPS), '--json'],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
  const w2row = out.results.find((x) => x.workload === 'W2');
  if (!out.ok || !w2row.engines.uniqdb.verified) throw new Error('uniqdb-bench W2 failed');
  return w2row.engines.uniqdb.ops_per_sec;
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const names = Object.keys(engines);
  const fig = { W2: {}, W2b: {}, W4: {} };
  const cfig = [];
  for (const w of Object.keys(fig)) for (const n of names) fig[w][n] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const n of names) {
      const base = fs.mkdtempSync(path.join(os.tmpdir(), 'uniqdb-node-bench-'));
      const [single, batched] = await w2(n, path.join(base, 'w2'));
      fig.W2[n].push(single);
      fig.W2b[n].push(batched);
      fig.W4[n].push(await w4(n, path.join(base, 'w4')));
      fs.rmSync(base, { recursive: true, force: true });
    }
    const c = cLookups();
    if (c !== undefined) cfig.push(c);
  }
  const row = (label, unit, w) => {
    const m = Object.fromEntries(names.map((n) => [n, median(fig[w][n])]));
    const cells = names.map((n) => m[n].toFixed(0).padStart(15)).join('');
    const ratio = (n) => `${(m.uniqdb / m[n]).toFixed(2).padStart(8)}x`;
    console.log(`${label.padEnd(34)}${unit.padEnd(11)}${cells}${ratio('better-sqlite3')}` +
      `${ratio('lmdb-js')}`);
    return m;
  };
  console.log(`${ROUNDS} rounds (median), ${PROCS} processes x ${INFLIGHT} in flight for W4, ` +
    `${RECORDS} records, node ${process.version}`);
  console.log(`${'workload'.padEnd(34)}${'unit'.padEnd(11)}` +
    `${names.map((n) => n.padStart(15)).join('')}` +
    `${'udb/bsq3'.padStart(9)}${'udb/lmdb'.padStart(9)}`);
  const m2 = row('W2 find by unique key, 1 per call', 'lookups/s', 'W2');
  const m2b = row(`W2 find, ${BATCH} per read snapshot`, 'lookups/s', 'W2b');
  row(`W4 insertOrGet ${PROCS} procs x ${INFLIGHT}`, 'ops/s', 'W4');
  if (cfig.length) {
    const c = median(cfig);
    console.log(`C API (uniqdb-bench W2, ${BATCH} per read transaction): ${c.toFixed(0)} ` +
      `lookups/s; the binding's W2 is ${(m2.uniqdb / c).toFixed(2)}x of it one per call, ` +
      `${(m2b.uniqdb / c).toFixed(2)}x ${BATCH} per readSync`);
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
