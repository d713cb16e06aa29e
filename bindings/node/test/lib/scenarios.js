'use strict';
// The five scenarios (tools/scenarios.json's types), as phases run by every
// racing child at once (race.js).  Each phase returns the outcome of every
// write: {r, who, ok, value | error}.  scenarios.test.js checks them with the
// C race suite's verdicts (tests/race/race_s*.c).
//
// ctx.control runs each scenario's negative control, the C suite's: the
// property broken through the binding, which the verification must catch --
// S1 plain insert instead of insertOrGet; S2 upsert, which overwrites the
// client it should return; S3 insertOrGet, which returns the duplicate
// instead of a conflict; S4 upsert on active_slot, which takes over a booked
// slot; S5 the number taken in a unit of its own, apart from the insert.
const { outcome } = require('./common');

function each(ctx, rounds, fn) {
  const out = [];
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < ctx.conc; j++) {
      const who = `p${ctx.proc}c${j}`;
      out.push(outcome(fn(r, j, who), { r, who, proc: ctx.proc }));
    }
  }
  return Promise.all(out);
}

const S4_AUTO_ROUNDS = 4;

function book(db, ctx, rec) {
  return ctx.control ? db.upsert('booking', rec, { index: 'active_slot' }).then((x) => x.record)
    : db.insert('booking', rec);
}
const S4_SLOTS = ['09:00', '10:00', '11:00', '12:00'];

module.exports = {
  // S1: get-or-create on (scheduleId, doctorName)
  s1: [
    (db, ctx) => each(ctx, ctx.rounds, (r, j, who) => {
      const rec = { scheduleId: `sched-${r}`, doctorName: `Dr. ${r % 7}`, state: who };
      return ctx.control ? db.insert('schedule_workflow', rec)
        : db.insertOrGet('schedule_workflow', rec, { index: 'schedule_doctor' });
    }),
  ],
  // S2: caller-chosen id; the existing record only for a conflict on that key
  s2: [
    (db, ctx) => each(ctx, ctx.rounds, (r, j, who) =>
      (ctx.control ? db.upsert : db.insertOrGet).call(db, 'client',
        { id: `client-${r}`, email: `c${r}@example.com`, name: who })),
    (db, ctx) => each(ctx, ctx.rounds, (r, j, who) => db.insertOrGet('client',
      { id: `client-${r}-${who}`, email: `c${r}@example.com`, name: who })),
    (db, ctx) => each(ctx, ctx.rounds, (r, j, who) => db.insertOrGet('client',
      { id: `client-${r}-${who}-by-email`, email: `c${r}@example.com`, name: who },
      { index: 'email' })),
  ],
  // S3: a duplicate is a ConflictError with the detail of a 409; a bad enum a RecordError
  s3: [
    (db, ctx) => each(ctx, ctx.rounds, (r) => {
      const rec = { workflow_name: `wf-${r}`, version: 1, execution_engine: 'temporal' };
      return ctx.control ? db.insertOrGet('workflow', rec, { index: 'name_version' })
          .then((x) => x.record)
        : db.insert('workflow', rec);
    }),
    (db, ctx) => each(ctx, 1, (r, j, who) => db.insert('workflow',
      { workflow_name: `bad-${who}`, version: 1, execution_engine: 'cron' })),
  ],
  // S4: one active booking per slot; cancelling frees it; first free candidate
  s4: [
    (db, ctx) => each(ctx, ctx.rounds, (r, j, who) => book(db, ctx,
      { psychologist: `psy-${r}`, date: '2025-10-01', time: '10:00', status: 'pending',
        user: who })),
    // phase 1: the winner of phase 0 cancels its booking
    (db, ctx, winners) => Promise.all(winners.filter((w) => w.proc === ctx.proc).map((w) =>
      outcome(db.update('booking', w.id, { status: 'cancelled' }, { merge: true }),
        { r: w.r, who: w.who, proc: ctx.proc }))),
    (db, ctx) => each(ctx, ctx.rounds, (r, j, who) => book(db, ctx,
      { psychologist: `psy-${r}`, date: '2025-10-01', time: '10:00', status: 'confirmed',
        user: who })),
    // phase 3: the first winner tries to re-activate its cancelled booking
    (db, ctx, winners) => Promise.all(winners.filter((w) => w.proc === ctx.proc).map((w) =>
      outcome(db.update('booking', w.id, { status: 'pending' }, { merge: true }),
        { r: w.r, who: w.who, proc: ctx.proc }))),
    (db, ctx) => each(ctx, S4_AUTO_ROUNDS, (r, j, who) => db.insertFirst('booking',
      S4_SLOTS.map((time) => ({ psychologist: `auto-${r}`, date: '2025-10-02', time,
        status: 'confirmed', user: who })))),
  ],
  // S5: gapless case numbers; some units roll back after taking a number
  s5: [
    async (db, ctx) => {
      const seq = 'case:20250929';
      const pending = [];
      const sync = [];
      for (let r = 0; r < ctx.rounds; r++) {
        for (let j = 0; j < ctx.conc; j++) {
          const who = `p${ctx.proc}c${j}r${r}`;
          const abandon = (r + j) % 5 === 1;
          if (j % 2 === 1) {
            sync.push({ r, who, abandon });
            continue;
          }
          // exec form: the number is the case's key; an abandoned unit fails at op 2
          const ops = [
            { op: 'seqNext', name: seq },
            { op: 'insert', type: 'case', record: { case_number: `CASE-20250929-${who}`,
              caller: who }, seqField: 'id', seqOp: 0 },
          ];
          if (abandon) ops.push({ op: 'delete', type: 'case', key: 999999999 });
          const unit = ctx.control
            ? db.seqNext(seq).then((n) => db.exec([{ ...ops[1], record: { ...ops[1].record,
              id: n }, seqField: undefined, seqOp: undefined }, ...ops.slice(2)]))
              .then((res) => [null, ...res], (e) => {
                e.opIndex += 1; // as the op of the one unit it stands for
                throw e;
              })
            : db.exec(ops);
          pending.push(outcome(unit.then((res) => res[1].record),
            { r, who, abandon, form: 'exec', proc: ctx.proc }));
        }
      }
      // transactionSync form, while the exec units are in flight in the engine
      const done = [];
      for (const { r, who, abandon } of sync) {
        const meta = { r, who, abandon, form: 'tx', proc: ctx.proc };
        try {
          const rec = db.transactionSync((tx) => {
            const n = tx.seqNext(seq);
            const rec = tx.insert('case', { id: n,
              case_number: `CASE-20250929-${String(n).padStart(6, '0')}`, caller: who });
            if (abandon) throw new Error('abandoned on purpose');
            return rec;
          });
          done.push({ ...meta, ok: true, value: rec });
        } catch (e) {
          done.push({ ...meta, ok: false, error: { message: e.message, code: e.code } });
        }
      }
      return done.concat(await Promise.all(pending));
    },
  ],
  S4_AUTO_ROUNDS,
  S4_SLOTS,
};
