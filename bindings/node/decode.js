'use strict';
// msgpack -> JS in JS, for the records db.get and db.find return (issue 25), and the keys of
// those reads JS -> msgpack (below): the addon copies a
// record's bytes into a buffer this realm allocated (JS memory: no external buffer, as
// Electron's memory cage requires), and this decodes them, which costs V8 far less than the
// same object built through N-API.  The values are exactly those of the addon's C decoder
// (src/convert.c, and uniqdb.decode): ints as number when within +-(2^53 - 1), else bigint;
// float32 and float64 as number (-0, NaN kept); str as string, or RawString when its bytes are
// not UTF-8; bin as a Buffer (a copy); array as Array; map as a plain object when every key is
// a UTF-8 str (a "__proto__" key defined as an own member), else a Map; ext refused.
// test/decode.test.js checks both decoders agree on every value of the round-trip table.
//
// msgpackr (npm, what lmdb-js decodes with) was considered and not used: it decodes invalid
// UTF-8 without telling, turns non-string map keys into strings (or needs Maps everywhere), and
// gives bin as a view of the source buffer or a Uint8Array copy, not a Buffer.  It is not
// faster either: 720-770 ns for one of tools/bench's 6-field records on the project's machine,
// this 760-1040 ns in the same minutes (a cached constructor per record shape, tried, did not
// measurably help and was dropped).

const { isUtf8 } = require('node:buffer');

const MAX_DEPTH = 128; // as convert.c: 2 * its MAX_DEPTH levels
const POW32 = 4294967296;
const SAFE = Number.MAX_SAFE_INTEGER;
const fcc = String.fromCharCode;

let RawString = null; // index.js's class, set by init
let src; // the bytes being decoded (a Buffer)
let view; // a DataView of them
let pos = 0;
let end = 0;

function corrupt(message) {
  const e = new Error(message);
  e.code = 'UDB_ECORRUPT';
  return e;
}
const malformed = () => corrupt('uniqdb: malformed msgpack from the engine');

// An ASCII string of n <= 16 bytes at b[s], made in one call (a string grown a character at
// a time costs V8 an allocation per character; Buffer's latin1Slice, a call into C++, costs
// more than two of these up to 32 bytes).
const SHORT = [
  () => '',
  (b, s) => fcc(b[s]),
  (b, s) => fcc(b[s], b[s + 1]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8], b[s + 9]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8], b[s + 9], b[s + 10]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8], b[s + 9], b[s + 10], b[s + 11]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12], b[s + 13]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12], b[s + 13], b[s + 14]),
  (b, s) => fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7],
    b[s + 8], b[s + 9], b[s + 10], b[s + 11], b[s + 12], b[s + 13], b[s + 14], b[s + 15]),
];

// Map keys (field names) of up to 16 ASCII bytes, by a hash of their bytes: the same field
// name gives the same string, already internalized, so V8 stores the member without looking
// the name up in its string table again.
const KEYS = new Array(4096).fill('');

function asciiKey(start, n) {
  let h = n;
  for (let i = start; i < start + n; i++) h = (Math.imul(h, 31) + src[i]) | 0;
  const slot = h & 4095;
  const k = KEYS[slot];
  if (k.length === n) {
    let j = 0;
    while (j < n && k.charCodeAt(j) === src[start + j]) j++;
    if (j === n) return k;
  }
  const made = Object.keys({ [SHORT[n](src, start)]: 0 })[0]; // the internalized string
  KEYS[slot] = made;
  return made;
}

// A str body of n bytes at pos: a string, or a RawString when not UTF-8.  key: a map's key.
function str(n, key) {
  const start = pos;
  const stop = pos + n;
  if (stop > end) throw malformed();
  pos = stop;
  let i = start;
  while (i < stop && src[i] < 0x80) i++;
  if (i === stop) {
    if (n <= 16) return key ? asciiKey(start, n) : SHORT[n](src, start);
    if (n <= 32) return SHORT[16](src, start) + SHORT[n - 16](src, start + 16);
    return src.latin1Slice(start, stop);
  }
  const bytes = src.subarray(start, stop);
  if (isUtf8(bytes)) return src.utf8Slice(start, stop);
  return new RawString(Buffer.from(bytes));
}

function fixed(n) {
  const at = pos;
  if (at + n > end) throw malformed();
  pos = at + n;
  return at;
}

function u64(at) {
  const hi = view.getUint32(at);
  return hi < 0x200000 ? hi * POW32 + view.getUint32(at + 4) : view.getBigUint64(at);
}

function i64(at) {
  const hi = view.getInt32(at);
  if (hi >= -0x200000 && hi < 0x200000) {
    const v = hi * POW32 + view.getUint32(at + 4);
    if (v >= -SAFE) return v;
  }
  return view.getBigInt64(at);
}

function array(n, depth) {
  if (n > end - pos) throw malformed(); // each element takes at least a byte
  const a = [];
  for (let i = 0; i < n; i++) a.push(any(depth + 1));
  return a;
}

// A map's key when it is a str of UTF-8 (consumed), else undefined (pos unchanged).
function strKey() {
  if (pos >= end) throw malformed();
  const c = src[pos];
  let n;
  if ((c & 0xe0) === 0xa0) {
    pos++;
    n = c & 0x1f;
  } else if (c === 0xd9) {
    n = src[fixed(2) + 1];
  } else if (c === 0xda) {
    n = view.getUint16(fixed(3) + 1);
  } else if (c === 0xdb) {
    n = view.getUint32(fixed(5) + 1);
  } else {
    return undefined;
  }
  const s = str(n, true);
  return typeof s === 'string' ? s : undefined;
}

function map(n, depth) {
  if (n > (end - pos) / 2) throw malformed();
  const start = pos;
  const o = {};
  for (let i = 0; i < n; i++) {
    if (depth + 1 > MAX_DEPTH) throw malformed();
    const k = strKey();
    if (k === undefined) {
      pos = start; // a key that is not a UTF-8 str: the map is a Map
      return mapAsMap(n, depth);
    }
    const v = any(depth + 1);
    if (k === '__proto__') {
      Object.defineProperty(o, k, { value: v, writable: true, enumerable: true,
        configurable: true });
    } else {
      o[k] = v;
    }
  }
  return o;
}

function mapAsMap(n, depth) {
  const m = new Map();
  for (let i = 0; i < n; i++) {
    const k = any(depth + 1);
    m.set(k, any(depth + 1));
  }
  return m;
}

function any(depth) {
  if (depth > MAX_DEPTH || pos >= end) throw malformed();
  const c = src[pos++];
  if (c <= 0x7f) return c;
  if (c >= 0xe0) return c - 0x100;
  if ((c & 0xe0) === 0xa0) return str(c & 0x1f);
  if ((c & 0xf0) === 0x80) return map(c & 0x0f, depth);
  if ((c & 0xf0) === 0x90) return array(c & 0x0f, depth);
  switch (c) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xcc: return src[fixed(1)];
    case 0xcd: return view.getUint16(fixed(2));
    case 0xce: return view.getUint32(fixed(4));
    case 0xcf: return u64(fixed(8));
    case 0xd0: return view.getInt8(fixed(1));
    case 0xd1: return view.getInt16(fixed(2));
    case 0xd2: return view.getInt32(fixed(4));
    case 0xd3: return i64(fixed(8));
    case 0xca: return view.getFloat32(fixed(4));
    case 0xcb: return view.getFloat64(fixed(8));
    case 0xd9: return str(src[fixed(1)]);
    case 0xda: return str(view.getUint16(fixed(2)));
    case 0xdb: return str(view.getUint32(fixed(4)));
    case 0xc4: case 0xc5: case 0xc6: {
      const n = c === 0xc4 ? src[fixed(1)] : c === 0xc5 ? view.getUint16(fixed(2))
        : view.getUint32(fixed(4));
      if (pos + n > end) throw malformed();
      const b = Buffer.from(src.subarray(pos, pos + n));
      pos += n;
      return b;
    }
    case 0xdc: return array(view.getUint16(fixed(2)), depth);
    case 0xdd: return array(view.getUint32(fixed(4)), depth);
    case 0xde: return map(view.getUint16(fixed(2)), depth);
    case 0xdf: return map(view.getUint32(fixed(4)), depth);
    default: // 0xc1 (never used) and the ext family, as convert.c
      throw corrupt('uniqdb: a msgpack extension value (uniqdb stores none)');
  }
}

/**
 * The value in bytes [0, len) of buf (a Buffer) through dv (a DataView of buf), as the
 * addon's C decoder gives it; throws an Error with code UDB_ECORRUPT on malformed bytes.
 */
function decodeFrom(buf, dv, len) {
  src = buf;
  view = dv;
  pos = 0;
  end = len;
  const v = any(0);
  if (pos !== end) throw malformed();
  src = undefined;
  view = undefined;
  return v;
}

/** The value in a whole Buffer or Uint8Array (tests, tools). */
function decode(bytes) {
  const buf = Buffer.isBuffer(bytes) ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return decodeFrom(buf, new DataView(buf.buffer, buf.byteOffset, buf.byteLength), buf.length);
}

// ---- keys: JS -> msgpack for get and find, the common values only ----
// The key of a read (a primary key, or a list of an index's values) encoded into buf from 0,
// as the addon's C encoder (src/convert.c) would: null and undefined as nil, booleans, safe
// integers other than -0 in the smallest int format up to 32 bits, strings of up to 255 ASCII
// characters.  Anything else returns -1 and the addon encodes the key (and names what is wrong).

// One value at buf[p]: the position after it, or -1.
function keyValue(buf, p, v) {
  if (typeof v === 'string') {
    const n = v.length;
    if (n > 255) return -1;
    let q = p + (n < 32 ? 1 : 2);
    for (let j = 0; j < n; j++) {
      const c = v.charCodeAt(j);
      if (c >= 0x80) return -1;
      buf[q++] = c;
    }
    if (n < 32) {
      buf[p] = 0xa0 | n;
    } else {
      buf[p] = 0xd9;
      buf[p + 1] = n;
    }
    return q;
  }
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || (v === 0 && 1 / v < 0)) return -1;
    if (v >= 0) {
      if (v < 128) {
        buf[p] = v;
        return p + 1;
      }
      if (v <= 0xff) {
        buf[p] = 0xcc;
        buf[p + 1] = v;
        return p + 2;
      }
      if (v <= 0xffff) {
        buf[p] = 0xcd;
        buf[p + 1] = v >>> 8;
        buf[p + 2] = v & 0xff;
        return p + 3;
      }
      if (v <= 0xffffffff) {
        buf[p] = 0xce;
        buf[p + 1] = v >>> 24;
        buf[p + 2] = (v >>> 16) & 0xff;
        buf[p + 3] = (v >>> 8) & 0xff;
        buf[p + 4] = v & 0xff;
        return p + 5;
      }
      return -1;
    }
    if (v >= -32) {
      buf[p] = v & 0xff;
      return p + 1;
    }
    if (v >= -128) {
      buf[p] = 0xd0;
      buf[p + 1] = v & 0xff;
      return p + 2;
    }
    if (v >= -32768) {
      buf[p] = 0xd1;
      buf[p + 1] = (v >> 8) & 0xff;
      buf[p + 2] = v & 0xff;
      return p + 3;
    }
    if (v >= -2147483648) {
      buf[p] = 0xd2;
      buf[p + 1] = (v >> 24) & 0xff;
      buf[p + 2] = (v >> 16) & 0xff;
      buf[p + 3] = (v >> 8) & 0xff;
      buf[p + 4] = v & 0xff;
      return p + 5;
    }
    return -1;
  }
  if (v === null || v === undefined) {
    buf[p] = 0xc0;
    return p + 1;
  }
  if (v === true || v === false) {
    buf[p] = v ? 0xc3 : 0xc2;
    return p + 1;
  }
  return -1;
}

/** A primary key into buf: its length, or -1 (the addon encodes it). */
function encodeKey(buf, v) {
  return v === undefined ? -1 : keyValue(buf, 0, v); // a missing key: the addon's message
}

/** An index's values (a list, or one value given bare) into buf: the length, or -1. */
function encodeValues(buf, values) {
  if (!Array.isArray(values)) {
    buf[0] = 0x91;
    return keyValue(buf, 1, values);
  }
  const n = values.length;
  if (n > 15) return -1;
  buf[0] = 0x90 | n;
  let p = 1;
  for (let i = 0; i < n && p > 0; i++) p = keyValue(buf, p, values[i]);
  return p;
}

function init(rawStringClass) {
  RawString = rawStringClass;
}

module.exports = { init, decode, decodeFrom, encodeKey, encodeValues };
