// Compiled with tsc --noEmit against ../../index.d.ts (types.test.js): every
// call and error type used as an application would.
import {
  open, Database, Transaction, ConflictError, RecordError, UdbError, Float32, RawString,
  Record, Created, Chosen, OpResult, Problem, encode, decode, openEnvironments, libraryVersion,
} from '../..';

interface Booking extends Record {
  id: number;
  psychologist: string;
  status: string;
}

async function main(dir: string): Promise<void> {
  const db: Database = open(dir, { schema: { types: {} }, keep: true, noSync: false });
  const again = open(new URL(`file://${dir}`), { readOnly: true, growWaitMs: 100, lockWaitMs: 50 });
  again.close();
  const b: Booking | undefined = db.get<Booking>('booking', 1);
  const f = db.find('booking', 'active_slot', ['p', '2025-10-01', '10:00']);
  const opts = { index: 'by_user', prefix: ['ann'], limit: 3 };
  for (const r of db.scan<Booking>('booking', opts)) {
    const s: string = r.status;
    void s;
  }
  db.scan('booking').close();
  const n: number | bigint | undefined = db.seqGet('case');
  const ins: Booking = await db.insert<Booking>('booking',
    { psychologist: 'p', when: new Float32(1) });
  const got: Created = await db.insertOrGet('client', { id: 'a', email: 'a@x' },
    { index: 'email' });
  const up: Created<Booking> = await db.upsert<Booking>('booking', { id: 1 },
    { index: 'active_slot', onInsert: { status: 'pending' } });
  const first: Chosen = await db.insertFirst('booking', [{ time: '09:00' }, { time: '10:00' }]);
  const upd: Record = await db.update('booking', 1, { status: 'cancelled' }, { merge: true });
  await db.delete('client', 'a');
  const next: number | bigint = await db.seqNext('case');
  const res: OpResult[] = await db.exec([
    { op: 'seqNext', name: 'case' },
    { op: 'insert', type: 'case',
      record: { case_number: 'x', raw: new RawString(Buffer.from([255])) },
      seqField: 'id', seqOp: 0 },
    { op: 'update', type: 'case', key: 1n, patch: { caller: null }, merge: true },
    { op: 'delete', type: 'case', key: 'k' },
    { op: 'insertFirst', type: 'booking', candidates: [{}] },
    { op: 'upsert', type: 'client', record: {}, onInsert: {} },
    { op: 'insertOrGet', type: 'client', record: { bytes: new Uint8Array(2) } },
  ]);
  const value = res[0].value;
  const total: number = db.transactionSync((tx: Transaction) => {
    const c = tx.insert('case', { case_number: String(tx.seqNext('case')) });
    tx.insertOrGet('case', c, { index: 'case_number' });
    tx.upsert('case', c, { onInsert: {} });
    tx.insertFirst('case', [c]);
    tx.update('case', 1, {}, { merge: false });
    tx.delete('case', 2);
    return [...tx.scan('case')].length + (tx.get('case', 1) ? 1 : 0) +
      (tx.find('case', 'case_number', 'x') ? 1 : 0) + Number(tx.seqGet('case') ?? 0);
  });
  try {
    await db.insert('workflow', {});
  } catch (e) {
    if (e instanceof ConflictError) {
      const p: Problem = e.toProblem({ instance: '/x' });
      const status: 409 = e.status;
      const idx: string = e.index;
      const fields: string[] = e.fields;
      void [p, status, idx, fields, e.values, e.existingKey, e.conflicts[0].index, e.type];
    } else if (e instanceof RecordError) {
      const field: string | undefined = e.field;
      const status: 422 = e.status;
      void [field, status, e.toProblem()];
    } else if (e instanceof UdbError) {
      const code: string = e.code;
      void [code, e.errno, e.detail, e.opIndex];
    }
  }
  const both: [Booking | undefined, number] = db.readSync((r) =>
    [r.get<Booking>('booking', 1), [...r.scan('booking')].length]);
  // @ts-expect-error: a read snapshot has no writes
  db.readSync((r) => r.insert('case', {}));
  const problems: string[] = db.check();
  const schema = db.schema();
  const bytes: Buffer = encode({ a: 1n });
  const back = decode(bytes);
  const count: number = openEnvironments();
  const v: string = libraryVersion;
  const closed: boolean = db.closed;
  // what the types must refuse (tsc fails on an unused @ts-expect-error)
  // @ts-expect-error: the type name comes first
  db.get(1, 'booking');
  // @ts-expect-error: writes return promises, not records
  const notYet: Record = db.insert('case', {});
  // @ts-expect-error: a symbol is not a storable value
  db.insert('case', { s: Symbol('x') });
  // @ts-expect-error: unknown op
  db.exec([{ op: 'truncate', type: 'case' }]);
  // @ts-expect-error: open takes no such option
  open(dir, { schemaa: {} });
  // @ts-expect-error: existingKey exists on ConflictError only
  void new UdbError().existingKey;
  db.close();
  void [notYet, b, f, n, ins, got, up, first, upd, next, value, total, problems, schema, back,
    count, v, both,
    closed, db.path, db.schemaChanges];
}

void main;
