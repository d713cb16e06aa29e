'use strict';
// One racing process (see race.js): child.js DIR SCENARIO PROC CONC ROUNDS [control]
const uniqdb = require('../..');
const { scenarios: schema } = require('./common');
const plans = require('./scenarios');

const [dir, scenario, proc, conc, rounds, control] = process.argv.slice(2);
const ctx = { proc: Number(proc), conc: Number(conc), rounds: Number(rounds),
  control: control === 'control' };
const db = uniqdb.open(dir, { schema });
const plan = plans[scenario];

process.on('message', async (m) => {
  if (m.phase === 'end') {
    db.close();
    process.disconnect();
    return;
  }
  try {
    const results = await plan[m.phase](db, ctx, m.extra);
    process.send({ phase: m.phase, results });
  } catch (e) {
    process.send({ phase: m.phase, error: String(e && e.stack) });
  }
});
process.send({ phase: 'ready' });
