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
// the generic decoder below 760-1040 ns in the same minutes; records of a shape seen before
// (decodeRecord, below: one generated function per shape, keys compared as bytes, the object
// made as one literal) 205-370 ns on 2026-12-07.

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

// The string of the n <= 32 bytes at b[s] when they are all ASCII, made in one call (one
// flat string: a string grown a character at a time costs V8 an allocation per character, two
// joined make a cons string that each comparison flattens, and Buffer's latin1Slice, a call
// into C++, costs more than two of these), else undefined.  A switch on n; each case reads
// its n bytes once, for the ASCII test and for String.fromCharCode's n arguments.
function makeAscii() {
  // eslint-disable-next-line no-new-func
  return new Function('fcc', `return function ascii(b, s, n) {
  switch (n) {
    case 0: return '';
${Array.from({ length: 32 }, (_, i) => {
    const n = i + 1;
    const c = Array.from({ length: n }, (_, j) => `c${j}`);
    return `    case ${n}: {\n      const ${c.map((x, j) => `${x} = b[s + ${j}]`).join(', ')};\n` +
      `      return (${c.join(' | ')}) < 0x80 ? fcc(${c.join(', ')}) : undefined;\n    }`;
  }).join('\n')}
    default: return undefined;
  }
};`)(fcc);
}

// The same where code cannot be made from strings (node --disallow-code-generation-from-strings,
// a page's Content-Security-Policy without 'unsafe-eval'): b is a Buffer.
function asciiSlow(b, s, n) {
  let or = 0;
  for (let j = s; j < s + n; j++) or |= b[j];
  return or < 0x80 ? b.latin1Slice(s, s + n) : undefined;
}

let ascii;
try {
  ascii = makeAscii();
} catch {
  ascii = asciiSlow;
}

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
  const made = Object.keys({ [ascii(src, start, n)]: 0 })[0]; // the internalized string
  KEYS[slot] = made;
  return made;
}

// A str body of n bytes at pos: a string, or a RawString when not UTF-8.  key: a map's key.
// Are the bytes src[start, stop) all ASCII?
function allAscii(start, stop) {
  let i = start;
  while (i < stop && src[i] < 0x80) i++;
  return i === stop;
}

function str(n, key) {
  const start = pos;
  const stop = pos + n;
  if (stop > end) throw malformed();
  pos = stop;
  if (n <= 32 && !(key && n <= 16)) {
    const s = ascii(src, start, n);
    if (s !== undefined) return s;
  } else if (allAscii(start, stop)) {
    return n <= 32 ? asciiKey(start, n) : src.latin1Slice(start, stop);
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

// ---- records of a known shape (issue 25) ----
// A record is stored canonically (the engine's record.c: schema field order, nils dropped),
// so the records of a type come in a few shapes: the same field names in the same order,
// only the values differ.  A Shape holds the bytes of a record's map header and keys as
// they were seen once, and a function, made for it with new Function, that builds the object
// as one literal (all fields in order: one hidden class, no lookups of the names).  A record
// whose bytes match a shape's key bytes is decoded by it: each value by any() at the place
// the generic decoder would reach with the same bytes, so the values and errors are the same;
// anything else (another shape, malformed bytes) goes to the generic decoder.
// test/decode.test.js checks both ways agree on every input (differential fuzz).

const MAX_SHAPES = 4; // per type: the records of a type with optional fields
let shaped = 0; // records decoded by a shape (tests: that they take this way)
const MAX_SHAPE_FIELDS = 64;
// a field name a shape may hold: printable ASCII, not an array index's digits, not __proto__
const SHAPE_NAME = /^[A-Za-z_$][\x20-\x7e]{0,30}$/;

// A shape's decoder, made once: (b, end) -> the record, or undefined when the bytes b[0, end)
// are not of this shape.  The key bytes are compared as constants; each value is any(1) from
// the place after its key (at and go read and set decode.js's position).
const at = () => pos;
const go = (p) => {
  pos = p;
};

class Shape {
  // strs[i]: field i's value was a fixstr when the shape was learnt (its value is then tried as
  // an ASCII fixstr here first, then by any() as every other value)
  constructor(keys, names, strs) {
    const code = ['if (end < ' + (keys.reduce((a, k) => a + k.length + 1, 0)) +
      ') return undefined;', 'let p = 0;', 'let c = 0;', 'let v;'];
    keys.forEach((kb, i) => {
      const tests = Array.from(kb, (c, j) => `b[p + ${j}] !== ${c}`).join(' || ');
      code.push(`if (p + ${kb.length} > end || ${tests}) return undefined;`, `p += ${kb.length};`);
      if (strs[i]) {
        code.push('v = undefined;', 'c = b[p];',
          'if ((c & 0xe0) === 0xa0 && p + 1 + (c & 0x1f) <= end) {',
          '  v = ascii(b, p + 1, c & 0x1f);', '  if (v !== undefined) p += 1 + (c & 0x1f);', '}',
          'if (v === undefined) {', '  go(p);', '  v = any(1);', '  p = at();', '}',
          `const v${i} = v;`);
      } else {
        code.push('go(p);', `const v${i} = any(1);`, 'p = at();');
      }
    });
    code.push('if (p !== end) return undefined;');
    code.push(`return { ${names.map((k, i) => `${JSON.stringify(k)}: v${i}`).join(', ')} };`);
    try {
      // eslint-disable-next-line no-new-func
      this.decode = new Function('at', 'go', 'any', 'ascii',
        `return function shape(b, end) {\n${code.join('\n')}\n};`)(at, go, any, ascii);
    } catch {
      this.decode = null; // code cannot be made from strings here: no shapes
    }
  }
}

// The shape of the record in src[0, end) (decoded already: well formed), or null when it is
// not a map of 1..MAX_SHAPE_FIELDS fields named by distinct fixstr keys SHAPE_NAME allows.
function learn() {
  const c = src[0];
  let n;
  if ((c & 0xf0) === 0x80) {
    n = c & 0x0f;
    pos = 1;
  } else if (c === 0xde && end >= 3) {
    n = view.getUint16(1);
    pos = 3;
  } else {
    return null;
  }
  if (n === 0 || n > MAX_SHAPE_FIELDS) return null;
  const keys = [];
  const names = [];
  const strs = [];
  for (let i = 0; i < n; i++) {
    const start = i === 0 ? 0 : pos;
    if (pos >= end || (src[pos] & 0xe0) !== 0xa0) return null;
    const kn = src[pos] & 0x1f;
    if (pos + 1 + kn > end) return null;
    const name = src.latin1Slice(pos + 1, pos + 1 + kn);
    if (!SHAPE_NAME.test(name) || name === '__proto__' || names.includes(name)) return null;
    pos += 1 + kn;
    keys.push(Uint8Array.from(src.subarray(start, pos)));
    names.push(name);
    strs.push(pos < end && (src[pos] & 0xe0) === 0xa0);
    any(1);
  }
  const sh = pos === end ? new Shape(keys, names, strs) : null;
  return sh && sh.decode ? sh : null;
}

/**
 * The record in bytes [0, len) of buf (as decodeFrom), through the shapes kept in shapes (an
 * array this keeps up to MAX_SHAPES in: one per type read).
 */
function decodeRecord(buf, dv, len, shapes) {
  src = buf;
  view = dv;
  end = len;
  for (let i = 0; i < shapes.length; i++) {
    let v;
    try {
      v = shapes[i].decode(buf, len);
    } catch {
      v = undefined; // the generic decoder below throws its own error
    }
    if (v !== undefined) {
      src = undefined;
      view = undefined;
      shaped++;
      return v;
    }
  }
  const v = decodeFrom(buf, dv, len);
  if (shapes.length < MAX_SHAPES) {
    src = buf;
    view = dv;
    end = len;
    const sh = learn();
    if (sh) shapes.push(sh);
    src = undefined;
    view = undefined;
  }
  return v;
}

/** The value in a whole Buffer or Uint8Array (tests, tools); with shapes, through decodeRecord. */
function decode(bytes, shapes) {
  const buf = Buffer.isBuffer(bytes) ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return shapes ? decodeRecord(buf, dv, buf.length, shapes) : decodeFrom(buf, dv, buf.length);
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
    const q = p + (n < 32 ? 1 : 2);
    let or = 0; // of every character: one test for ASCII after the loop
    for (let j = 0; j < n; j++) {
      const c = v.charCodeAt(j);
      or |= c;
      buf[q + j] = c;
    }
    if (or >= 0x80) return -1;
    if (n < 32) {
      buf[p] = 0xa0 | n;
    } else {
      buf[p] = 0xd9;
      buf[p + 1] = n;
    }
    return q + n;
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

// decodeShaped: decode with shapes (tests: the differential fuzz of decodeRecord)
module.exports = { init, decode, decodeFrom, decodeRecord, decodeShaped: decode, encodeKey,
  encodeValues, shapedCount: () => shaped };
