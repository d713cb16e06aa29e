#!/usr/bin/env python3
"""Bulk-load cost: N booking records through `uniqdb load` (default and --atomic)
and through `sqlite3 .import` of the same rows, with what each wrote.

    tools/bench/bulk_load.py UNIQDB [N] [WORKDIR]

For each run: wall time, records/s, the bytes the process handed to write()
(wchar in /proc/PID/io, read from the exited process before it is reaped),
the device's written sectors over the run and a sync (/proc/diskstats: every
process on that disk counts, so run it on a quiet machine), and the size of
the database file.  (write_bytes in /proc/PID/io is not used: on kernels whose
page cache uses large folios it counts a whole folio per dirtied page.)
"""
import json, os, random, shutil, subprocess, sys, tempfile, time

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scenarios.json")
SQL = """CREATE TABLE booking (id INTEGER PRIMARY KEY, psychologist TEXT NOT NULL,
  date TEXT NOT NULL, time TEXT NOT NULL, status TEXT NOT NULL
  CHECK (status IN ('pending', 'confirmed', 'cancelled', 'completed')), user TEXT);
CREATE UNIQUE INDEX active_slot ON booking (psychologist, date, time)
  WHERE status IN ('pending', 'confirmed');
CREATE INDEX by_user ON booking (user, date);
"""


def generate(n, base):
    """The same rows as NDJSON (a dump) and CSV; every (psychologist, date, time) is distinct."""
    booking = json.load(open(SCHEMA))["types"]["booking"]
    r = random.Random(42)
    st = ["pending", "confirmed", "cancelled", "completed"]
    with open(base + ".ndjson", "w") as nd, open(base + ".csv", "w") as cv:
        schema = {"schema": {"types": {"booking": booking}}}
        nd.write(json.dumps(schema, separators=(",", ":")) + "\n")
        for i in range(1, n + 1):
            k = i // 2000
            rec = {"id": i, "psychologist": "psy%04d" % (i % 2000),
                   "date": "2026-%02d-%02d" % (1 + k % 12, 1 + (k // 12) % 28),
                   "time": "%02d:%02d" % (8 + (k // 336) % 10, (k * 7) % 60),
                   "status": st[i % 4], "user": "user%06d" % r.randrange(200000)}
            nd.write(json.dumps({"type": "booking", "record": rec}, separators=(",", ":")) + "\n")
            cv.write("%(id)d,%(psychologist)s,%(date)s,%(time)s,%(status)s,%(user)s\n" % rec)
        # a dump ends with its end line, which load checks
        nd.write(json.dumps({"end": {"records": {"booking": n}, "sequences": 0}},
                            separators=(",", ":")) + "\n")


def device_written(path):
    st = os.stat(path)
    for line in open("/proc/diskstats"):
        f = line.split()
        if int(f[0]) == os.major(st.st_dev) and int(f[1]) == os.minor(st.st_dev):
            return int(f[9]) * 512
    return 0


def measure(argv, cwd):
    os.sync()
    w0, t0 = device_written(cwd), time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        os.execvp(argv[0], argv)
    fd = os.open("/proc/%d/io" % pid, os.O_RDONLY)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    secs = time.monotonic() - t0
    io = dict(l.split(": ") for l in os.pread(fd, 4096, 0).decode().splitlines())
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("%s: exit %d" % (" ".join(argv), os.waitstatus_to_exitcode(status)))
    os.sync()
    return secs, int(io["wchar"]), device_written(cwd) - w0


def main():
    uniqdb = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    work = tempfile.mkdtemp(prefix="uniqdb-bulk-", dir=sys.argv[3] if len(sys.argv) > 3 else None)
    try:
        generate(n, os.path.join(work, "b"))
        runs = [("uniqdb load", [uniqdb, "load", "u1", "b.ndjson"], "u1/data.mdb"),
                ("uniqdb load --atomic", [uniqdb, "load", "--atomic", "u2", "b.ndjson"],
                 "u2/data.mdb")]
        with open(os.path.join(work, "s.sql"), "w") as f:
            f.write(SQL)
        subprocess.run(["sqlite3", "s.db", ".read s.sql"], cwd=work, check=True)
        runs.append(("sqlite3 .import", ["sqlite3", "s.db", "-cmd", ".mode csv",
                                         ".import b.csv booking"], "s.db"))
        print("%d booking records, %.1f MiB of NDJSON" %
              (n, os.path.getsize(os.path.join(work, "b.ndjson")) / 2**20))
        print("%-22s %8s %10s %14s %14s %10s" % ("", "seconds", "records/s", "wchar MiB",
                                                   "device MiB", "file MiB"))
        for name, argv, db in runs:
            secs, wchar, dev = measure(argv, work)
            size = os.path.getsize(os.path.join(work, db))
            print("%-22s %8.1f %10.0f %14.1f %14.1f %10.1f" % (name, secs, n / secs, wchar / 2**20,
                                                               dev / 2**20, size / 2**20))
    finally:
        shutil.rmtree(work)


main()
