#!/usr/bin/env python3
"""Conformance with PostgreSQL's uniqueness semantics, against a real server.

Runs every case of cases.txt (translated from PostgreSQL's regression tests,
see SOURCES.md) twice: on uniqdb through the `uniqdb` tool, and on the
PostgreSQL server that pg_run started (PGHOST etc. in the environment), with
the tables made by `uniqdb export --postgres --schema-only` from the case's
own schema.  For every statement the outcome (ok, created, existing, updated,
conflict on which index, invalid, notfound) and the record it returns must be
the one the case expects on both sides; at the end of each case every type's
contents must be equal on both sides (or each side's expected contents, where
the case marks a deliberate difference).  A deliberate difference names a tag
that README.md's "Differences from PostgreSQL" section must list.

usage: conformance.py [--pg-backend] UNIQDB CASES.txt SOURCES.md README.md [CASE-NAME-SUBSTRING]
(CONFORMANCE_JOBS: cases run at once, default 4)

--pg-backend adds a third party: uniqdb on PostgreSQL (issue 24), the same
`uniqdb` commands on a URL (postgresql:///$PGDATABASE?schema=u_CASE) instead
of a directory.  Every statement must give there exactly what it gives on
LMDB -- outcome, index, record(s), the message -- and so meet uniqdb's
expectation, and each type's final contents must be LMDB's.
--pg-backend-control is its negative control: the database on the server gets
the case's schema without its unique indexes, so the comparison must fail.

Case file syntax (one item per line, '#' starts a comment line):
  case NAME
  from FILE:LINES[, FILE:LINES...]      where in PostgreSQL's regression tests
  schema {JSON}                          the uniqdb schema (one line)
  STATEMENT => EXPECT
  contents TYPE [RECORDS]                expected final contents, both sides
  contents TYPE uniqdb [RECORDS] postgres [RECORDS] differs TAG
STATEMENT is one of
  insert TYPE {REC}
  or_get TYPE INDEX {REC}                INDEX '-' is the primary key
  upsert TYPE INDEX {REC} [{ON_INSERT}]
  update TYPE KEY {REC}                  replace the record
  merge TYPE KEY {REC}                   merge fields (null removes one)
  delete TYPE KEY
  get TYPE KEY
  find TYPE INDEX [VALUES]
  scan TYPE INDEX [[PREFIX]]             PostgreSQL: SELECT ... WHERE the index's
                                         where AND fields = prefix ORDER BY its fields
EXPECT is OUTCOME [{RECORD} | [RECORDS]], or, for a deliberate difference,
  uniqdb OUTCOME [...] | postgres OUTCOME [...] | differs TAG
OUTCOME is ok, created, existing, updated, notfound, invalid, conflict INDEX
(INDEX as uniqdb names it: TYPE.NAME, TYPE.KEYFIELD for the primary key).
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

try:
    import psycopg2
    from psycopg2 import sql as S
except ImportError:
    print("conformance: SKIP: python3-psycopg2 is not installed (tools/bootstrap.sh installs it)",
          file=sys.stderr)
    sys.exit(77)

ARGS = sys.argv[1:]
PG_CONTROL = bool(ARGS) and ARGS[0] == "--pg-backend-control"
PG_BACKEND = bool(ARGS) and ARGS[0] in ("--pg-backend", "--pg-backend-control")
if PG_BACKEND:
    ARGS = ARGS[1:]
UNIQDB, CASES, SOURCES, README = ARGS[0:4]
ONLY = ARGS[4] if len(ARGS) > 4 else None
JOBS = int(os.environ.get("CONFORMANCE_JOBS", "4"))
DEC = json.JSONDecoder()


class CaseError(Exception):
    pass


# ---- parsing -------------------------------------------------------------------

def take_json(text, what, line):
    text = text.lstrip()
    try:
        val, end = DEC.raw_decode(text)
    except ValueError as e:
        raise CaseError("line %d: %s is not JSON: %s" % (line, what, e))
    return val, text[end:].lstrip()


def take_word(text):
    text = text.lstrip()
    m = re.match(r"(\S+)\s*(.*)$", text, re.S)
    return (m.group(1), m.group(2)) if m else ("", "")


def parse_outcome(text, line):
    word, rest = take_word(text)
    if word not in ("ok", "created", "existing", "updated", "notfound", "invalid", "conflict"):
        raise CaseError("line %d: unknown outcome %r" % (line, word))
    out = {"outcome": word}
    if word == "conflict":
        out["index"], rest = take_word(rest)
    if rest.startswith("{"):
        out["record"], rest = take_json(rest, "the expected record", line)
    elif rest.startswith("["):
        out["records"], rest = take_json(rest, "the expected records", line)
    if rest.strip():
        raise CaseError("line %d: unexpected %r after the outcome" % (line, rest.strip()))
    return out


def parse_expect(text, line):
    if not text.lstrip().startswith("uniqdb "):
        e = parse_outcome(text, line)
        return {"uniqdb": e, "postgres": e, "differs": None}
    parts = [p.strip() for p in text.split("|")]
    if len(parts) != 3 or not parts[1].startswith("postgres ") or \
            not parts[2].startswith("differs "):
        raise CaseError("line %d: write 'uniqdb X | postgres Y | differs TAG'" % line)
    return {"uniqdb": parse_outcome(parts[0][len("uniqdb "):], line),
            "postgres": parse_outcome(parts[1][len("postgres "):], line),
            "differs": parts[2][len("differs "):].strip()}


def parse_statement(text, line):
    verb, rest = take_word(text)
    st = {"verb": verb, "line": line, "text": text.strip()}
    st["type"], rest = take_word(rest)
    if verb in ("or_get", "upsert", "find", "scan"):
        st["index"], rest = take_word(rest)
    if verb in ("update", "merge", "delete", "get"):
        st["key"], rest = take_json(rest, "the key", line)
    if verb in ("insert", "or_get", "upsert", "update", "merge"):
        st["rec"], rest = take_json(rest, "the record", line)
        if not isinstance(st["rec"], dict):
            raise CaseError("line %d: the record must be an object" % line)
    if verb == "upsert" and rest.startswith("{"):
        st["on_insert"], rest = take_json(rest, "on_insert", line)
    if verb == "find" or (verb == "scan" and rest.startswith("[")):
        st["values"], rest = take_json(rest, "the values", line)
    if verb not in ("insert", "or_get", "upsert", "update", "merge", "delete", "get", "find",
                    "scan"):
        raise CaseError("line %d: unknown statement %r" % (line, verb))
    if rest.strip():
        raise CaseError("line %d: unexpected %r" % (line, rest.strip()))
    return st


def parse_cases(path):
    cases, cur = [], None
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            s = raw.strip()
            if not s or s.startswith("#"):
                continue
            word, rest = take_word(s)
            if word == "case":
                cur = {"name": rest.strip(), "line": n, "from": None, "schema": None,
                       "statements": [], "contents": {}}
                cases.append(cur)
            elif cur is None:
                raise CaseError("line %d: text before the first case" % n)
            elif word == "from":
                cur["from"] = rest.strip()
            elif word == "schema":
                cur["schema"], tail = take_json(rest, "the schema", n)
                if tail:
                    raise CaseError("line %d: text after the schema" % n)
            elif word == "contents":
                typ, rest = take_word(rest)
                if rest.startswith("uniqdb"):
                    u, rest = take_json(rest[len("uniqdb"):], "uniqdb's contents", n)
                    w, rest = take_word(rest)
                    p, rest = take_json(rest, "PostgreSQL's contents", n)
                    w2, tag = take_word(rest)
                    if w != "postgres" or w2 != "differs" or not tag:
                        raise CaseError("line %d: write 'contents T uniqdb [...] postgres [...] "
                                        "differs TAG'" % n)
                    cur["contents"][typ] = {"uniqdb": u, "postgres": p, "differs": tag.strip()}
                else:
                    c, rest = take_json(rest, "the contents", n)
                    if rest:
                        raise CaseError("line %d: text after the contents" % n)
                    cur["contents"][typ] = {"uniqdb": c, "postgres": c, "differs": None}
            elif "=>" in s:
                stmt, expect = s.split("=>", 1)
                st = parse_statement(stmt, n)
                st["expect"] = parse_expect(expect, n)
                cur["statements"].append(st)
            else:
                raise CaseError("line %d: cannot read %r" % (n, s))
    for c in cases:
        if not c["from"] or c["schema"] is None or not c["statements"]:
            raise CaseError("case %s (line %d) needs from, schema and statements"
                            % (c["name"], c["line"]))
    names = [c["name"] for c in cases]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise CaseError("duplicate case names: %s" % ", ".join(dup))
    return cases


# ---- the schema as the driver needs it -----------------------------------------

class TypeInfo:
    def __init__(self, name, t):
        self.name = name
        self.key = t["key"]
        self.fields = list(t["fields"])
        self.indexes = {}
        for kind in ("unique", "indexes"):
            for ixname, ix in t.get(kind, {}).items():
                # a field is a name or {"field": name, "collate": "nocase"}
                fields = [f if isinstance(f, str) else f["field"] for f in ix["fields"]]
                nocase = [not isinstance(f, str) and f.get("collate") == "nocase"
                          for f in ix["fields"]]
                self.indexes[ixname] = {"fields": fields, "nocase": nocase,
                                        "where": ix.get("where"),
                                        "nnd": ix.get("nulls") == "not_distinct",
                                        "unique": kind == "unique"}

    def target(self, index, unique=True):
        if index in ("-", self.key):
            return {"fields": [self.key], "nocase": [False], "where": None, "nnd": False,
                    "unique": True}
        if index not in self.indexes or (unique and not self.indexes[index]["unique"]):
            raise CaseError("type %s has no %sindex %s" % (self.name, "unique " if unique else "",
                                                          index))
        return self.indexes[index]


# ---- uniqdb side -----------------------------------------------------------------

def uniqdb(args, stdin=None):
    p = subprocess.run([UNIQDB] + args, input=stdin, capture_output=True, text=True)
    if re.search(r"AddressSanitizer|LeakSanitizer|runtime error", p.stderr):
        raise CaseError("sanitizer report from uniqdb %s:\n%s" % (" ".join(args), p.stderr))
    return p


def udb_statement(db, st, ti):
    v, t = st["verb"], st["type"]
    rec = json.dumps(st.get("rec")) if "rec" in st else None
    if v == "insert":
        args = ["put", db, t, rec]
    elif v == "or_get":
        args = ["put", db, t, rec, "--or-get"] + ([] if st["index"] == "-" else [st["index"]])
    elif v == "upsert":
        if "on_insert" in st:
            raise CaseError("line %d: the uniqdb tool has no on_insert" % st["line"])
        args = ["put", db, t, rec, "--upsert"] + ([] if st["index"] == "-" else [st["index"]])
    elif v in ("update", "merge"):
        args = ["update", db, t] + (["--merge"] if v == "merge" else []) + \
               ["--", json.dumps(st["key"]), rec]
    elif v == "delete":
        args = ["delete", db, t, "--", json.dumps(st["key"])]
    elif v == "get":
        args = ["get", db, t, "--", json.dumps(st["key"])]
    elif v == "scan":
        args = ["scan", db, t, st["index"]] + ([json.dumps(st["values"])] if "values" in st
                                              else [])
    else:
        args = ["find", db, t, st["index"], json.dumps(st["values"])]
    p = uniqdb(["--json"] + args)
    if p.returncode == 0 and v == "scan":
        return {"outcome": "ok", "records": [json.loads(l) for l in p.stdout.splitlines()]}
    if p.returncode == 0:
        out = json.loads(p.stdout) if p.stdout.strip() else None
        if v in ("or_get", "upsert"):
            # --json: {"created": bool, ["updated": bool,] "record": {...}}
            if not isinstance(out, dict) or set(out) - {"created", "updated", "record"}:
                raise CaseError("uniqdb %s: unexpected output %r" % (v, p.stdout))
            word = "created" if out["created"] else "updated" if out.get("updated") \
                else "existing"
            return {"outcome": word, "record": out["record"]}
        return {"outcome": "ok", "record": out} if out is not None else {"outcome": "ok"}
    problem = {}
    try:
        problem = json.loads(p.stdout)
    except ValueError:
        pass
    if p.returncode == 3:
        # the problem names the index as declared, its type apart; the cases say "type.index"
        index = problem.get("index")
        if index and problem.get("record_type"):
            index = problem["record_type"] + "." + index
        return {"outcome": "conflict", "index": index,
                "detail": problem.get("detail", "")}
    if p.returncode == 4:
        return {"outcome": "notfound", "detail": problem.get("detail", "")}
    if p.returncode == 5:
        return {"outcome": "invalid", "detail": problem.get("detail", "")}
    return {"outcome": "error", "detail": "exit %d: %s %s" % (p.returncode, p.stdout, p.stderr)}


def udb_contents(db, typ):
    p = uniqdb(["scan", db, typ])
    if p.returncode != 0:
        raise CaseError("uniqdb scan %s: exit %d: %s" % (typ, p.returncode, p.stderr))
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


# ---- PostgreSQL side -------------------------------------------------------------

def pg_index_name(ti, constraint):
    if constraint == ti.name + "_pkey":
        return ti.name + "." + ti.key
    return constraint


def row_of(t):
    return S.SQL("jsonb_strip_nulls(to_jsonb({}.*))").format(S.Identifier(t))


def col(f, nocase):
    """An index field as the export writes it: a nocase one is lower(f COLLATE "C")."""
    if nocase:
        return S.SQL('lower({} COLLATE "C")').format(S.Identifier(f))
    return S.Identifier(f)


def val(v, nocase):
    if nocase and v is not None:
        return S.SQL('lower({} COLLATE "C")').format(S.Literal(v))
    return S.Literal(v)


def index_cols(tg):
    return [col(f, nc) for f, nc in zip(tg["fields"], tg["nocase"])]


def conflict_target(ti, index):
    tg = ti.target(index)
    # an expression in an inference target is written in parentheses
    q = S.SQL("({})").format(S.SQL(", ").join(
        S.SQL("({})").format(c) if nc else c for c, nc in zip(index_cols(tg), tg["nocase"])))
    if tg["where"]:
        q = q + S.SQL(" WHERE ") + S.SQL(tg["where"])
    return q


def holder_query(ti, index, row):
    """The row that holds row's values in unique index `index`, as SQL."""
    tg = ti.target(index)
    conds = []
    for f, nc in zip(tg["fields"], tg["nocase"]):
        op = " IS NOT DISTINCT FROM " if tg["nnd"] else " = "
        conds.append(S.SQL("{}" + op + "{}").format(col(f, nc), val(row.get(f), nc)))
    if tg["where"]:
        conds.append(S.SQL("(") + S.SQL(tg["where"]) + S.SQL(")"))
    return S.SQL("SELECT {} FROM {} WHERE {}").format(
        row_of(ti.name), S.Identifier(ti.name), S.SQL(" AND ").join(conds))


def insert_sql(ti, row):
    if not row:
        return S.SQL("INSERT INTO {} DEFAULT VALUES").format(S.Identifier(ti.name))
    return S.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        S.Identifier(ti.name), S.SQL(", ").join(S.Identifier(c) for c in row),
        S.SQL(", ").join(S.Literal(v) for v in row.values()))


def pg_statement(cur, st, ti):
    v, t = st["verb"], st["type"]
    T = S.Identifier(t)
    one = None
    try:
        if v == "insert":
            cur.execute(insert_sql(ti, st["rec"]) + S.SQL(" RETURNING ") + row_of(t))
            return {"outcome": "ok", "record": cur.fetchone()[0]}
        if v == "or_get":
            cur.execute(insert_sql(ti, st["rec"]) + S.SQL(" ON CONFLICT ") +
                        conflict_target(ti, st["index"]) +
                        S.SQL(" DO NOTHING RETURNING ") + row_of(t))
            one = cur.fetchone()
            if one:
                return {"outcome": "created", "record": one[0]}
            cur.execute(holder_query(ti, st["index"], st["rec"]))
            rows = cur.fetchall()
            if len(rows) != 1:
                raise CaseError("line %d: PostgreSQL did nothing but %d rows hold the key"
                                % (st["line"], len(rows)))
            return {"outcome": "existing", "record": rows[0][0]}
        if v == "upsert":
            row = dict(st.get("on_insert", {}))
            row.update(st["rec"])
            sets = [c for c in st["rec"] if c != ti.key] or [ti.key]
            cur.execute(insert_sql(ti, row) + S.SQL(" ON CONFLICT ") +
                        conflict_target(ti, st["index"]) + S.SQL(" DO UPDATE SET ") +
                        S.SQL(", ").join(S.SQL("{} = EXCLUDED.{}").format(
                            S.Identifier(c), S.Identifier(c)) for c in sets) +
                        S.SQL(" RETURNING ") + row_of(t) + S.SQL(", xmax = 0"))
            one = cur.fetchone()
            return {"outcome": "created" if one[1] else "updated", "record": one[0]}
        if v in ("update", "merge"):
            rec = st["rec"]
            cols = list(rec) if v == "merge" else [c for c in ti.fields
                                                   if c != ti.key or c in rec]
            if not cols:
                cols = [ti.key]
                rec = {ti.key: st["key"]}
            cur.execute(S.SQL("UPDATE {} SET {} WHERE {} = {} RETURNING {}").format(
                T, S.SQL(", ").join(S.SQL("{} = {}").format(S.Identifier(c),
                                                            S.Literal(rec.get(c)))
                                    for c in cols),
                S.Identifier(ti.key), S.Literal(st["key"]), row_of(t)))
            one = cur.fetchone()
            return {"outcome": "ok", "record": one[0]} if one else {"outcome": "notfound"}
        if v == "delete":
            cur.execute(S.SQL("DELETE FROM {} WHERE {} = {}").format(
                T, S.Identifier(ti.key), S.Literal(st["key"])))
            return {"outcome": "ok" if cur.rowcount == 1 else "notfound"}
        if v == "scan":
            tg = ti.target(st["index"], unique=False)
            conds = [S.SQL("(") + S.SQL(tg["where"]) + S.SQL(")")] if tg["where"] else []
            for f, nc, v in zip(tg["fields"], tg["nocase"], st.get("values", [])):
                conds.append(S.SQL("{} = {}").format(col(f, nc), val(v, nc)))
            cur.execute(S.SQL("SELECT {} FROM {}{} ORDER BY {}").format(
                row_of(t), T, S.SQL(" WHERE ") + S.SQL(" AND ").join(conds) if conds else S.SQL(""),
                S.SQL(", ").join(index_cols(tg) + [S.Identifier(ti.key)])))
            return {"outcome": "ok", "records": [r[0] for r in cur.fetchall()]}
        if v == "get":
            cur.execute(S.SQL("SELECT {} FROM {} WHERE {} = {}").format(
                row_of(t), T, S.Identifier(ti.key), S.Literal(st["key"])))
        else:
            tg = ti.target(st["index"])
            if len(st["values"]) != len(tg["fields"]):
                raise CaseError("line %d: wrong number of values" % st["line"])
            cur.execute(holder_query(ti, st["index"], dict(zip(tg["fields"], st["values"]))))
        rows = cur.fetchall()
        return {"outcome": "ok", "record": rows[0][0]} if rows else {"outcome": "notfound"}
    except psycopg2.Error as e:
        code = e.pgcode or ""
        if code == "23505":
            return {"outcome": "conflict", "index": pg_index_name(ti, e.diag.constraint_name),
                    "detail": e.pgerror.strip()}
        if code[:2] in ("22", "23"):
            return {"outcome": "invalid", "detail": e.pgerror.strip()}
        return {"outcome": "error", "detail": "%s %s" % (code, (e.pgerror or str(e)).strip())}


def pg_contents(cur, typ):
    cur.execute(S.SQL("SELECT {} FROM {}").format(row_of(typ), S.Identifier(typ)))
    return [r[0] for r in cur.fetchall()]


# ---- comparing -------------------------------------------------------------------

def show(res):
    s = res["outcome"]
    if res["outcome"] == "conflict":
        s += " " + str(res.get("index"))
    for k in ("record", "records"):
        if k in res:
            s += " " + json.dumps(res[k], sort_keys=True)
    if res.get("detail"):
        s += "  (" + res["detail"].splitlines()[0] + ")"
    return s


def matches(got, want):
    if got["outcome"] != want["outcome"]:
        return False
    if want["outcome"] == "conflict" and got.get("index") != want["index"]:
        return False
    for k in ("record", "records"):
        if k in want and got.get(k) != want[k]:
            return False
    return True


def canon(rows):
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


class Stats:
    def __init__(self):
        self.cases = self.statements = self.agreements = self.deliberate = 0
        self.pg_backend = 0  # statements also run on uniqdb on PostgreSQL
        self.tags = set()
        self.failures = []

    def add(self, other):
        self.cases += other.cases
        self.statements += other.statements
        self.agreements += other.agreements
        self.deliberate += other.deliberate
        self.pg_backend += other.pg_backend
        self.tags |= other.tags
        self.failures += other.failures


def run_case(case, cur, tmp, stats):
    name = case["name"]
    fails = []
    db = os.path.join(tmp, re.sub(r"\W", "_", name))
    schema_file = db + ".json"
    with open(schema_file, "w", encoding="utf-8") as f:
        json.dump(case["schema"], f)
    p = uniqdb(["init", db, schema_file])
    if p.returncode != 0:
        raise CaseError("uniqdb init: %s" % p.stderr)
    pgschema = "c_" + re.sub(r"\W", "_", name)
    p = uniqdb(["export", "--postgres", db, "--schema-only", "--schema", pgschema])
    if p.returncode != 0:
        raise CaseError("uniqdb export: %s" % p.stderr)
    cur.execute(p.stdout)
    cur.execute(S.SQL("SET search_path TO {}").format(S.Identifier(pgschema)))
    types = {n: TypeInfo(n, t) for n, t in case["schema"]["types"].items()}
    url = None
    if PG_BACKEND:
        # the third party: the same uniqdb commands on a database on the server
        url_schema = "u_" + re.sub(r"\W", "_", name)
        url = "postgresql:///%s?schema=%s" % (os.environ.get("PGDATABASE", "uniqdb_test"),
                                              url_schema)
        url_schema_file = schema_file
        if PG_CONTROL:
            loose = json.loads(json.dumps(case["schema"]))
            for t in loose["types"].values():
                t.pop("unique", None)
            url_schema_file = db + ".loose.json"
            with open(url_schema_file, "w", encoding="utf-8") as f:
                json.dump(loose, f)
        p = uniqdb(["init", url, url_schema_file])
        if p.returncode != 0:
            raise CaseError("uniqdb init %s: %s" % (url, p.stderr))

    for st in case["statements"]:
        if st["type"] not in types:
            raise CaseError("line %d: no type %s" % (st["line"], st["type"]))
        ti = types[st["type"]]
        u = udb_statement(db, st, ti)
        g = pg_statement(cur, st, ti)
        ex = st["expect"]
        stats.statements += 1
        ok_u, ok_g = matches(u, ex["uniqdb"]), matches(g, ex["postgres"])
        if url:
            up = udb_statement(url, st, ti)
            stats.pg_backend += 1
            # a message may name the database: compare with the names swapped
            if json.dumps(up, sort_keys=True).replace(json.dumps(url)[1:-1], "DB") != \
                    json.dumps(u, sort_keys=True).replace(json.dumps(db)[1:-1], "DB"):
                fails.append("line %d: %s\n      uniqdb on LMDB       %s\n"
                             "      uniqdb on PostgreSQL %s   <-- differs"
                             % (st["line"], st["text"], show(u), show(up)))
        if ok_u and ok_g:
            if ex["differs"]:
                stats.deliberate += 1
                stats.tags.add(ex["differs"])
            else:
                stats.agreements += 1
            continue
        msg = "line %d: %s\n      expected %s" % (st["line"], st["text"], show(ex["uniqdb"]))
        if ex["differs"]:
            msg += " | postgres %s (differs: %s)" % (show(ex["postgres"]), ex["differs"])
        msg += "\n      uniqdb   %s%s\n      postgres %s%s" % (
            show(u), "" if ok_u else "   <-- wrong", show(g), "" if ok_g else "   <-- wrong")
        fails.append(msg)

    for typ in types:
        u, g = canon(udb_contents(db, typ)), canon(pg_contents(cur, typ))
        if url:
            up = canon(udb_contents(url, typ))
            # a message may name the database: compare with the names swapped
            if json.dumps(up, sort_keys=True).replace(json.dumps(url)[1:-1], "DB") != \
                    json.dumps(u, sort_keys=True).replace(json.dumps(db)[1:-1], "DB"):
                fails.append("contents of %s differ:\n      uniqdb on LMDB       %s\n"
                             "      uniqdb on PostgreSQL %s" % (typ, u, up))
        want = case["contents"].get(typ)
        if want is None:
            if u != g:
                fails.append("contents of %s differ:\n      uniqdb   %s\n      postgres %s"
                             % (typ, u, g))
            continue
        if want["differs"]:
            stats.tags.add(want["differs"])
        for side, got in (("uniqdb", u), ("postgres", g)):
            if got != canon(want[side]):
                fails.append("contents of %s on %s:\n      expected %s\n      got      %s"
                             % (typ, side, canon(want[side]), got))
    cur.execute("SET search_path TO public")
    cur.execute(S.SQL("DROP SCHEMA {} CASCADE").format(S.Identifier(pgschema)))
    if url:
        cur.execute(S.SQL("DROP SCHEMA {} CASCADE").format(S.Identifier(url_schema)))
    stats.cases += 1
    if fails:
        stats.failures.append("case %s (line %d, from %s):\n    %s"
                              % (name, case["line"], case["from"], "\n    ".join(fails)))


def check_docs(cases, tags_used):
    """Every case is listed in SOURCES.md; every tag in README's section."""
    problems = []
    sources = open(SOURCES, encoding="utf-8").read()
    for c in cases:
        if "`%s`" % c["name"] not in sources:
            problems.append("SOURCES.md does not list case `%s`" % c["name"])
    readme = open(README, encoding="utf-8").read()
    m = re.search(r"^## Differences from PostgreSQL\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    if not m:
        problems.append("README.md has no '## Differences from PostgreSQL' section")
    else:
        for tag in sorted(tags_used):
            if "`%s`" % tag not in m.group(1):
                problems.append("README's Differences from PostgreSQL does not list `%s`" % tag)
    return problems


def main():
    t0 = time.monotonic()
    cases = parse_cases(CASES)
    all_tags = {st["expect"]["differs"] for c in cases for st in c["statements"]
                if st["expect"]["differs"]}
    all_tags |= {w["differs"] for c in cases for w in c["contents"].values() if w["differs"]}
    doc_problems = check_docs(cases, all_tags)
    if ONLY:
        cases = [c for c in cases if ONLY in c["name"]]
    # Cases are independent (own uniqdb database, own PostgreSQL schema), so a
    # few run at once: most of the time goes to starting `uniqdb` processes.
    local = threading.local()
    conns = []
    lock = threading.Lock()

    def cursor():
        if not hasattr(local, "cur"):
            conn = psycopg2.connect("")
            conn.autocommit = True
            with lock:
                conns.append(conn)
            local.cur = conn.cursor()
        return local.cur

    def one(c):
        st = Stats()
        try:
            run_case(c, cursor(), tmp, st)
        except CaseError as e:
            st.failures.append("case %s (line %d): %s" % (c["name"], c["line"], e))
        except psycopg2.Error as e:
            st.failures.append("case %s (line %d): PostgreSQL: %s" % (c["name"], c["line"], e))
        return st

    stats = Stats()
    tmp = tempfile.mkdtemp(prefix="uniqdb-conformance.")
    try:
        cur = cursor()
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
        with concurrent.futures.ThreadPoolExecutor(JOBS) as pool:
            for st in pool.map(one, cases):   # results in case order
                stats.add(st)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for conn in conns:
            conn.close()
    for f in stats.failures + doc_problems:
        print("FAIL " + f, file=sys.stderr)
    print("conformance: PostgreSQL %s; %d cases, %d statements compared: %d agree, "
          "%d differ as documented (%s); %d failing cases, %d doc problems; %.1f s"
          % (version, stats.cases, stats.statements, stats.agreements, stats.deliberate,
             ", ".join(sorted(stats.tags)) or "none", len(stats.failures), len(doc_problems),
             time.monotonic() - t0))
    if PG_BACKEND:
        print("conformance: uniqdb on PostgreSQL ran the same %d statements (each failing case "
              "above names any that differed from LMDB)" % stats.pg_backend)
    # each documentation problem counts as one failed check
    print("%d passed, %d failed" % (len(cases) - len(stats.failures),
                                    len(stats.failures) + len(doc_problems)))
    return 1 if stats.failures or doc_problems else 0


if __name__ == "__main__":
    sys.exit(main())
