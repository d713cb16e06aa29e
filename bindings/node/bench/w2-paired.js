'use strict';
// Two builds of the binding in one process, W2's find on tools/bench's records (bench.js's
// generator) in alternating slices, CPU time per lookup: a before/after that a loaded machine
// still measures (README.md, "Benchmark").
//   node w2-paired.js BEFORE_ADDONDIR AFTER_ADDONDIR [SLICES]   (ADDONDIR: a bindings/node)
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');

const src = fs.readFileSync(path.join(__dirname, 'bench.js'), 'utf8');
const gen = src.slice(src.indexOf('const M64 ='), src.indexOf('const BOOKING_FIELDS'));
const m = {};
// eslint-disable-next-line no-new-func
new Function('m', `${gen}; m.booking = booking; m.lookupOf = lookupOf; ` +
  'm.schema = bookingSchema;')(m);
const [before, after] = process.argv.slice(2, 4).map((d) => require(path.resolve(d)));
const SLICES = Number(process.argv[4] || 10);
const RECORDS = 20000;
const LOOKUPS = 200000;

(async () => {
  const recs = Array.from({ length: RECORDS }, (_, i) => m.booking(i, RECORDS / 8));
  const keys = Array.from({ length: LOOKUPS }, (_, i) => recs[m.lookupOf(i, RECORDS)].ref);
  const dirs = [];
  const dbs = [];
  for (const u of [before, after]) {
    dirs.push(fs.mkdtempSync(path.join(os.tmpdir(), 'w2-paired-')));
    dbs.push(u.open(dirs[dirs.length - 1], { schema: m.schema }));
    await dbs[dbs.length - 1].exec(recs.map((record) => ({ op: 'insert', type: 'booking',
      record })));
  }
  const ns = [[], []];
  for (let r = 0; r < SLICES; r++) {
    for (const which of r % 2 ? [1, 0] : [0, 1]) {
      const db = dbs[which];
      const c0 = process.cpuUsage();
      for (let i = 0; i < LOOKUPS; i++) {
        if (db.find('booking', 'ref', [keys[i]]).ref !== keys[i]) throw new Error('wrong record');
      }
      const c = process.cpuUsage(c0);
      ns[which].push(((c.user + c.system) * 1000) / LOOKUPS);
    }
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
  const ratios = ns[0].map((b, i) => b / ns[1][i]);
  console.log(`before ${med(ns[0]).toFixed(0)} ns, after ${med(ns[1]).toFixed(0)} ns of CPU per ` +
    `find (medians of ${SLICES} slices of ${LOOKUPS}); before/after per pair: median ` +
    `${med(ratios).toFixed(2)}x, ${Math.min(...ratios).toFixed(2)}-` +
    `${Math.max(...ratios).toFixed(2)}x`);
  for (const db of dbs) db.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
})();
