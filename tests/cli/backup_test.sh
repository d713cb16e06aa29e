#!/usr/bin/env bash
# backup_test.sh -- `uniqdb backup` and the free pages of `uniqdb stat`, as a
# user runs them.
#
#   backup_test.sh GROUP UNIQDB PYTHON SCENARIOS.json
#
# basics:   copies (plain, --compact, into an empty directory) check and dump
#           exactly as the source; what is refused, with nothing written.
# reclaim:  README's "Backup and compaction": drop most records, stat shows
#           the free pages, backup --compact writes what stat announced, the
#           copy swapped in for the original holds the same records.
# fulldisk: a copy to a full file system fails saying so and leaves nothing
#           behind (needs root to mount a tmpfs; skipped, 77, elsewhere).
set -u
export LC_ALL=C

GROUP=$1
U=$2
PY=$3
SCEN=$4

T=$(mktemp -d "${TMPDIR:-/tmp}/uniqdb-backup-test.XXXXXX")
MNT=
cleanup() {
    if [ -n "$MNT" ]; then umount "$MNT"; rmdir "$MNT"; fi
    rm -rf "$T"
}
trap cleanup EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
    if [ -s "$T/out" ]; then echo "  stdout: $(head -c 600 "$T/out")" >&2; fi
    if [ -s "$T/err" ]; then echo "  stderr: $(head -c 600 "$T/err")" >&2; fi
}
# run WANT_EXIT CMD...: run, keep stdout/stderr in $T/out, $T/err, check the exit code
run() {
    local want=$1
    shift
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else fail "exit $got (want $want): $*"; fi
    if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$T/err"; then
        fail "sanitizer report: $*"
    fi
}
out_has() { if grep -qF -- "$1" "$T/out"; then ok; else fail "stdout lacks: $1"; fi; }
err_has() { if grep -qiF -- "$1" "$T/err"; then ok; else fail "stderr lacks: $1"; fi; }
# json_ok EXPR: stdout is one JSON document d for which the python EXPR holds
json_ok() {
    if "$PY" -c 'import json, sys; d = json.load(open(sys.argv[2])); sys.exit(0 if eval(sys.argv[1]) else 1)' \
        "$1" "$T/out"; then ok; else fail "JSON check: $1"; fi
}
# same_as WHAT A B: files A and B are equal
same_as() { if cmp -s "$2" "$3"; then ok; else fail "$1: $2 and $3 differ"; fi; }
listing() { ls -A "$1" | tr '\n' ' '; }
is_listing() { local got; got=$(listing "$2"); if [ "$got" = "$3" ]; then ok; else fail "$1: $2 holds '$got', not '$3'"; fi; }
# a JSON value of `uniqdb stat --json DB`
stat_of() { "$U" stat --json "$1" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"; }

# N client records as NDJSON for `uniqdb load`: a schema line, then the records
clients() {
    "$PY" - "$1" "$SCEN" <<'EOF'
import json, sys
n, schema = int(sys.argv[1]), json.load(open(sys.argv[2]))
print(json.dumps({"schema": schema}))
for i in range(n):
    print(json.dumps({"type": "client", "record": {"id": "c%06d" % i, "email": "c%06d@example.com" % i, "name": "n" * 100}}))
    print(json.dumps({"type": "case", "record": {"id": i + 1, "case_number": "K-%06d" % i, "caller": "x" * 200}}))
EOF
}

group_basics() {
    local db="$T/db"
    run 0 "$U" backup --help; out_has "usage: uniqdb backup DB DEST [--compact]"
    run 2 "$U" backup "$db"; err_has "expected DB DEST"
    run 2 "$U" backup "$db" "$T/x" --nope; err_has "unknown option"
    # a database that is not there: nothing made at DEST
    run 1 "$U" backup "$T/nowhere" "$T/copy"; err_has "no such directory"
    [ ! -e "$T/copy" ] && ok || fail "a backup of nothing made $T/copy"

    run 0 "$U" init "$db" "$SCEN"
    clients 300 >"$T/in.ndjson"
    run 0 "$U" load "$db" "$T/in.ndjson" --no-end
    run 0 "$U" seq "$db" invoices
    run 0 "$U" dump "$db"; cp "$T/out" "$T/dump.db"

    run 0 "$U" backup "$db" "$T/plain"; out_has "backup of $db in $T/plain:"
    is_listing "plain copy" "$T/plain" "data.mdb "
    run 0 "$U" --json backup "$db" "$T/small" --compact
    json_ok 'd["database"].endswith("/db") and d["backup"].endswith("/small") and d["compact"] is True and d["file_size"] > 0'
    mkdir "$T/empty"
    run 0 "$U" backup --compact "$db" "$T/empty/"
    is_listing "copy into an empty directory" "$T/empty" "data.mdb "
    for c in plain small empty; do
        run 0 "$U" check "$T/$c"; out_has "check: ok"
        run 0 "$U" dump "$T/$c"; same_as "dump of the $c copy" "$T/out" "$T/dump.db"
    done
    # the copy is a database of its own
    run 0 "$U" put "$T/plain" client '{"id": "new", "email": "new@example.com"}'
    run 3 "$U" put "$T/plain" client '{"id": "dup", "email": "c000001@example.com"}'
    run 4 "$U" get "$db" client '"new"'

    # refused, nothing written
    run 1 "$U" backup "$db" "$T/plain"; err_has "is not empty"; err_has "nothing was written"
    is_listing "a refused backup into a database" "$T/plain" "data.mdb lock.mdb sync.udb "
    echo hello >"$T/file"
    run 1 "$U" backup "$db" "$T/file"; err_has "exists and is not a directory"
    run 1 "$U" --json backup "$db" "$T/plain"
    json_ok 'd["exit_code"] == 1 and "is not empty" in d["detail"]'
    run 1 "$U" backup "$db" "$T/no/such/dir"; err_has "does not exist"
    is_listing "after the refusals" "$T" "db dump.db empty err file in.ndjson out plain small "

    # stat: the free pages, and what a compacting backup would write
    run 0 "$U" stat "$db"; out_has "free:"; out_has "backup --compact would write"
    run 0 "$U" stat --json "$db"
    json_ok 'd["page_size"] >= 512 and 0 <= d["free_pages"] + d["freelist_pages"] < d["pages"] and d["compact_size"] == (d["pages"] - d["free_pages"] - d["freelist_pages"]) * d["page_size"] and d["map_used"] == d["pages"] * d["page_size"]'
    local want
    want=$(stat_of "$db" compact_size)
    run 0 "$U" backup --compact "$db" "$T/small2"
    [ "$(stat -c %s "$T/small2/data.mdb")" = "$want" ] && ok ||
        fail "backup --compact wrote $(stat -c %s "$T/small2/data.mdb") bytes, stat announced $want"
}

group_reclaim() {
    local db="$T/db"
    run 0 "$U" init "$db" "$SCEN"
    clients 3000 >"$T/in.ndjson"
    run 0 "$U" load "$db" "$T/in.ndjson" --no-end
    local full
    full=$(stat_of "$db" pages)
    # most records go: the type "case" (3000 of 6000 records, most bytes) is dropped
    "$PY" -c 'import json, sys; s = json.load(open(sys.argv[1])); del s["types"]["case"]; print(json.dumps(s))' \
        "$SCEN" >"$T/nocase.json"
    run 0 "$U" init "$db" "$T/nocase.json" --drop; out_has "removed"
    run 0 "$U" stat --json "$db"
    json_ok "d['records'] == 3000 and d['pages'] >= $full and d['free_pages'] > d['pages'] // 2"
    local size_before want
    size_before=$(stat -c %s "$db/data.mdb")
    want=$(stat_of "$db" compact_size)
    run 0 "$U" dump "$db"; cp "$T/out" "$T/dump.db"
    # README's recipe: copy, then swap while no process has the database open
    run 0 "$U" backup --compact "$db" "$T/db.compact"
    [ "$(stat -c %s "$T/db.compact/data.mdb")" = "$want" ] && ok ||
        fail "backup --compact wrote $(stat -c %s "$T/db.compact/data.mdb") bytes, stat said $want"
    mv "$db" "$T/db.old" && mv "$T/db.compact" "$db" && ok || fail "swap"
    run 0 "$U" check "$db"
    run 0 "$U" dump "$db"; same_as "dump after the swap" "$T/out" "$T/dump.db"
    run 0 "$U" stat --json "$db"
    json_ok "d['free_pages'] == 0 and d['file_size'] * 3 < $size_before"
    echo "reclaim: data.mdb $size_before bytes with $(stat_of "$T/db.old" free_pages) free pages; compacted: $want bytes"
}

group_fulldisk() {
    [ "$(id -u)" -eq 0 ] || { echo "backup fulldisk: needs root to mount a tmpfs: skipped"; exit 77; }
    MNT=$(mktemp -d /tmp/udb-backup-fulldisk-XXXXXX)
    if ! mount -t tmpfs -o size=1m tmpfs "$MNT" 2>/dev/null; then
        rmdir "$MNT"; MNT=; echo "backup fulldisk: cannot mount a tmpfs: skipped"; exit 77
    fi
    local db="$T/db"
    run 0 "$U" init "$db" "$SCEN"
    clients 3000 >"$T/in.ndjson"
    run 0 "$U" load "$db" "$T/in.ndjson" --no-end
    # the database (several MiB) cannot fit in 1 MiB: a new directory, then an empty one
    run 1 "$U" backup "$db" "$MNT/copy"; err_has "no space left"; err_has "nothing of the copy"
    is_listing "full disk, new directory" "$MNT" ""
    run 1 "$U" backup --compact "$db" "$MNT/copy"; err_has "no space left"
    is_listing "full disk, compacting" "$MNT" ""
    mkdir "$MNT/empty"
    run 1 "$U" backup "$db" "$MNT/empty"; err_has "no space left"
    is_listing "full disk, into an empty directory" "$MNT/empty" ""
    # with room, the same command works (a small database)
    run 0 "$U" init "$T/small" "$SCEN"
    run 0 "$U" backup "$T/small" "$MNT/empty"
    run 0 "$U" check "$MNT/empty"
}

case $GROUP in
basics) group_basics ;;
reclaim) group_reclaim ;;
fulldisk) group_fulldisk ;;
*) echo "unknown group $GROUP"; exit 2 ;;
esac
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
