'use strict';
// uniqdb for Node.js: the JS half of the binding (src/addon.c is the other).
// Conversions, the environment table, reads and the udb_exec_async writes are in
// C; this file shapes arguments and results and defines the error classes.

const path = require('node:path');
const { fileURLToPath } = require('node:url');
const decoder = require('./decode');

const native = require(process.env.UNIQDB_NODE_ADDON ||
  path.join(__dirname, 'build', 'Release', 'uniqdb.node'));

// udb_op kinds (include/uniqdb.h, UDB_OP_*)
const OP = { insert: 1, insertOrGet: 2, upsert: 3, update: 4, delete: 5, insertFirst: 6,
  seqNext: 7 };
// udb_options.flags and udb_schema_apply flags
const F = { noSync: 0x1, noMetaSync: 0x2, noGroup: 0x4, readOnly: 0x8, noLock: 0x10,
  noShip: 0x20 };
const SCHEMA_KEEP = 0x1;
const SCHEMA_DROP = 0x2;

/** A number stored as a msgpack float32 (read back as a plain number). */
class Float32 {
  constructor(value) {
    if (typeof value !== 'number') throw new TypeError('uniqdb: Float32 takes a number');
    this.value = value;
  }
}

/** A msgpack string whose bytes are not UTF-8 (read from `any` fields; written back as is). */
class RawString {
  constructor(bytes) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('uniqdb: RawString takes bytes');
    this.bytes = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  }
  toString() {
    return this.bytes.toString('utf8');
  }
}

// Values of conflict detail as JSON can carry them: bigint as a decimal
// string, bytes as base64, RawString as its bytes in base64.
function jsonSafe(v) {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof RawString) return v.bytes.toString('base64');
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), jsonSafe(x)]));
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = jsonSafe(v[k]);
    return o;
  }
  return v;
}

/** Every error the engine returns: `code` is the UDB_E* name, `message` the engine's. */
class UdbError extends Error {
  constructor(desc) {
    super(desc.message);
    this.name = 'UdbError';
    this.code = desc.code;
    this.errno = desc.rc;
    this.detail = desc.detail;
    if (desc.opIndex !== undefined) this.opIndex = desc.opIndex;
  }
}

/** A unique index (or the primary key) already holds the key: HTTP 409. */
class ConflictError extends UdbError {
  constructor(desc) {
    super(desc);
    this.name = 'ConflictError';
    const c = desc.conflict || { type: undefined, conflicts: [] };
    const first = c.conflicts[0] || {};
    this.status = 409;
    this.type = c.type;
    this.index = first.index;
    this.fields = first.fields;
    this.values = first.values;
    this.existingKey = first.existingKey;
    this.conflicts = c.conflicts;
  }

  /** An RFC 9457 problem details object (JSON-safe: bigints as strings, bytes as base64). */
  toProblem(extra = {}) {
    const pairs = (this.fields || []).map((f, i) =>
      `${f} ${JSON.stringify(jsonSafe(this.values ? this.values[i] : null))}`).join(', ');
    return {
      type: 'urn:uniqdb:problem:conflict',
      title: 'Conflict',
      status: 409,
      detail: `a ${this.type} with ${pairs} already exists (unique index ${this.index}, ` +
        `held by key ${JSON.stringify(jsonSafe(this.existingKey))})`,
      recordType: this.type,
      index: this.index,
      fields: this.fields,
      values: jsonSafe(this.values),
      existingKey: jsonSafe(this.existingKey),
      conflicts: jsonSafe(this.conflicts),
      ...extra,
    };
  }
}

/** A record (or key, or value list) does not match the schema: HTTP 422. */
class RecordError extends UdbError {
  constructor(desc) {
    super(desc);
    this.name = 'RecordError';
    this.status = 422;
    const d = desc.detail || '';
    const t = /type "([^"]*)"/.exec(d);
    const f = /field "([^"]*)"/.exec(d);
    this.type = t ? t[1] : undefined;
    this.field = f ? f[1] : undefined;
  }

  /** An RFC 9457 problem details object, status 422. */
  toProblem(extra = {}) {
    return {
      type: 'urn:uniqdb:problem:bad-record',
      title: 'Unprocessable record',
      status: 422,
      detail: this.detail || this.message,
      recordType: this.type,
      field: this.field,
      ...extra,
    };
  }
}

function closedError() {
  const e = new Error('uniqdb: the database is closed (db.close() was called); open it again');
  e.code = 'UDB_ECLOSED';
  return e;
}

function makeError(desc) {
  if (desc.code === 'UDB_ECONFLICT') return new ConflictError(desc);
  if (desc.code === 'UDB_EBADRECORD') return new RecordError(desc);
  return new UdbError(desc);
}

// Records read by get and find: the addon copies each one's msgpack into RBUF (allocated here:
// JS memory) and returns its length, and decode.js builds the object (a record larger than RBUF
// comes decoded by the addon).
const RBUF = Buffer.allocUnsafeSlow(64 * 1024);
const RVIEW = new DataView(RBUF.buffer, RBUF.byteOffset, RBUF.byteLength);
// SHAPES[t]: the record shapes of the type interned as t (decode.js, decodeRecord)
const SHAPES = [];
const record = (t, r) => {
  if (typeof r !== 'number') return r;
  if (t < 0) return decoder.decodeFrom(RBUF, RVIEW, r);
  return decoder.decodeRecord(RBUF, RVIEW, r, SHAPES[t] || (SHAPES[t] = []));
};

decoder.init(RawString);
native.init(makeError, Float32, RawString, RBUF);

const OPEN_OPTIONS = new Set(['schema', 'keep', 'drop', 'readOnly', 'noSync', 'noMetaSync',
  'noGroup', 'noShip', 'noLock', 'mapSize', 'maxMapSize', 'maxDbs', 'mode', 'growWaitMs',
  'lockWaitMs']);

// A PostgreSQL URL (postgresql:// or postgres://, plus schema=NAME) goes to
// udb_open() as it is: the database is on the server.
const PG_SCHEMES = ['postgresql:', 'postgres:'];

function toPath(pathOrUrl) {
  if (pathOrUrl instanceof URL) {
    return PG_SCHEMES.includes(pathOrUrl.protocol) ? pathOrUrl.href : fileURLToPath(pathOrUrl);
  }
  if (typeof pathOrUrl === 'string' && pathOrUrl.startsWith('file:')) {
    return fileURLToPath(pathOrUrl);
  }
  if (typeof pathOrUrl !== 'string') {
    throw new TypeError('uniqdb: open() takes a directory path, a file: URL or a ' +
      'postgresql:// URL');
  }
  return pathOrUrl;
}

// A sync failure of a write (a bad argument, a closed database) as a rejection.
function promised(fn) {
  try {
    return fn();
  } catch (e) {
    return Promise.reject(e);
  }
}

function opOf(o, where) {
  if (!o || typeof o !== 'object') throw new TypeError(`uniqdb: ${where} must be an object`);
  const kind = OP[o.op];
  if (!kind) {
    throw new TypeError(`uniqdb: ${where}.op must be one of ${Object.keys(OP).join(', ')}`);
  }
  return {
    kind,
    type: o.type,
    index: o.index,
    record: kind === OP.update ? o.patch : o.record,
    key: o.key,
    onInsert: o.onInsert,
    candidates: o.candidates,
    merge: !!o.merge,
    seq: o.name ?? o.seq,
    seqField: o.seqField,
    seqOp: o.seqOp,
  };
}

class Scan {
  constructor(cursor, limit, keys) {
    this._cursor = cursor;
    this._buf = [];
    this._left = limit;
    this._keys = !!keys;
    this._lastKey = undefined;
  }
  [Symbol.iterator]() {
    return this;
  }
  next() {
    if (this._left !== undefined && this._left <= 0) return this.return();
    if (this._buf.length === 0 && this._cursor) {
      const n = this._left !== undefined ? Math.min(this._left, 256) : 256;
      this._buf = native.scanNext(this._cursor, n, this._keys);
      this._buf.reverse();
      if (this._buf.length === 0) this._cursor = null;
    }
    if (this._buf.length === 0) return { done: true, value: undefined };
    if (this._left !== undefined) this._left--;
    const value = this._buf.pop();
    if (this._keys) this._lastKey = this._buf.pop(); // [record, key, ...], reversed
    return { done: false, value };
  }
  return(value) {
    if (this._cursor) native.scanClose(this._cursor);
    this._cursor = null;
    this._buf = [];
    return { done: true, value };
  }
  /** Stop early and release the read snapshot (for-of does this on break). */
  close() {
    this.return();
  }
  toArray() {
    return [...this];
  }
  /**
   * The sort key of the last record the iterator gave (the index's values, then the
   * primary key): the next page is scan(type, {...same options, after: lastKey}).
   * Needs the option keys: true; undefined before the first record.
   */
  get lastKey() {
    if (!this._keys) throw usageError('uniqdb: lastKey needs the scan option keys: true');
    return this._lastKey;
  }
}

const LO_EXCL = 0x1;
const HI_EXCL = 0x2;
const REVERSE = 0x4;

function usageError(message) {
  const e = new TypeError(message);
  e.code = 'UDB_EINVAL';
  return e;
}

// A bound given bare is a list of one value, as find's values (null: [null], a bound).
const list = (v) => (v === undefined || Array.isArray(v) ? v : [v]);

function scanArgs(h, type, opts = {}) {
  const { gte, gt, lte, lt } = opts;
  if (gte !== undefined && gt !== undefined) {
    throw usageError('uniqdb: scan: one lower bound, gte or gt');
  }
  if (lte !== undefined && lt !== undefined) {
    throw usageError('uniqdb: scan: one upper bound, lte or lt');
  }
  let lo = list(gt !== undefined ? gt : gte);
  let hi = list(lt !== undefined ? lt : lte);
  let prefix = opts.prefix;
  if (prefix !== undefined && prefix !== null) {
    if (lo !== undefined || hi !== undefined) {
      throw usageError('uniqdb: scan: give a prefix or bounds, not both (a prefix P is ' +
        'gte: P, lte: P)');
    }
    if (opts.reverse || opts.after !== undefined) {
      lo = hi = prefix; // the prefix as a range, which can go in reverse and resume
      prefix = undefined;
    }
  }
  const flags = (gt !== undefined ? LO_EXCL : 0) | (lt !== undefined ? HI_EXCL : 0) |
    (opts.reverse ? REVERSE : 0);
  const cur = native.scanOpen(h, type, opts.index, prefix, lo, hi, flags, opts.after);
  return new Scan(cur, opts.limit, opts.keys);
}

// The read calls shared by Database and Transaction (h: the native handle).
// Type and index names interned in the addon (getk, findk), at most MAX_NAMES of them: a
// name's id, or -1 (the call then goes the way that converts the name each time).
const NAMES = new Map();
const MAX_NAMES = 4096;
function nameId(s) {
  const id = NAMES.get(s);
  if (id !== undefined) return id;
  if (typeof s !== 'string' || s.includes('\0') || NAMES.size >= MAX_NAMES) return -1;
  const made = native.intern(s);
  NAMES.set(s, made);
  return made;
}

// _rh(): the handle to read with (a Database's keeps its read snapshot for the turn).  A key
// decode.js can encode goes to the addon in RBUF (getk, findk); any other, to the addon's
// encoder, which also names what is wrong with it.
const reads = {
  get(type, key) {
    const h = this._rh();
    const t = nameId(type);
    const k = t >= 0 ? decoder.encodeKey(RBUF, key) : -1;
    return record(t, k > 0 ? native.getk(h, t, k) : native.get(h, type, key));
  },
  find(type, index, values) {
    const h = this._rh();
    const t = nameId(type);
    const i = t >= 0 ? nameId(index) : -1;
    const k = i >= 0 ? decoder.encodeValues(RBUF, values) : -1;
    return record(t, k > 0 ? native.findk(h, t, i, k)
      : native.find(h, type, index, Array.isArray(values) ? values : [values]));
  },
  scan(type, opts) {
    return scanArgs(this._handle(), type, opts);
  },
  seqGet(name) {
    return native.seqGet(this._rh(), name);
  },
};

class Transaction {
  constructor(t) {
    this._t = t;
    this.mapFull = false;
  }
  _handle() {
    return this._t;
  }
  _rh() {
    return this._t;
  }
  _op(o) {
    try {
      return native.txOp(this._t, o);
    } catch (e) {
      if (e && e.code === 'UDB_EMAPFULL') this.mapFull = true;
      throw e;
    }
  }
  insert(type, record) {
    return this._op({ kind: OP.insert, type, record }).record;
  }
  insertOrGet(type, record, opts = {}) {
    const r = this._op({ kind: OP.insertOrGet, type, record, index: opts.index });
    return { created: r.created, record: r.record };
  }
  upsert(type, record, opts = {}) {
    const r = this._op({ kind: OP.upsert, type, record, index: opts.index,
      onInsert: opts.onInsert });
    return { created: r.created, record: r.record };
  }
  insertFirst(type, candidates) {
    const r = this._op({ kind: OP.insertFirst, type, candidates });
    return { chosen: r.chosen, record: r.record };
  }
  update(type, key, patch, opts = {}) {
    return this._op({ kind: OP.update, type, key, record: patch, merge: !!opts.merge }).record;
  }
  delete(type, key) {
    this._op({ kind: OP.delete, type, key });
  }
  seqNext(name) {
    return this._op({ kind: OP.seqNext, seq: name }).value;
  }
}
Object.assign(Transaction.prototype, reads);

const MAX_RERUNS = 16;

class Database {
  constructor(handle, dir, changes) {
    this._h = handle;
    this.path = dir;
    this.schemaChanges = changes;
    // get, find and seqGet keep one read snapshot while nothing is committed (the addon asks
    // udb_txn_latest before each read, so each read still sees every write committed before
    // it); it is let go at the end of the event loop's turn
    this._kept = false;
    this._unkeep = () => {
      this._kept = false;
      if (this._h) native.unkeep(this._h);
    };
  }
  _handle() {
    if (!this._h) throw closedError();
    return this._h;
  }
  _rh() {
    const h = this._h;
    if (!h) throw closedError();
    if (!this._kept) {
      this._kept = true;
      setImmediate(this._unkeep);
    }
    return h;
  }
  get closed() {
    return this._h === null;
  }
  close() {
    if (this._h) native.close(this._h);
    this._h = null;
  }
  _write(ops) {
    return native.exec(this._handle(), ops);
  }
  insert(type, record) {
    return promised(() => this._write([{ kind: OP.insert, type, record }])
      .then((r) => r[0].record));
  }
  insertOrGet(type, record, opts = {}) {
    return promised(() => this._write([{ kind: OP.insertOrGet, type, record,
      index: opts.index }]).then(([r]) => ({ created: r.created, record: r.record })));
  }
  upsert(type, record, opts = {}) {
    return promised(() => this._write([{ kind: OP.upsert, type, record, index: opts.index,
      onInsert: opts.onInsert }]).then(([r]) => ({ created: r.created, record: r.record })));
  }
  insertFirst(type, candidates) {
    return promised(() => this._write([{ kind: OP.insertFirst, type, candidates }])
      .then(([r]) => ({ chosen: r.chosen, record: r.record })));
  }
  update(type, key, patch, opts = {}) {
    return promised(() => this._write([{ kind: OP.update, type, key, record: patch,
      merge: !!opts.merge }]).then(([r]) => r.record));
  }
  delete(type, key) {
    return promised(() => this._write([{ kind: OP.delete, type, key }]).then(() => undefined));
  }
  seqNext(name) {
    return promised(() => this._write([{ kind: OP.seqNext, seq: name }])
      .then(([r]) => r.value));
  }
  exec(ops) {
    return promised(() => {
      if (!Array.isArray(ops)) throw new TypeError('uniqdb: exec takes an array of ops');
      return this._write(ops.map((o, i) => opOf(o, `ops[${i}]`)));
    });
  }
  transactionSync(fn) {
    if (typeof fn !== 'function') throw new TypeError('uniqdb: transactionSync takes a function');
    for (let run = 1; ; run++) {
      const tx = new Transaction(native.txBegin(this._handle(), false));
      let result;
      try {
        result = fn(tx);
      } catch (e) {
        native.txEnd(tx._t, false);
        if (tx.mapFull && run < MAX_RERUNS) continue;
        throw e;
      }
      if (result && typeof result.then === 'function') {
        native.txEnd(tx._t, false);
        throw new TypeError('uniqdb: the function given to transactionSync returned a ' +
          'promise; it must do all its work synchronously (nothing was written)');
      }
      if (tx.mapFull && run < MAX_RERUNS) {
        native.txEnd(tx._t, false);
        continue;
      }
      try {
        native.txEnd(tx._t, true);
      } catch (e) {
        if (e && e.code === 'UDB_EMAPFULL' && run < MAX_RERUNS) continue;
        throw e;
      }
      return result;
    }
  }
  readSync(fn) {
    if (typeof fn !== 'function') throw new TypeError('uniqdb: readSync takes a function');
    const tx = new Transaction(native.txBegin(this._handle(), true));
    try {
      return fn(tx);
    } finally {
      native.txEnd(tx._t, false);
    }
  }
  check() {
    return native.check(this._handle());
  }
  // udb_backup: a promise settled once the copy is on disk (it runs on a
  // libuv thread); rejects with the engine's error (ENOTEMPTY, ENOSPC, ...).
  backup(dest, options = {}) {
    for (const k of Object.keys(options)) {
      if (k !== 'compact') {
        throw new TypeError(`uniqdb: unknown backup() option "${k}" (known: compact)`);
      }
    }
    return native.backup(this._handle(), toPath(dest), Boolean(options.compact));
  }
  schema() {
    const s = native.schema(this._handle());
    return s === undefined ? undefined : JSON.parse(s);
  }
}
Object.assign(Database.prototype, reads);
// Reads on a closed database: the native side throws UDB_ECLOSED.

function open(pathOrUrl, options = {}) {
  const dir = toPath(pathOrUrl);
  for (const k of Object.keys(options)) {
    if (!OPEN_OPTIONS.has(k)) {
      throw new TypeError(`uniqdb: unknown open() option "${k}" (known: ` +
        `${[...OPEN_OPTIONS].join(', ')})`);
    }
  }
  if (options.keep && options.drop) {
    throw new TypeError('uniqdb: open() takes keep or drop, not both');
  }
  let flags = 0;
  for (const [k, bit] of Object.entries(F)) if (options[k]) flags |= bit;
  const schema = options.schema === undefined || typeof options.schema === 'string'
    ? options.schema : JSON.stringify(options.schema);
  const [h, changes] = native.open(dir, {
    schema,
    schemaFlags: (options.keep ? SCHEMA_KEEP : 0) | (options.drop ? SCHEMA_DROP : 0),
    flags,
    mapSize: options.mapSize,
    maxMapSize: options.maxMapSize,
    maxDbs: options.maxDbs,
    mode: options.mode,
    growWaitMs: options.growWaitMs,
    lockWaitMs: options.lockWaitMs,
  });
  return new Database(h, dir, changes);
}

module.exports = {
  open,
  Database,
  Transaction,
  UdbError,
  ConflictError,
  RecordError,
  Float32,
  RawString,
  libraryVersion: native.libraryVersion,
  // msgpack as the binding converts it (for tests and tools)
  encode: native.encode,
  decode: native.decode,
  // decode.js, the decoder of the records get and find return (tests compare the two)
  decodeJs: decoder.decode,
  // how many databases this process has open (environments, not handles)
  openEnvironments: native.openCount,
};
