// Types of the uniqdb Node.js binding (index.js).  README.md documents each call.
/// <reference types="node" />

/** A stored value as JS sees it.  Integers beyond 2^53 - 1 are bigints. */
export type Value =
  | null
  | boolean
  | number
  | bigint
  | string
  | Buffer
  | RawString
  | Value[]
  | Map<Value, Value>
  | { [field: string]: Value };

/** What a write accepts: Value, Uint8Array / ArrayBuffer (bytes), Float32, undefined members. */
export type Input =
  | null
  | undefined
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | ArrayBuffer
  | Float32
  | RawString
  | Input[]
  | Map<Input, Input>
  | { [field: string]: Input };

/** A record: a plain object of its fields. */
export type Record = { [field: string]: Value };
/** A record to write. */
export type RecordInput = { [field: string]: Input };
/** A primary key: str, int or uint. */
export type Key = string | number | bigint;

export interface OpenOptions {
  /** The schema (an object, or its JSON text), applied at open: new types, fields, indexes. */
  schema?: object | string;
  /** Keep what the stored schema has and `schema` lacks (UDB_SCHEMA_KEEP). */
  keep?: boolean;
  /** Apply `schema` exactly, dropping indexes and types it lacks (UDB_SCHEMA_DROP). */
  drop?: boolean;
  readOnly?: boolean;
  noSync?: boolean;
  noMetaSync?: boolean;
  noGroup?: boolean;
  noShip?: boolean;
  noLock?: boolean;
  mapSize?: number;
  maxMapSize?: number;
  maxDbs?: number;
  mode?: number;
  growWaitMs?: number;
  /** How long a write waits for another writer before failing with UDB_EBUSY (0: no limit). */
  lockWaitMs?: number;
}

export interface ScanOptions {
  /** The index to scan in the order of (default: the primary key). */
  index?: string;
  /** Values of the index's leading fields. */
  prefix?: Input[];
  /** Lower bound: values of the index's leading fields, compared as a row (NULL is the
   * smallest value); gte includes entries equal to it, gt excludes them.  A bare value is
   * a list of one. */
  gte?: Input[] | Input;
  gt?: Input[] | Input;
  /** Upper bound, as the lower. */
  lte?: Input[] | Input;
  lt?: Input[] | Input;
  /** From the top down (NULLs last). */
  reverse?: boolean;
  /** Resume after this sort key (a Scan's lastKey): the next page. */
  after?: Input[];
  /** Read each record's sort key too, for lastKey. */
  keys?: boolean;
  /** At most this many records. */
  limit?: number;
}

/** An iterator over the records of one read snapshot; close() (or break) ends it early. */
export interface Scan<R = Record> extends IterableIterator<R> {
  close(): void;
  toArray(): R[];
  /** The sort key of the last record given (index values, then the primary key), for the
   * option after; needs keys: true (a TypeError otherwise), undefined before the first. */
  readonly lastKey: Input[] | undefined;
}

export interface Created<R = Record> {
  created: boolean;
  record: R;
}

export interface Chosen<R = Record> {
  chosen: number;
  record: R;
}

export type Op =
  | { op: 'insert'; type: string; record: RecordInput; seqField?: string; seqOp?: number }
  | { op: 'insertOrGet'; type: string; record: RecordInput; index?: string; seqField?: string;
      seqOp?: number }
  | { op: 'upsert'; type: string; record: RecordInput; index?: string; onInsert?: RecordInput;
      seqField?: string; seqOp?: number }
  | { op: 'update'; type: string; key: Key; patch: RecordInput; merge?: boolean;
      seqField?: string; seqOp?: number }
  | { op: 'delete'; type: string; key: Key }
  | { op: 'insertFirst'; type: string; candidates: RecordInput[] }
  | { op: 'seqNext'; name: string };

/** The result of one op of exec(). */
export interface OpResult<R = Record> {
  created: boolean;
  /** The stored record (insertOrGet: the existing one when created is false). */
  record?: R;
  /** insertFirst: the position of the candidate inserted. */
  chosen?: number;
  /** seqNext: the value taken. */
  value?: number | bigint;
}

/** The reads, shared by Database and Transaction. */
export interface Reader {
  get<R = Record>(type: string, key: Key): R | undefined;
  find<R = Record>(type: string, index: string, values: Input[] | Input): R | undefined;
  scan<R = Record>(type: string, options?: ScanOptions): Scan<R>;
  seqGet(name: string): number | bigint | undefined;
}

/** The transaction given to transactionSync's function: every call is synchronous. */
export class Transaction implements Reader {
  private constructor();
  get<R = Record>(type: string, key: Key): R | undefined;
  find<R = Record>(type: string, index: string, values: Input[] | Input): R | undefined;
  scan<R = Record>(type: string, options?: ScanOptions): Scan<R>;
  seqGet(name: string): number | bigint | undefined;
  insert<R = Record>(type: string, record: RecordInput): R;
  insertOrGet<R = Record>(type: string, record: RecordInput,
    options?: { index?: string }): Created<R>;
  upsert<R = Record>(type: string, record: RecordInput,
    options?: { index?: string; onInsert?: RecordInput }): Created<R>;
  insertFirst<R = Record>(type: string, candidates: RecordInput[]): Chosen<R>;
  update<R = Record>(type: string, key: Key, patch: RecordInput, options?: { merge?: boolean }): R;
  delete(type: string, key: Key): void;
  seqNext(name: string): number | bigint;
}

export class Database implements Reader {
  private constructor();
  /** The directory opened. */
  readonly path: string;
  /** What applying options.schema changed, one item per line ("" when nothing). */
  readonly schemaChanges: string;
  readonly closed: boolean;
  close(): void;
  get<R = Record>(type: string, key: Key): R | undefined;
  find<R = Record>(type: string, index: string, values: Input[] | Input): R | undefined;
  scan<R = Record>(type: string, options?: ScanOptions): Scan<R>;
  seqGet(name: string): number | bigint | undefined;
  insert<R = Record>(type: string, record: RecordInput): Promise<R>;
  insertOrGet<R = Record>(type: string, record: RecordInput,
    options?: { index?: string }): Promise<Created<R>>;
  upsert<R = Record>(type: string, record: RecordInput,
    options?: { index?: string; onInsert?: RecordInput }): Promise<Created<R>>;
  insertFirst<R = Record>(type: string, candidates: RecordInput[]): Promise<Chosen<R>>;
  update<R = Record>(type: string, key: Key, patch: RecordInput,
    options?: { merge?: boolean }): Promise<R>;
  delete(type: string, key: Key): Promise<void>;
  seqNext(name: string): Promise<number | bigint>;
  exec(ops: Op[]): Promise<OpResult[]>;
  transactionSync<T>(fn: (tx: Transaction) => T): T;
  /** fn's reads in one read snapshot (tx's writes fail with UDB_EREADONLY). */
  readSync<T>(fn: (tx: Reader) => T): T;
  /** udb_check: the problems found ([] when consistent). */
  check(): string[];
  /** udb_backup: a consistent copy into dest (a new or empty directory) while writes go on;
   * settles once the copy is on disk.  compact: only the pages in use. */
  backup(dest: string | URL, options?: { compact?: boolean }): Promise<void>;
  /** The stored schema, or undefined before one is applied. */
  schema(): object | undefined;
}

export function open(pathOrUrl: string | URL, options?: OpenOptions): Database;

/** A number stored as a msgpack float32. */
export class Float32 {
  constructor(value: number);
  readonly value: number;
}

/** A msgpack str whose bytes are not UTF-8. */
export class RawString {
  constructor(bytes: Uint8Array);
  readonly bytes: Buffer;
  toString(): string;
}

export type ErrorCode =
  | 'UDB_ECONFLICT' | 'UDB_ENOTFOUND' | 'UDB_EBADRECORD' | 'UDB_ESCHEMA' | 'UDB_EKEYTOOLONG'
  | 'UDB_ECORRUPT' | 'UDB_EINVAL' | 'UDB_ESIZELIMIT' | 'UDB_ENOMEM' | 'UDB_EREADONLY'
  | 'UDB_EFORMAT' | 'UDB_EEXHAUSTED' | 'UDB_EBUSY' | 'UDB_EFLUSHFAILED' | 'UDB_EMAPFULL'
  | 'UDB_ECONNECT' | 'UDB_EAUTH' | 'UDB_ESERVER' | 'UDB_ERETRY' | 'UDB_EINDOUBT'
  | 'UDB_EDBSFULL' | 'UDB_ELMDB' | string;

/** An RFC 9457 problem details object. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  [member: string]: unknown;
}

/** Every error the engine returns. */
export class UdbError extends Error {
  /** The UDB_E* name (an errno name such as 'ENOENT' for system errors). */
  readonly code: ErrorCode;
  /** The engine's numeric code. */
  readonly errno: number;
  /** The engine's message alone (message is "<code's text>: <detail>"). */
  readonly detail: string;
  /** exec: the position of the op that failed the unit. */
  readonly opIndex?: number;
}

export interface ConflictDetail {
  index: string;
  fields: string[];
  values: Value[];
  existingKey: Value;
}

/** A unique index (or the primary key) already holds the key. */
export class ConflictError extends UdbError {
  readonly code: 'UDB_ECONFLICT';
  readonly status: 409;
  readonly type: string;
  readonly index: string;
  readonly fields: string[];
  readonly values: Value[];
  readonly existingKey: Value;
  /** Every violated index, primary key first. */
  readonly conflicts: ConflictDetail[];
  toProblem(extra?: { [member: string]: unknown }): Problem;
}

/** A record, key or value list does not match the schema. */
export class RecordError extends UdbError {
  readonly code: 'UDB_EBADRECORD';
  readonly status: 422;
  readonly type?: string;
  /** The field the engine named, if it named one. */
  readonly field?: string;
  toProblem(extra?: { [member: string]: unknown }): Problem;
}

/** The library's version (udb_version). */
export const libraryVersion: string;
/** msgpack as the binding encodes a value. */
export function encode(value: Input): Buffer;
/** A value from msgpack bytes. */
export function decode(bytes: Buffer): Value;
/** The same decoding in JS (decode.js, which get and find use): the same values as decode. */
export function decodeJs(bytes: Uint8Array): Value;
/** How many databases this process has open (environments, however many handles). */
export function openEnvironments(): number;
