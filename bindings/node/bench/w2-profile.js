'use strict';
// W2's find/get loop alone, for profilers (README.md, "Benchmark"): instructions per lookup
// are what a loaded machine still measures, e.g.
//   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=js_find \
//     node w2-profile.js .. find 2000 8000
// node w2-profile.js ADDONDIR MODE WARM N   (MODE: find | get | batch | native | decode;
//   ADDONDIR: bindings/node; native: the addon's find without decoding, decode: decode.js alone)
const path = require('node:path'), fs = require('node:fs'), os = require('node:os');
const uniqdb = require(path.resolve(process.argv[2]));
const mode = process.argv[3], WARM = Number(process.argv[4]), N = Number(process.argv[5]);
const RECORDS = 20000, MAXN = 200000;
const schema = { types: { user: { key: 'id', fields: {
  id: { type: 'uint', auto: true }, email: { type: 'str', required: true },
  name: { type: 'str' }, plan: { type: 'str' } },
  unique: { email: { fields: ['email'] } } } } };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'w2p-'));
const db = uniqdb.open(dir, { schema });
(async () => {
  await db.exec(Array.from({ length: RECORDS }, (_, i) => ({ op: 'insert', type: 'user',
    record: { email: `u${i}@x`, name: `n${i}`, plan: 'free' } })));
  let x = 12345;
  const idx = new Uint32Array(WARM + MAXN);
  for (let i = 0; i < idx.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    idx[i] = x % RECORDS;
  }
  const keys = Array.from(idx, (i) => `u${i}@x`);
  const ids = Array.from(idx, (i) => i + 1);
  let bad = 0;
  const run = (from, to) => {
    if (mode === 'find') {
      for (let i = from; i < to; i++) {
        if (db.find('user', 'email', [keys[i]]).email !== keys[i]) bad++;
      }
    } else if (mode === 'get') {
      for (let i = from; i < to; i++) if (db.get('user', ids[i]).id !== ids[i]) bad++;
    }
    else if (mode === 'native') {
      const native = require(path.join(path.resolve(process.argv[2]), 'build', 'Release',
        'uniqdb.node'));
      const h = db._rh();
      for (let i = from; i < to; i++) {
        if (typeof native.find(h, 'user', 'email', [keys[i]]) !== 'number') bad++;
      }
    } else if (mode === 'decode') {
      const bytes = uniqdb.encode(db.find('user', 'email', [keys[0]]));
      for (let i = from; i < to; i++) if (uniqdb.decodeJs(bytes).email !== keys[0]) bad++;
    }
    else for (let i = from; i < to; i += 1000) {
      const part = keys.slice(i, Math.min(to, i + 1000));
      const got = db.readSync((r) => part.map((e) => r.find('user', 'email', [e])));
      for (let j = 0; j < part.length; j++) if (got[j].email !== part[j]) bad++;
    }
  };
  run(0, WARM);
  const t0 = process.hrtime.bigint();
  run(WARM, WARM + N);
  const ns = Number(process.hrtime.bigint() - t0);
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
  if (bad) throw new Error(`${bad} wrong`);
  console.log(`${mode} ${N}: ${(ns / Math.max(N, 1) / 1000).toFixed(3)} us/lookup`);
})();
