'use strict';
// The five scenarios raced by PROCS child processes x CONC promises each (all
// of a phase's writes in flight at once), with the verdicts of the C race
// suite (tests/race/race_s*.c).  UNIQDB_NODE_ROUNDS scales the rounds up.
const test = require('node:test');
const assert = require('node:assert/strict');
const uniqdb = require('..');
const { scenarios: schema, tmpdir } = require('./lib/common');
const { startRace } = require('./lib/race');
const { S4_AUTO_ROUNDS, S4_SLOTS } = require('./lib/scenarios');

const PROCS = 4;
const CONC = 8;
const ROUNDS = Number(process.env.UNIQDB_NODE_ROUNDS || 8);
const scenario = {};

function byRound(results) {
  const m = new Map();
  for (const x of results) {
    if (!m.has(x.r)) m.set(x.r, []);
    m.get(x.r).push(x);
  }
  return m;
}

function count(db, type) {
  let n = 0;
  for (const _ of db.scan(type)) n++;
  return n;
}

// ctx: {t, control, rounds}; control runs the scenario's negative control
// (lib/scenarios.js), which the verification must catch.
async function race(ctx, scenario) {
  const dir = tmpdir(ctx.t);
  uniqdb.open(dir, { schema }).close();
  const r = await startRace({ dir, scenario, procs: PROCS, conc: CONC, rounds: ctx.rounds,
    control: ctx.control });
  ctx.t.after(() => r.kill());
  return { dir, r, ROUNDS: ctx.rounds };
}

function checkDb(dir) {
  const db = uniqdb.open(dir);
  assert.deepEqual(db.check(), [], 'udb_check: every index entry matches a record');
  return db;
}

scenario.s1 = {
  title: 'S1: get-or-create: exactly one created per key, every caller holds that record',
  async run(ctx) {
    const { dir, r, ROUNDS } = await race(ctx, 's1');
    const res = await r.phase(0);
    await r.end();
    assert.equal(res.length, PROCS * CONC * ROUNDS);
    for (const [round, xs] of byRound(res)) {
      assert.ok(xs.every((x) => x.ok), `round ${round}: a caller got an error`);
      const creators = xs.filter((x) => x.value.created);
      assert.equal(creators.length, 1, `round ${round}: exactly one creator`);
      const rec = creators[0].value.record;
      assert.equal(rec.state, creators[0].who, 'the creator\'s record, not overwritten');
      for (const x of xs) assert.deepEqual(x.value.record, rec, `round ${round}: same record`);
    }
    const db = checkDb(dir);
    assert.equal(count(db, 'schedule_workflow'), ROUNDS);
    db.close();
  },
};

scenario.s2 = {
  title: 'S2: the existing record only for a conflict on the chosen key',
  async run(ctx) {
    const { dir, r, ROUNDS } = await race(ctx, 's2');
    const p0 = await r.phase(0);
    const p1 = await r.phase(1);
    const p2 = await r.phase(2);
    await r.end();
    const holder = new Map();
    for (const [round, xs] of byRound(p0)) {
      assert.ok(xs.every((x) => x.ok));
      assert.equal(xs.filter((x) => x.value.created).length, 1, `round ${round}: one creator`);
      const rec = xs.find((x) => x.value.created).value.record;
      for (const x of xs) assert.deepEqual(x.value.record, rec, 'every caller holds the record');
      holder.set(round, rec);
    }
    for (const x of p1) {
      assert.equal(x.ok, false, 'a new id with a taken email is never a record');
      assert.equal(x.error.name, 'ConflictError');
      assert.equal(x.error.index, 'email');
      assert.deepEqual(x.error.values, [`c${x.r}@example.com`]);
      assert.equal(x.error.existingKey, `client-${x.r}`);
    }
    for (const x of p2) {
      assert.ok(x.ok);
      assert.equal(x.value.created, false);
      assert.deepEqual(x.value.record, holder.get(x.r));
    }
    const db = checkDb(dir);
    assert.equal(count(db, 'client'), ROUNDS);
    db.close();
  },
};

scenario.s3 = {
  title: 'S3: one insert wins, every other gets a 409 naming index, values and holder',
  async run(ctx) {
    const { dir, r, ROUNDS } = await race(ctx, 's3');
    const p0 = await r.phase(0);
    const p1 = await r.phase(1);
    await r.end();
    for (const [round, xs] of byRound(p0)) {
      const wins = xs.filter((x) => x.ok);
      assert.equal(wins.length, 1, `round ${round}: exactly one insert succeeds`);
      const id = wins[0].value.id;
      for (const x of xs.filter((y) => !y.ok)) {
        assert.equal(x.error.name, 'ConflictError');
        assert.equal(x.error.code, 'UDB_ECONFLICT');
        assert.equal(x.error.type, 'workflow');
        assert.equal(x.error.index, 'name_version');
        assert.deepEqual(x.error.fields, ['workflow_name', 'version']);
        assert.deepEqual(x.error.values, [`wf-${round}`, 1]);
        assert.equal(x.error.existingKey, id);
        assert.equal(x.error.problem.status, 409);
        assert.equal(x.error.problem.existingKey, id);
        assert.match(x.error.problem.detail, /name_version/);
      }
    }
    for (const x of p1) {
      assert.equal(x.ok, false);
      assert.equal(x.error.name, 'RecordError');
      assert.equal(x.error.status, 422);
      assert.equal(x.error.field, 'execution_engine');
      assert.match(x.error.message, /temporal, airflow, argo/);
    }
    const db = checkDb(dir);
    assert.equal(count(db, 'workflow'), ROUNDS);
    db.close();
  },
};

scenario.s4 = {
  title: 'S4: one active booking per slot; cancelling frees it; first free candidate',
  async run(ctx) {
    const { dir, r, ROUNDS } = await race(ctx, 's4');
    const winnersOf = (res) => [...byRound(res)].map(([round, xs]) => {
      const wins = xs.filter((x) => x.ok);
      assert.equal(wins.length, 1, `round ${round}: exactly one booking of the slot`);
      for (const x of xs.filter((y) => !y.ok)) {
        assert.equal(x.error.name, 'ConflictError');
        assert.equal(x.error.index, 'active_slot');
        assert.equal(x.error.existingKey, wins[0].value.id);
      }
      return { r: round, id: wins[0].value.id, who: wins[0].who, proc: wins[0].proc };
    });
    const a = winnersOf(await r.phase(0));
    const cancels = await r.phase(1, a);
    assert.equal(cancels.length, ROUNDS);
    assert.ok(cancels.every((x) => x.ok && x.value.status === 'cancelled'));
    const c = winnersOf(await r.phase(2));
    const react = await r.phase(3, a);
    assert.equal(react.length, ROUNDS);
    for (const x of react) {
      assert.equal(x.ok, false, 're-activating a cancelled booking whose slot was taken');
      assert.equal(x.error.index, 'active_slot');
      assert.equal(x.error.existingKey, c[x.r].id);
    }
    const auto = await r.phase(4);
    await r.end();
    for (const [round, xs] of byRound(auto)) {
      const wins = xs.filter((x) => x.ok);
      assert.equal(wins.length, S4_SLOTS.length, `auto round ${round}: one winner per slot`);
      assert.deepEqual(wins.map((x) => x.value.chosen).sort(), [0, 1, 2, 3]);
      for (const w of wins) assert.equal(w.value.record.time, S4_SLOTS[w.value.chosen]);
      for (const x of xs.filter((y) => !y.ok)) assert.equal(x.error.name, 'ConflictError');
    }
    const db = checkDb(dir);
    assert.equal(count(db, 'booking'), 2 * ROUNDS + S4_AUTO_ROUNDS * S4_SLOTS.length);
    // the partial index holds exactly the active bookings: one per slot
    assert.equal([...db.scan('booking', { index: 'active_slot' })].length,
      ROUNDS + S4_AUTO_ROUNDS * S4_SLOTS.length);
    db.close();
  },
};

scenario.s5 = {
  title: 'S5: gapless case numbers; rolled-back units give theirs back',
  async run(ctx) {
    const { dir, r, ROUNDS } = await race(ctx, 's5');
    const res = await r.phase(0);
    await r.end();
    const committed = [];
    for (const x of res) {
      if (x.abandon) {
        assert.equal(x.ok, false, 'an abandoned unit fails');
        if (x.form === 'exec') {
          assert.equal(x.error.code, 'UDB_ENOTFOUND');
          assert.equal(x.error.opIndex, 2, 'the unit failed at its last op');
        }
        continue;
      }
      assert.ok(x.ok, `${x.who}: ${x.ok ? '' : x.error.message}`);
      assert.equal(x.value.caller, x.who);
      if (x.form === 'tx') {
        assert.equal(x.value.case_number, `CASE-20250929-${String(x.value.id).padStart(6, '0')}`);
      }
      committed.push(x.value.id);
    }
    committed.sort((p, q) => p - q);
    assert.deepEqual(committed, committed.map((_, i) => i + 1), 'numbers 1..N, no gap, no repeat');
    const db = checkDb(dir);
    assert.equal(db.seqGet('case:20250929'), committed.length);
    const stored = [...db.scan('case')].map((c) => c.id);
    assert.deepEqual(stored, committed);
    db.close();
  },
};

// The property each control breaks, as the verification's message says it.
const caught = {
  s1: /a caller got an error/,
  s2: /every caller holds the record/,
  s3: /exactly one insert succeeds/,
  s4: /exactly one booking of the slot/,
  s5: /no gap/,
};

for (const [key, sc] of Object.entries(scenario)) {
  test(sc.title, (t) => sc.run({ t, control: false, rounds: ROUNDS }));
}
for (const [key, sc] of Object.entries(scenario)) {
  test(`negative control: ${key} with the property broken fails its verification`,
    (t) => assert.rejects(sc.run({ t, control: true, rounds: 3 }),
      (e) => e instanceof assert.AssertionError && caught[key].test(e.message)));
}
