#!/usr/bin/env python3
"""Round trip through a real PostgreSQL server (run under pg_run).

A database holding every field type with its edge values and every index
kind is exported with `uniqdb export --postgres`, loaded with psql, read back
row by row, and compared value by value with `uniqdb dump`.  The export is
also loaded a second time as --schema-only then --data-only into another
schema.  Then the refusals: a str with a NUL byte stops the export (naming
type, key and field) and --str-nul=bytea loads it exactly; data the export
cannot hold never produces a script that loads.

usage: roundtrip.py UNIQDB
"""
import base64
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

UNIQDB = sys.argv[1]
CHECKS = 0


class Mismatch(Exception):
    pass


def fail(msg):
    print("roundtrip: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def run(args, ok=(0,), stdin=None):
    p = subprocess.run(args, input=stdin, capture_output=True)
    if p.returncode not in ok:
        fail("%s exited %d: %s" % (" ".join(args), p.returncode,
                                   p.stderr.decode(errors="replace")))
    return p


def psql(*args, stdin=None):
    return run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"] + list(args),
               stdin=stdin).stdout.decode()


# ---- the database ------------------------------------------------------------
# Names that are SQL keywords, mixed case and long; every field type.
SCHEMA = {"types": {
    "order": {
        "key": "id",
        "fields": {
            "id": {"type": "uint", "auto": True},
            "select": {"type": "str"},
            "Mixed_Case": {"type": "int"},
            "u": {"type": "uint"},
            "f": {"type": "float"},
            "flag": {"type": "bool"},
            "bin": {"type": "bin"},
            "kind": {"type": "enum", "values": ["a", "it's", "Ünï \"q\"", "user"],
                     "required": True},
            "any": {"type": "any"},
            "from": {"type": "str"},
        },
        "unique": {
            "select_int": {"fields": ["select", "Mixed_Case"]},
            "active_from": {"fields": ["from"],
                            "where": "kind IN ('a', 'it''s') AND flag = true"},
            "u_nd": {"fields": ["u", "f"], "nulls": "not_distinct"},
            "by_bin": {"fields": ["bin"], "where": "\"Mixed_Case\" != -9223372036854775808"},
        },
        "indexes": {
            "plain_f": {"fields": ["f", "kind"]},
            "plain_where": {"fields": ["u"], "where": "\"select\" IS NOT NULL"},
        },
    },
    "User": {
        "key": "Key",
        "extra": True,
        "fields": {
            "Key": {"type": "str"},
            "v": {"type": "any"},
        },
    },
    "big": {
        "key": "k",
        "fields": {"k": {"type": "uint"}},
    },
    "neg": {
        "key": "k",
        "fields": {"k": {"type": "int"}, "n": {"type": "float", "required": True}},
    },
    "a_rather_long_type_name_that_is_fifty_eight_bytes_long_xyz": {
        "key": "k",
        "fields": {"k": {"type": "int"}, "w": {"type": "str"}},
        "unique": {"a_long_index_name_too_so_that_the_two_exceed_sixty_three": {
            "fields": ["w"]}},
    },
}}

ALL_BYTES = base64.b64encode(bytes(range(256))).decode()
TRICKY = "tab\there\nnewline\r\\backslash \\. \\N 'q' \"dq\" ünïcødé ✓ 😀 \x01\x7f"
RECORDS = [
    ("order", {"id": 1, "select": "", "Mixed_Case": -9223372036854775808,
               "u": 18446744073709551615, "f": 0.0, "flag": True,
               "bin": {"$bin": ALL_BYTES}, "kind": "a", "from": "x",
               "any": {"nested": [1, -2, 0.1, 1e308, -1e308, None, True, "ü",
                                  {"deep": {"deeper": [[], {}]}}],
                       "big": 18446744073709551615, "neg": -9223372036854775808,
                       "one_point_oh": 1.0, "tiny": 5e-324, "z": "\u0001\t\\\""}}),
    ("order", {"id": 2, "select": TRICKY, "Mixed_Case": 9223372036854775807, "u": 0,
               "f": -1e308, "flag": False, "bin": {"$bin": ""}, "kind": "it's",
               "from": "x", "any": -0.0}),
    ("order", {"id": 3, "select": "\\.", "f": 1e308, "kind": "Ünï \"q\"",
               "any": {"$bin": "AAEC"}}),
    ("order", {"id": 4, "f": 5e-324, "kind": "user",
               "any": ["x", {"$str": "/w=="}, [1, 2.5, {"k": None}]]}),
    ("order", {"id": 5, "f": -5e-324, "kind": "a", "any": {"$map": [[1, "int key"]]},
               "u": 18446744073709551615, "flag": False}),
    ("order", {"id": 6, "f": {"$float": "inf"}, "kind": "a",
               "any": {"$map": [["$msgpack", "looks like our fallback"]]}}),
    ("order", {"id": 7, "f": {"$float": "-inf"}, "kind": "a", "any": "plain string"}),
    ("order", {"id": 8, "f": 0.1, "kind": "a", "any": [1.5, "\u00e9", {"b": 1, "a": 2}]}),
    ("order", {"id": 9223372036854775806, "f": 2.2250738585072014e-308, "kind": "a",
               "any": None, "select": "max key"}),
    ("User", {"Key": "", "v": 1}),
    ("User", {"Key": "😀 key", "v": {"x": [1, 2]}, "undeclared": "extra field",
              "n": 42}),
    ("User", {"Key": "binary extra", "blob": {"$bin": "AP8="}}),
    ("big", {"k": 18446744073709551615}),
    ("big", {"k": 0}),
    ("neg", {"k": -9223372036854775808, "n": -0.0}),
    ("neg", {"k": 0, "n": 123456789.125}),
    ("neg", {"k": 9223372036854775807, "n": 1e-300}),
    ("a_rather_long_type_name_that_is_fifty_eight_bytes_long_xyz", {"k": 1, "w": "w"}),
]


# ---- decoding both sides into one comparable form ----------------------------
def fbits(x):
    return ("float", struct.pack(">d", x))


def mp_count(b, i, c, fix_last, code16):
    """The element count of a map or array: in the fix byte, or 16/32 bits."""
    if c <= fix_last:
        return c & 15, i
    w = 2 if c == code16 else 4
    return int.from_bytes(b[i:i + w], "big"), i + w


def mp_decode(b, i=0, ordered=False):
    """The msgpack subset records hold -> (normal form, next offset); maps'
    pairs sorted unless ordered."""
    c = b[i]
    i += 1
    if c <= 0x7f:
        return ("int", c), i
    if c >= 0xe0:
        return ("int", c - 256), i
    if 0x80 <= c <= 0x8f or c in (0xde, 0xdf):
        n, i = mp_count(b, i, c, 0x8f, 0xde)
        pairs = []
        for _ in range(n):
            k, i = mp_decode(b, i, ordered)
            v, i = mp_decode(b, i, ordered)
            pairs.append((k, v))
        return ("map", pairs if ordered else sorted(pairs, key=repr)), i
    if 0x90 <= c <= 0x9f or c in (0xdc, 0xdd):
        n, i = mp_count(b, i, c, 0x9f, 0xdc)
        out = []
        for _ in range(n):
            v, i = mp_decode(b, i, ordered)
            out.append(v)
        return ("arr", out), i
    if 0xa0 <= c <= 0xbf or c in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        if 0xa0 <= c <= 0xbf:
            n = c & 31
        else:
            w = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[c]
            n = int.from_bytes(b[i:i + w], "big")
            i += w
        kind = "bin" if c in (0xc4, 0xc5, 0xc6) else "str"
        return (kind, bytes(b[i:i + n])), i + n
    if c == 0xc0:
        return ("nil",), i
    if c in (0xc2, 0xc3):
        return ("bool", c == 0xc3), i
    if c == 0xca:
        return fbits(struct.unpack(">f", b[i:i + 4])[0]), i + 4
    if c == 0xcb:
        return fbits(struct.unpack(">d", b[i:i + 8])[0]), i + 8
    if c in (0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3):
        w = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[c]
        return ("int", int.from_bytes(b[i:i + w], "big", signed=c >= 0xd0)), i + w
    fail("msgpack byte 0x%02x not expected in a record" % c)


def from_dump(v, ordered=False):
    """A value as `uniqdb dump` prints it (its $-markers) -> normal form."""
    if v is None:
        return ("nil",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return fbits(v)
    if isinstance(v, str):
        return ("str", v.encode())
    if isinstance(v, list):
        return ("arr", [from_dump(x, ordered) for x in v])
    if len(v) == 1:
        (k, x), = v.items()
        if k == "$bin":
            return ("bin", base64.b64decode(x))
        if k == "$str":
            return ("str", base64.b64decode(x))
        if k == "$float":
            return fbits(float(x))
        if k == "$map":
            pairs = [(from_dump(a, ordered), from_dump(b, ordered)) for a, b in x]
            return ("map", pairs if ordered else sorted(pairs, key=repr))
    pairs = [(("str", k.encode()), from_dump(x, ordered)) for k, x in v.items()]
    return ("map", pairs if ordered else sorted(pairs, key=repr))


def from_jsonb(v):
    """A jsonb value as the export wrote it -> normal form."""
    if isinstance(v, dict) and list(v) == ["$msgpack"]:
        out, end = mp_decode(base64.b64decode(v["$msgpack"]))
        if end != len(base64.b64decode(v["$msgpack"])):
            fail("trailing bytes in a $msgpack value")
        return out
    if isinstance(v, dict):
        return ("map", sorted(((("str", k.encode()), from_jsonb(x)) for k, x in v.items()),
                              key=repr))
    if isinstance(v, list):
        return ("arr", [from_jsonb(x) for x in v])
    return from_dump(v)


def pg_expr(name, ftype):
    """SQL that reads a column back as JSON text we can decode exactly."""
    col = '"%s"' % name.replace('"', '""')
    return {"int": col + "::text", "uint": col + "::text", "float": col + "::text",
            "bin": "encode(%s, 'hex')" % col}.get(ftype, col)


def from_pg(v, ftype, bytea=False):
    if v is None:
        return ("nil",)
    if ftype in ("int", "uint"):
        return ("int", int(v))
    if ftype == "float":
        return fbits(float(v))
    if ftype == "bin" or bytea:
        return ("bin" if ftype == "bin" else "str", bytes.fromhex(v))
    if ftype == "any":
        return from_jsonb(v)
    return from_dump(v)


def compare(db, pgschema, bytea_fields=()):
    """Every record of `uniqdb dump` equals its row, field by field."""
    global CHECKS
    lines = [json.loads(l) for l in run([UNIQDB, "dump", db]).stdout.decode().splitlines()]
    schema = lines[0]["schema"]["types"]
    compared = 0
    for tname, tdef in schema.items():
        fields = list(tdef["fields"].items())
        exprs = [pg_expr(f, d["type"]) for f, d in fields]
        if tdef.get("extra"):
            exprs.append('"$extra"')
        raw = tdef.get("extra") or any(d["type"] == "any" for _, d in fields)
        if raw:
            exprs.append('encode("$raw", \'hex\')')
        key = '"%s"' % tdef["key"]
        rows = psql("-c", 'SELECT json_build_array(%s) FROM "%s"."%s" ORDER BY %s' %
                    (", ".join(exprs), pgschema, tname, key)).splitlines()
        rows = {json.dumps(from_pg(r[[f for f, _ in fields].index(tdef["key"])],
                                   tdef["fields"][tdef["key"]]["type"]),
                           default=repr): r for r in map(json.loads, rows)}
        recs = [l["record"] for l in lines if l.get("type") == tname]
        if len(recs) != len(rows):
            fail("%s: %d records, %d rows" % (tname, len(recs), len(rows)))
        for rec in recs:
            k = json.dumps(from_dump(rec[tdef["key"]]), default=repr)
            if k not in rows:
                fail("%s: key %r has no row" % (tname, rec[tdef["key"]]))
            row = rows[k]
            for i, (f, d) in enumerate(fields):
                want = from_dump(rec.get(f))
                if (tname, f) in bytea_fields and want[0] == "str":
                    want = ("str", want[1])
                got = from_pg(row[i], d["type"], (tname, f) in bytea_fields)
                if want != got:
                    raise Mismatch("%s key %r field %s: uniqdb %r, PostgreSQL %r" %
                                   (tname, rec[tdef["key"]], f, want, got))
                CHECKS += 1
            if tdef.get("extra"):
                extra = {k2: v for k2, v in rec.items() if k2 not in tdef["fields"]}
                want = from_dump(extra) if extra else ("nil",)
                got = from_pg(row[len(fields)], "any")
                if want != got:
                    fail("%s key %r extra fields: uniqdb %r, PostgreSQL %r" %
                         (tname, rec[tdef["key"]], want, got))
                CHECKS += 1
            if raw:
                # "$raw": the any and extra fields, in the record's order, exact
                pairs = [(("str", k2.encode()), from_dump(v, True)) for k2, v in rec.items()
                         if v is not None and (k2 not in tdef["fields"] or
                                               tdef["fields"][k2]["type"] == "any")]
                want = ("map", pairs) if pairs else ("nil",)
                hexed = row[-1]
                got = ("nil",) if hexed is None else mp_decode(bytes.fromhex(hexed), 0, True)[0]
                if want != got:
                    raise Mismatch("%s key %r $raw: uniqdb %r, PostgreSQL %r" %
                                   (tname, rec[tdef["key"]], want, got))
                CHECKS += 1
            compared += 1
    return compared


def make_db(path, schema, records):
    lines = [json.dumps({"schema": schema})]
    lines += [json.dumps({"type": t, "record": r}) for t, r in records]
    # written here, not by dump: no end line to check
    run([UNIQDB, "load", "--no-end", path], stdin="\n".join(lines).encode())


def expect(cond, msg):
    global CHECKS
    if not cond:
        fail(msg)
    CHECKS += 1


def main():
    work = tempfile.mkdtemp()
    try:
        db = os.path.join(work, "db")
        make_db(db, SCHEMA, RECORDS)
        # the sequences: a named one and the auto key's, moved by the explicit keys
        run([UNIQDB, "seq", db, "case:2026'\"x"])

        # 1. the whole script
        sql = os.path.join(work, "full.sql")
        run([UNIQDB, "export", "--postgres", db, "-o", sql])
        psql("-f", sql)
        n = compare(db, "public")
        expect(n == len(RECORDS), "compared %d of %d records" % (n, len(RECORDS)))
        # negative controls: the comparison sees a lost sign of zero in jsonb
        # (why -0.0 takes the $msgpack form), one byte of bytea, one ulp
        for change in ("UPDATE \"order\" SET \"any\" = '0.0' WHERE id = 2",
                       # the map {"b": 1, "a": 2} with its keys swapped
                       "UPDATE \"order\" SET \"$raw\" = decode('81a3616e7993cb3ff8000000000000"
                       "a2c3a982a16102a16201', 'hex') WHERE id = 8",
                       "UPDATE \"order\" SET bin = substr(bin, 1, 255) WHERE id = 1",
                       "UPDATE \"order\" SET f = 0.10000000000000002 WHERE id = 8"):
            psql("-c", "CREATE TABLE backup AS SELECT * FROM \"order\"")
            psql("-c", change)
            try:
                compare(db, "public")
                fail("negative control not detected: " + change)
            except Mismatch:
                pass
            psql("-c", "TRUNCATE \"order\"; INSERT INTO \"order\" SELECT * FROM backup; "
                 "DROP TABLE backup")
            expect(compare(db, "public") == len(RECORDS), "restore after " + change)

        # constraints that came along, and the sequences
        expect(psql("-c", 'SELECT last_value, is_called FROM "public"."case:2026\'""x"')
               .strip() in ("2|f",), "named sequence not restored to 1")
        expect(psql("-c", 'SELECT nextval(\'"public"."case:2026\'\'""x"\')').strip() == "2",
               "named sequence does not continue at 2")
        cons = psql("-c", "SELECT indexrelid::regclass::text || ' ' || pg_get_indexdef(indexrelid)"
                    " FROM pg_index WHERE indrelid = '\"order\"'::regclass ORDER BY 1")
        for frag in ('"order.active_from" ON public."order" USING btree ("from") '
                     "WHERE ((kind = ANY (ARRAY['a'::text, 'it''s'::text])) AND (flag = true))",
                     '"order.u_nd" ON public."order" USING btree (u, f) NULLS NOT DISTINCT',
                     'CREATE UNIQUE INDEX "order.select_int" ON public."order" USING btree '
                     '("select", "Mixed_Case")',
                     'CREATE INDEX "order.plain_where" ON public."order" USING btree (u) '
                     'WHERE ("select" IS NOT NULL)'):
            expect(frag in cons, "index definition missing: %s\nin:\n%s" % (frag, cons))
        long_idx = psql("-c", "SELECT relname FROM pg_class WHERE relname LIKE 'a_rather%~%'")
        expect(len(long_idx.strip()) == 63, "long index name not shortened to 63: %r" % long_idx)

        # 2. --schema NAME, --schema-only then --data-only
        s_sql, d_sql = os.path.join(work, "s.sql"), os.path.join(work, "d.sql")
        run([UNIQDB, "export", "--postgres", db, "--schema", "Other Schema", "--schema-only",
             "-o", s_sql])
        run([UNIQDB, "export", "--postgres", db, "--schema", "Other Schema", "--data-only",
             "-o", d_sql])
        expect("COPY" not in open(s_sql).read(), "--schema-only wrote data")
        expect("CREATE" not in open(d_sql).read(), "--data-only wrote schema")
        psql("-f", s_sql)
        psql("-f", d_sql)
        n = compare(db, "Other Schema")
        expect(n == len(RECORDS), "schema-only + data-only: compared %d records" % n)

        # 3. a str with a NUL: refused with type, key and field; nothing written
        nul_db = os.path.join(work, "nul")
        make_db(nul_db, {"types": {"t": {"key": "id", "fields": {
            "id": {"type": "str"}, "s": {"type": "str"}, "e": {"type": "str"}},
            "unique": {"s_u": {"fields": ["s"], "where": "e = 'a''b'"}}}}},
            [("t", {"id": "k1", "s": "a\u0000b", "e": "a'b"}),
             ("t", {"id": "k2", "s": "plain", "e": "x\u0000"})])
        out = os.path.join(work, "nul.sql")
        p = run([UNIQDB, "export", "--postgres", nul_db, "-o", out], ok=(5,))
        err = p.stderr.decode()
        expect('type "t", key "k1", field "s"' in err and "NUL" in err,
               "NUL refusal does not name type, key, field: %r" % err)
        expect(not os.path.exists(out), "a refused export left its file behind")
        expect(not [f for f in os.listdir(work) if f.startswith("nul.sql")],
               "a refused export left a temp file")
        # without -o the partial script has no COMMIT: psql loads nothing
        partial = run([UNIQDB, "export", "--postgres", nul_db, "--schema", "partial"],
                      ok=(5,)).stdout
        expect(b"COMMIT" not in partial, "a refused export printed COMMIT")
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"], input=partial,
                       capture_output=True)
        expect(psql("-c", "SELECT count(*) FROM pg_namespace WHERE nspname = 'partial'")
               .strip() == "0", "a partial script left something behind")
        # the documented fallback: such fields as bytea, exact
        run([UNIQDB, "export", "--postgres", nul_db, "--str-nul=bytea", "--schema", "nul",
             "-o", out])
        psql("-f", out)
        expect(psql("-c", "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = 'nul.t'::regclass AND attnum > 0 ORDER BY attnum")
               .split() == ["text", "bytea", "bytea"], "--str-nul=bytea column types")
        rows = psql("-c", "SELECT id, encode(s, 'hex'), encode(e, 'hex') FROM nul.t ORDER BY id")
        expect(rows.split() == ["k1|610062|612762", "k2|706c61696e|7800"],
               "--str-nul=bytea values: %r" % rows)
        # the partial index over a bytea field still means e = 'a''b'
        r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                            "INSERT INTO nul.t VALUES ('k3', 'a\\000b'::bytea, 'a''b')"],
                           capture_output=True)
        expect(b'"t.s_u"' in r.stderr, "bytea partial index did not hold: %r" % r.stderr)

        # bad command lines are usage errors (exit 2) that write nothing
        for bad in (["--schema", ""], ["--schema", "x" * 64], [], ["--schema-only", "--data-only"],
                    ["--str-nul=drop"]):
            args = [UNIQDB, "export"] + (["--postgres"] if bad != [] else []) + bad + [db]
            never = os.path.join(work, "usage.sql")
            run(args + ["-o", never], ok=(2,))
            expect(not os.path.exists(never), "usage error %r wrote a file" % bad)

        # 4. a sequence PostgreSQL's bigint cannot hold
        run([UNIQDB, "seq", db, "huge", "--set", "18446744073709551615"])
        p = run([UNIQDB, "export", "--postgres", db], ok=(5,))
        expect(b'sequence "huge"' in p.stderr, "bigint overflow not named: %r" % p.stderr)

        # 5. every word this server knows as a keyword, as type, field and index
        # names and inside partial-index predicates: the engine's canonical
        # WHERE text must load, and mean the same (a bare current_user would
        # be the function: the row would not match)
        words = psql("-c", "SELECT word FROM pg_get_keywords() ORDER BY word").split()
        expect(len(words) > 400, "pg_get_keywords() gave %d words" % len(words))
        kw_schema, kw_recs = {"types": {}}, []
        for c in range(0, len(words), 60):
            chunk = words[c:c + 60]
            fields = {"k": {"type": "int"}}
            fields.update({w: {"type": "str"} for w in chunk})
            kw_schema["types"][chunk[0]] = {
                "key": "k", "fields": fields,
                "unique": {chunk[1]: {"fields": chunk[:8],
                                      "where": " AND ".join('"%s" = \'x\'' % w
                                                            for w in chunk)}}}
            rec = {"k": 1}
            rec.update({w: "x" for w in chunk})
            kw_recs.append((chunk[0], rec))
        kw_db = os.path.join(work, "kw")
        make_db(kw_db, kw_schema, kw_recs)
        kw_sql = os.path.join(work, "kw.sql")
        run([UNIQDB, "export", "--postgres", kw_db, "--schema", "kw", "-o", kw_sql])
        psql("-f", kw_sql)
        stored = json.loads(run([UNIQDB, "schema", kw_db]).stdout)["types"]
        for tname, tdef in stored.items():
            (iname, idef), = tdef["unique"].items()
            got = psql("-c", 'SELECT count(*) FROM kw."%s" WHERE %s' % (tname, idef["where"]))
            expect(got.strip() == "1", "type %s: canonical predicate %r matches %s rows in "
                   "PostgreSQL, 1 in uniqdb" % (tname, idef["where"][:200], got.strip()))
        expect(compare(kw_db, "kw") == len(kw_recs), "keyword database round trip")
    except Mismatch as m:
        fail(str(m))
    finally:
        subprocess.run(["rm", "-rf", work])
    print("roundtrip: ok (%d records, %d value and property checks)" % (len(RECORDS), CHECKS))


main()
