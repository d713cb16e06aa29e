#!/usr/bin/env python3
"""corrupt_fuzz.py -- the corruption fuzzer (suite `corrupt`, issue 23).

Builds a real database with the `uniqdb` tool (three types with unique,
partial unique and non-unique indexes, a sequence, records with big values so
that there are overflow pages, enough records for branch pages, deletes so
that LMDB's free list is not empty), then, for UDB_CORRUPT_ITERS seeded
iterations, copies it, flips bytes in one page of data.mdb (2 bytes; every
third iteration 8 bytes of the page header and node offsets) and runs
`uniqdb check`, `uniqdb dump`, `uniqdb dump --salvage`, `uniqdb get`,
`uniqdb scan`, `uniqdb stat` (it walks LMDB's free list), `uniqdb backup`
(the plain copy, a byte copy) and `libscan` (the library alone: open, every
scan, the sequences) on the copy.  Before that, two damages of issue 23 made exactly:
a branch page that leads its cursor back over keys (scans must say so, not
hand out records twice) and a damaged "format" key in __meta (not format 1:
put must refuse and write nothing), and a branch page pointing past the end
of the file (check lists LMDB's MDB_PAGE_NOTFOUND and goes on, exit 6).

The pages are found by walking LMDB's B-trees from the newest meta page (the
page header and node layout of LMDB 0.9's mdb.c), so that the iterations go
round every kind of page: the two meta pages, branch, leaf and overflow pages
of every named database, the main database's and the free list's pages.

Every command must end by itself (no signal, no hang: a timeout) with exit
0, 1 or 6 (get: also 4) and, when not 0, a message (stderr, or check's
problem lines on stdout); a dump that
exits 0 must hold every record the database holds when check says ok.

libscan runs LMDB inside the test process with no guard: LMDB trusts its
pages and may crash on some of them, which README ("Damaged files") says.
Its signals are counted and printed, not failed; a hang, an exit code
outside 0/1/6, or more records than exist (a loop) fails.

  corrupt_fuzz.py UNIQDB LIBSCAN [--no-guard]

UDB_CORRUPT_ITERS (default 30; 12 for the negative control) and
UDB_CORRUPT_SEED (default 1) scale and seed it.  --no-guard (the negative control, should_fail) sets
UNIQDB_NO_GUARD=1, which makes check and dump read in their own process:
the fuzzer must then see the crashes the guard turns into reports.
"""
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

PSIZE = 4096
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA, F_SUBDATA = 0x01, 0x02

SCHEMA = {
    "types": {
        "acct": {
            "key": "id",
            "fields": {
                "id": {"type": "uint", "auto": True},
                "email": {"type": "str", "required": True},
                "team": {"type": "str"},
                "state": {"type": "enum", "values": ["on", "off"], "required": True},
                "bio": {"type": "str"},
            },
            "unique": {
                "email": {"fields": ["email"]},
                "lead": {"fields": ["team"], "where": "state IN ('on')"},
            },
            "indexes": {"by_team": {"fields": ["team", "email"]}},
        },
        "evt": {
            "key": "id",
            "fields": {
                "id": {"type": "uint", "auto": True},
                "user": {"type": "str", "required": True},
                "at": {"type": "int", "required": True},
                "note": {"type": "any"},
            },
            "unique": {"slot": {"fields": ["user", "at"]}},
            "indexes": {"by_at": {"fields": ["at"]}},
        },
        "tag": {
            "key": "name",
            "fields": {"name": {"type": "str"}, "n": {"type": "int"}},
        },
    }
}
SCANS = ["acct:email,lead,by_team", "evt:slot,by_at", "tag"]
N_ACCT, N_EVT, N_TAG, N_BIG, N_DEL = 900, 1200, 300, 6, 12


def run(argv, timeout, env=None):
    """(exit code or -signal or None for a hang, stdout, stderr, seconds)"""
    t = time.monotonic()
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr, time.monotonic() - t
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or b"", e.stderr or b"", time.monotonic() - t


def build(uniqdb, d):
    schema = os.path.join(os.path.dirname(d), "schema.json")
    with open(schema, "w") as f:
        json.dump(SCHEMA, f)
    lines = [json.dumps({"schema": SCHEMA})]
    for i in range(1, N_ACCT + 1):
        rec = {"id": i, "email": "u%05d@example.org" % i, "team": "t%03d" % (i % 150),
               "state": "on" if i % 150 == i else "off"}
        if i <= N_BIG:
            rec["bio"] = ("big value %d " % i) * 1200      # ~15 KB: overflow pages
        lines.append(json.dumps({"type": "acct", "record": rec}))
    for i in range(1, N_EVT + 1):
        lines.append(json.dumps({"type": "evt", "record": {
            "id": i, "user": "u%03d" % (i % 97), "at": i * 7 - 4000,
            "note": {"k": [i, "x" * (i % 40)]}}}))
    for i in range(N_TAG):
        lines.append(json.dumps({"type": "tag", "record": {"name": "tag-%04d" % i, "n": i}}))
    lines.append(json.dumps({"sequences": {"jobs": 42}}))
    data = ("\n".join(lines) + "\n").encode()
    p = subprocess.run([uniqdb, "load", "--no-end", d], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    if p.returncode != 0:
        sys.exit("load failed: %s" % p.stderr.decode(errors="replace"))
    # deletes in their own commits: LMDB's free list gets entries
    for i in range(N_DEL):
        p = subprocess.run([uniqdb, "delete", d, "evt", str(N_EVT - i)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            sys.exit("delete failed: %s" % p.stderr.decode(errors="replace"))
    return {"acct": N_ACCT, "evt": N_EVT - N_DEL, "tag": N_TAG}


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def classify(data):
    """{pgno: label}: every page reachable from the newest meta page, by
    kind and database ("leaf t:acct", "overflow t:acct", "branch __free",
    ...), plus "meta0"/"meta1"."""
    labels = {0: "meta0", 1: "meta1"}

    def meta(n):
        base = n * PSIZE + 16
        # MDB_meta: magic, version, address, mapsize, dbs[2] (48 bytes each), last_pg, txnid
        return u64(data, base + 24 + 96 + 8), base

    t0, b0 = meta(0)
    t1, b1 = meta(1)
    base = b0 if t0 >= t1 else b1
    free_root = u64(data, base + 24 + 40)
    main_root = u64(data, base + 24 + 48 + 40)
    npages = len(data) // PSIZE

    def walk(pgno, name, depth=0):
        if pgno >= npages or pgno in labels or depth > 32 or pgno == 0xFFFFFFFFFFFFFFFF:
            return
        off = pgno * PSIZE
        flags = u16(data, off + 10)
        lower = u16(data, off + 12)
        n = max(0, (lower - 16) // 2)
        if flags & P_BRANCH:
            labels[pgno] = "branch " + name
            for i in range(min(n, 500)):
                node = u16(data, off + 16 + 2 * i)
                if node + 8 > PSIZE:
                    continue
                lo, hi, fl = struct.unpack_from("<HHH", data, off + node)
                walk(lo | (hi << 16) | (fl << 32), name, depth + 1)
        elif flags & P_LEAF:
            labels[pgno] = "leaf " + name
            for i in range(min(n, 500)):
                node = u16(data, off + 16 + 2 * i)
                if node + 8 > PSIZE:
                    continue
                lo, hi, fl, ksize = struct.unpack_from("<HHHH", data, off + node)
                key = data[off + node + 8: off + node + 8 + ksize]
                dpos = off + node + 8 + ksize
                if fl & F_BIGDATA:
                    opg = u64(data, dpos)
                    if opg < npages:
                        labels.setdefault(opg, "overflow " + name)
                elif fl & F_SUBDATA and name == "main":
                    walk(u64(data, dpos + 40), key.decode(errors="replace"), depth + 1)

    walk(main_root, "main")
    walk(free_root, "__free")
    return labels


def flip(data, pgno, rnd, heavy):
    """Flip 2 bytes of page pgno, in its header and node offsets (where a
    flip hurts most) or anywhere in it; heavy: 8 bytes of the header and
    node offsets (LMDB then reads garbage: the crashes the guard is for).
    Returns the new file and the offsets."""
    buf = bytearray(data)
    offs = []
    for _ in range(8 if heavy else 2):
        if heavy or rnd.random() < 0.5:
            o = pgno * PSIZE + rnd.randrange(8, 48)
        else:
            o = pgno * PSIZE + rnd.randrange(PSIZE)
        buf[o] ^= rnd.randrange(1, 256)
        offs.append(o)
    return bytes(buf), offs


def leaf_nodes(data, pgno):
    """[(node offset in the file, flags, key)] of a leaf or branch page."""
    off = pgno * PSIZE
    n = (u16(data, off + 12) - 16) // 2
    out = []
    for i in range(n):
        node = off + u16(data, off + 16 + 2 * i)
        lo, hi, fl, ksize = struct.unpack_from("<HHHH", data, node)
        out.append((node, fl, data[node + 8: node + 8 + ksize]))
    return out


def targeted(uniqdb, libscan, orig, data, kinds, counts, env, top):
    """Damages of the issue, made exactly; returns the problems."""
    problems = []
    # 1. a branch page whose last child pointer leads back to its first child:
    #    LMDB's cursor walks the first leaf twice, keys go backwards.  A scan
    #    must say so (exit 6), not hand out records twice; dump --salvage must
    #    not write one twice.
    root = kinds["branch t:evt"][0]
    nodes = leaf_nodes(data, root)
    buf = bytearray(data)
    buf[nodes[-1][0]: nodes[-1][0] + 4] = data[nodes[0][0]: nodes[0][0] + 4]
    d = os.path.join(top, "loop")
    shutil.copytree(orig, d)
    with open(os.path.join(d, "data.mdb"), "wb") as f:
        f.write(bytes(buf))
    rc, out, err, _ = run([libscan, d, "evt"], 60, env)
    n = int(out.split()[2]) if out.split()[2:3] else -1
    if rc != 6 or b"out of key order" not in err:
        problems.append("branch loop: libscan exit %s with %d evt records of %d (want 6, "
                        "\"out of key order\"): %s" % (rc, n, counts["evt"],
                                                        err.decode(errors="replace")[:200]))
    rc, out, err, _ = run([uniqdb, "scan", d, "evt"], 60, env)
    if rc != 6 or len(out.splitlines()) > counts["evt"]:
        problems.append("branch loop: uniqdb scan exit %s with %d lines" %
                        (rc, len(out.splitlines())))
    rc, out, err, _ = run([uniqdb, "dump", "--salvage", d], 120, env)
    lines = [ln for ln in out.splitlines() if ln.startswith(b'{"type"')]
    if rc != 6 or len(set(lines)) != len(lines):
        problems.append("branch loop: dump --salvage exit %s, %d records, %d distinct" %
                        (rc, len(lines), len(set(lines))))
    # 2. __meta's "format" key damaged (issue 23: taken for format 1, and put
    #    crashed in the "upgrade"): every command says damaged, and put
    #    writes nothing.
    meta = kinds["leaf __meta"][0]
    buf = bytearray(data)
    for node, fl, key in leaf_nodes(data, meta):
        if key == b"format":
            buf[node + 8] ^= 0x01          # "format" -> "gormat"
    d = os.path.join(top, "meta")
    shutil.copytree(orig, d)
    with open(os.path.join(d, "data.mdb"), "wb") as f:
        f.write(bytes(buf))
    before = bytes(buf)
    rc, out, err, _ = run([uniqdb, "put", d, "tag", '{"name": "new", "n": 1}'], 60, env)
    with open(os.path.join(d, "data.mdb"), "rb") as f:
        after = f.read()
    if rc != 6 or b"damaged" not in err or after[:len(before)] != before:
        problems.append("damaged format key: put exit %s (want 6, \"damaged\"), data.mdb %s: %s"
                        % (rc, "unchanged" if after[:len(before)] == before else "WRITTEN",
                           err.decode(errors="replace")[:200]))
    rc, out, err, _ = run([uniqdb, "check", d], 60, env)
    if rc != 6:
        problems.append("damaged format key: check exit %s (want 6)" % rc)
    # 3. a branch page pointing past the end of the file: LMDB's
    #    MDB_PAGE_NOTFOUND.  check lists it and goes on with the indexes and
    #    the other types (exit 6), instead of stopping at it with exit 1.
    root = kinds["branch t:acct"][0]
    nodes = leaf_nodes(data, root)
    buf = bytearray(data)
    struct.pack_into("<HH", buf, nodes[-1][0], 0xFFF0, 0x00FF)
    d = os.path.join(top, "notfound")
    shutil.copytree(orig, d)
    with open(os.path.join(d, "data.mdb"), "wb") as f:
        f.write(bytes(buf))
    rc, out, err, _ = run([uniqdb, "check", d], 60, env)
    text = out.decode(errors="replace")
    if (rc != 6 or "MDB_PAGE_NOTFOUND" not in text or "acct.email" not in text or
            "problems found" not in text):
        problems.append("page past the end: check exit %s (want 6, MDB_PAGE_NOTFOUND and the "
                        "acct.email entries listed): %s %s" % (
                            rc, text[-300:], err.decode(errors="replace")[:200]))
    return problems


def main():
    uniqdb, libscan = sys.argv[1], sys.argv[2]
    control = "--no-guard" in sys.argv
    # the negative control needs only to see crashes: a few iterations
    iters = int(os.environ.get("UDB_CORRUPT_ITERS", "12" if control else "30"))
    seed = int(os.environ.get("UDB_CORRUPT_SEED", "1"))
    env = dict(os.environ, UNIQDB_STALL_SECONDS="5")
    if control:
        env["UNIQDB_NO_GUARD"] = "1"
    timeout = 40
    top = tempfile.mkdtemp(prefix="uniqdb-corrupt-")
    t_start = time.monotonic()
    try:
        orig = os.path.join(top, "orig")
        counts = build(uniqdb, orig)
        total = sum(counts.values())
        with open(os.path.join(orig, "data.mdb"), "rb") as f:
            data = f.read()
        labels = classify(data)
        kinds = {}
        for pg, lab in sorted(labels.items()):
            kinds.setdefault(lab, []).append(pg)
        print("pages: %d; kinds: %s" % (len(data) // PSIZE,
              ", ".join("%s %d" % (k, len(v)) for k, v in sorted(kinds.items()))))
        for want in ("meta0", "meta1", "branch t:acct", "leaf t:acct", "overflow t:acct",
                     "leaf __free", "leaf main", "leaf u:acct:email", "leaf i:evt:by_at",
                     "leaf __seq", "leaf __meta"):
            if want not in kinds:
                print("FAIL: no page of kind %r in the database the fuzzer built" % want)
                return 1
        problems = targeted(uniqdb, libscan, orig, data, kinds, counts, env, top)
        order = sorted(kinds)
        rnd = random.Random(seed)
        signals_lib, stats = 0, {"check6": 0, "check0": 0, "dump6": 0,
                                               "salvaged": 0, "dumped": 0}
        for it in range(iters):
            kind = order[it % len(order)]
            pg = rnd.choice(kinds[kind])
            heavy = it % 3 == 2
            bad, offs = flip(data, pg, rnd, heavy)
            d = os.path.join(top, "it%d" % it)
            shutil.copytree(orig, d)
            with open(os.path.join(d, "data.mdb"), "wb") as f:
                f.write(bad)
            where = "iteration %d (seed %d): %s page %d, bytes at %s" % (
                it, seed, kind, pg, ", ".join(sorted(set(str(o) for o in offs))))
            results = {}
            for name, argv in (
                    ("check", [uniqdb, "check", d]),
                    ("dump", [uniqdb, "dump", d]),
                    ("salvage", [uniqdb, "dump", "--salvage", d]),
                    ("get", [uniqdb, "get", d, "acct", "5"]),
                    ("scan", [uniqdb, "scan", d, "evt", "by_at"]),
                    ("stat", [uniqdb, "stat", d]),
                    ("backup", [uniqdb, "backup", d, d + ".copy"]),
                    ("libscan", [libscan, d] + SCANS)):
                rc, out, err, secs = run(argv, timeout, env)
                results[name] = (rc, out, err)
                ok_codes = (0, 1, 4, 6) if name == "get" else (0, 1, 6)
                what = "%s: %s" % (where, name)
                if rc is None:
                    problems.append("%s: no answer in %d s (a hang)" % (what, timeout))
                elif rc < 0 and name == "libscan":
                    signals_lib += 1
                elif rc < 0:
                    problems.append("%s: killed by %s" % (what, signal.Signals(-rc).name))
                elif rc not in ok_codes:
                    problems.append("%s: exit %d" % (what, rc))
                elif rc != 0 and not err.strip() and not out.strip():
                    problems.append("%s: exit %d without a message" % (what, rc))
            # no silent partial answers: check ok means dump has every record
            crc, _, _ = results["check"]
            drc, dout, _ = results["dump"]
            if crc == 0:
                stats["check0"] += 1
            elif crc == 6:
                stats["check6"] += 1
            if drc == 6:
                stats["dump6"] += 1
            if drc == 0:
                recs = sum(1 for ln in dout.splitlines() if ln.startswith(b'{"type"'))
                if crc == 0 and recs != total:
                    problems.append("%s: check ok and dump exit 0 with %d of %d records" %
                                    (where, recs, total))
                if crc != 0 and recs != total:
                    problems.append("%s: check found damage, yet dump exit 0 with %d of %d "
                                    "records" % (where, recs, total))
            # --salvage writes at least what dump wrote, each record once, and
            # all of them when it says ok
            src, sout, _ = results["salvage"]
            if src in (0, 6):
                lines = [ln for ln in sout.splitlines() if ln.startswith(b'{"type"')]
                stats["salvaged"] += len(lines)
                if drc in (0, 6):
                    dumped = sum(1 for ln in dout.splitlines() if ln.startswith(b'{"type"'))
                    stats["dumped"] += dumped
                    if len(lines) < dumped:
                        problems.append("%s: dump --salvage wrote %d records, dump %d" %
                                        (where, len(lines), dumped))
                if len(set(lines)) != len(lines):
                    problems.append("%s: dump --salvage wrote a record twice" % where)
                if src == 0 and len(lines) != total:
                    problems.append("%s: dump --salvage exit 0 with %d of %d records" %
                                    (where, len(lines), total))
            lrc, lout, _ = results["libscan"]
            for ln in lout.decode(errors="replace").splitlines():
                parts = ln.split()
                if len(parts) == 3 and int(parts[2]) > counts.get(parts[0], 0) + 10:
                    problems.append("%s: libscan: %s %s gave %s records of %d (a loop?)" %
                                    (where, parts[0], parts[1], parts[2], counts[parts[0]]))
            shutil.rmtree(d, ignore_errors=True)
            shutil.rmtree(d + ".copy", ignore_errors=True)
        secs = time.monotonic() - t_start
        print("%d iterations in %.1f s (seed %d): check ok %d, check found damage %d, "
              "dump exit 6 %d; records written: by dump %d, by dump --salvage %d (of %d "
              "per copy, %d in all); library scans killed inside LMDB: %d" % (
                  iters, secs, seed, stats["check0"], stats["check6"], stats["dump6"],
                  stats["dumped"], stats["salvaged"], total, total * iters, signals_lib))
        for p in problems:
            print("FAIL:", p)
        print("%d problems" % len(problems))
        return 1 if problems else 0
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
