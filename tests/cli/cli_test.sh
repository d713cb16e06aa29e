#!/usr/bin/env bash
# cli_test.sh -- drive the built `uniqdb` binary as a user would.
#
#   cli_test.sh GROUP UNIQDB DAMAGE PYTHON SCENARIOS.json
#
# GROUP is one of: basics exits readonly types dumpload trailer check tty demo scan nocase.  Every group works in its
# own fresh temporary directory, removed at the end.  JSON output is checked
# by parsing it (python3's json module), not by pattern matching alone.
#
# The databases: with UNIQDB_CLI_DB=pg (meson's pg-cli-* tests, run under
# tests/postgres/pg_run, which exports PGHOST) every database a group makes
# is a fresh PostgreSQL schema, postgresql:///uniqdb_test?schema=cli_GROUP_NAME,
# instead of the directory $T/NAME (db_of NAME gives either).  A check that
# only means something for an LMDB directory (its files, LMDB's locks, damage
# made underneath with the damage helper) runs only on LMDB: lmdb_only says
# why it is skipped on PostgreSQL, on stderr and in the summary line.
set -u

GROUP=$1
U=$2
DAMAGE=$3
PY=$4
SCEN=$5

T=$(mktemp -d "${TMPDIR:-/tmp}/uniqdb-cli-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
passed=0
failed=0
skipped=0

PG=""
case "${UNIQDB_CLI_DB:-lmdb}" in
lmdb) ;;
pg)
    PG=1
    if [ -z "${PGHOST:-}" ]; then
        echo "$GROUP: SKIP: UNIQDB_CLI_DB=pg needs a server (run under tests/postgres/pg_run)" >&2
        exit 77
    fi
    ;;
*) echo "UNIQDB_CLI_DB must be lmdb or pg" >&2; exit 2 ;;
esac
# Scans (scan, dump, export, and the demo's last part, which read records in
# order) on PostgreSQL come with issue 24's pgscan work: until then they are
# skipped there, with this reason.  Set to 1 once they run on the server.
PG_SCANS=0

# db_of NAME: the DB argument of the group's database NAME
db_of() {
    if [ -n "$PG" ]; then
        printf 'postgresql:///uniqdb_test?schema=%s' "$(printf 'cli_%s_%s' "$GROUP" "$1" | tr -c 'a-z0-9_' _)"
    else
        printf '%s' "$T/$1"
    fi
}
# no_db NAME WHAT: the group's database NAME was never created: no directory $T/NAME,
# or on PostgreSQL no schema of that name on the server
no_db() {
    local st
    if [ -z "$PG" ]; then
        if [ ! -e "$T/$1" ]; then ok; else fail "$2 left $T/$1"; fi
        return
    fi
    st=$(psql -X -tAc "SELECT count(*) FROM pg_namespace WHERE nspname = '$(db_of "$1" | sed 's/.*schema=//')'" 2>&1)
    if [ "$st" = 0 ]; then ok; else fail "$2 left schema $(db_of "$1"): $st"; fi
}
# lmdb_only REASON: true on LMDB; on PostgreSQL the check is skipped, saying why
lmdb_only() {
    [ -z "$PG" ] && return 0
    skipped=$((skipped + 1))
    echo "skip on PostgreSQL (LMDB only): $*" >&2
    return 1
}
# needs_scan WHAT: true where scans run (LMDB; PostgreSQL once PG_SCANS=1)
needs_scan() {
    [ -z "$PG" ] || [ "$PG_SCANS" = 1 ] && return 0
    skipped=$((skipped + 1))
    echo "skip on PostgreSQL (scan: pgscan): $*" >&2
    return 1
}
# the checks after a run that was skipped (a scan on PostgreSQL) are skipped with it
SKIPPING=""
# scan_cmd ARGS...: whether "$U" ARGS... reads records in order (scan, dump, export, demo)
scan_cmd() {
    [ "$1" = timeout ] && shift 2
    [ "$1" = "$U" ] || return 1
    shift
    while [ "$#" -gt 0 ] && [ "${1#-}" != "$1" ]; do
        [ "$1" = --timeout ] && shift
        shift
    done
    case "${1:-}" in scan | dump | export | demo) ;; *) return 1 ;; esac
    local arg
    for arg in "$@"; do [ "$arg" = --help ] && return 1; done
    return 0
}

ok() { [ -n "$SKIPPING" ] && return 0; passed=$((passed + 1)); }
fail() {
    if [ -n "$SKIPPING" ]; then return 0; fi
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
    if [ -s "$T/out" ]; then echo "  stdout: $(head -c 600 "$T/out")" >&2; fi
    if [ -s "$T/err" ]; then echo "  stderr: $(head -c 600 "$T/err")" >&2; fi
}

# run WANT_EXIT CMD...: run, keep stdout/stderr in $T/out, $T/err, check the exit code
run() {
    local want=$1
    shift
    SKIPPING=""
    if scan_cmd "$@" && ! needs_scan "$*"; then SKIPPING=1; return 0; fi
    "$@" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else fail "exit $got (want $want): $*"; fi
    sanitizer_clean
}
# a sanitizer report fails the test even when the exit code came out right
sanitizer_clean() {
    [ -n "$SKIPPING" ] && return 0
    if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$T/err"; then fail "sanitizer report"; fi
}
# run with stdin from a file
run_in() {
    local want=$1 input=$2
    shift 2
    SKIPPING=""
    if scan_cmd "$@" && ! needs_scan "$*"; then SKIPPING=1; return 0; fi
    "$@" <"$input" >"$T/out" 2>"$T/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else fail "exit $got (want $want): $* < $input"; fi
    sanitizer_clean
}
out_has() { [ -n "$SKIPPING" ] && return 0; if grep -qF -- "$1" "$T/out"; then ok; else fail "stdout lacks: $1"; fi; }
err_has() { [ -n "$SKIPPING" ] && return 0; if grep -qF -- "$1" "$T/err"; then ok; else fail "stderr lacks: $1"; fi; }
out_is() {
    [ -n "$SKIPPING" ] && return 0
    if [ "$(cat "$T/out")" = "$1" ]; then ok; else fail "stdout is not: $1"; fi
}
out_empty() { [ -n "$SKIPPING" ] && return 0; if [ ! -s "$T/out" ]; then ok; else fail "stdout not empty"; fi; }
err_empty() { [ -n "$SKIPPING" ] && return 0; if [ ! -s "$T/err" ]; then ok; else fail "stderr not empty"; fi; }
# json_ok EXPR: stdout parses as one JSON document or as NDJSON (every line);
# EXPR (python; d = the last value, lines = all values) holds
json_ok() {
    [ -n "$SKIPPING" ] && return 0
    if "$PY" - "$1" "$T/out" <<'EOF'; then ok; else fail "JSON check: $1"; fi
import json, sys
expr, path = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
try:
    lines = [json.loads(text)]          # one (possibly indented) document
except ValueError:
    lines = [json.loads(l) for l in text.splitlines() if l.strip()]
d = lines[-1] if lines else None
sys.exit(0 if eval(expr) else 1)
EOF
}

SCHEMA_ALL="$T/all.json"
cat >"$SCHEMA_ALL" <<'EOF'
{"types": {"thing": {"key": "k", "fields": {
  "k": {"type": "uint"}, "s": {"type": "str"}, "i": {"type": "int"}, "f": {"type": "float"},
  "b": {"type": "bool"}, "raw": {"type": "bin"}, "e": {"type": "enum", "values": ["x", "y"]},
  "a": {"type": "any"}},
  "unique": {"by_s": {"fields": ["s"]}, "by_raw": {"fields": ["raw"]}},
  "indexes": {"by_i": {"fields": ["i"]}}}}}
EOF

# ---------------------------------------------------------------------------
group_basics() {
    local db ak
    db=$(db_of db) ak=$(db_of ak)

    # tool-level help, version, usage errors
    run 0 "$U" --help; out_has "usage: uniqdb"; out_has "demo"
    run 0 "$U" --version; out_has "uniqdb 0.1.0"
    run 2 "$U"; err_has "usage"
    run 2 "$U" frobnicate; err_has "unknown command 'frobnicate'"
    run 2 "$U" --bogus
    for c in init schema put get find scan update delete seq dump load check stat demo; do
        run 0 "$U" "$c" --help; out_has "usage: uniqdb $c"
    done
    run 2 "$U" get "$db"; err_has "usage: uniqdb get"
    run 2 "$U" put "$db" t '{}' --nope; err_has "unknown option '--nope'"
    run 2 "$U" --json get "$db"; json_ok 'd["status"] == 400'

    # a missing database is an error, not silently created
    if lmdb_only "a missing directory"; then
        run 1 "$U" get "$T/nowhere" client 1; err_has "no such directory"
        if [ ! -e "$T/nowhere" ]; then ok; else fail "get created a database"; fi
    else
        # a PostgreSQL schema where no uniqdb schema was applied: not a database, and a
        # read creates nothing there (exits checks that on the server)
        run 1 "$U" get "$(db_of nowhere)" client 1; err_has "not a uniqdb database"; err_has "uniqdb init"
    fi

    # init, schema
    run 0 "$U" init "$db" "$SCEN"; out_has "schema applied, 5 types"
    run 0 "$U" init "$db" "$SCEN"          # applying the same schema again is a no-op
    run 0 "$U" schema "$db"; json_ok 'list(d["types"]) == ["schedule_workflow", "client", "workflow", "booking", "case"]'
    echo '{"types": {"x": {"key": "id", "fields": {"id": {"type": "nosuch"}}}}}' >"$T/bad.json"
    run 5 "$U" init "$db" "$T/bad.json"; err_has "nosuch"
    run 5 "$U" init "$(db_of db-badjson)" <(echo '{"types": ')

    # put: insert, auto key, printed record
    run 0 "$U" put "$db" booking '{"psychologist": "p1", "date": "2026-01-15", "time": "10:00", "status": "pending", "user": "u1"}'
    json_ok 'd["id"] == 1 and d["status"] == "pending" and d["user"] == "u1"'
    run 0 "$U" put "$db" client '{"id": "c1", "email": "a@x.org", "name": "Ana"}'
    json_ok 'd == {"id": "c1", "email": "a@x.org", "name": "Ana"}'
    echo '{"id": "c2", "email": "b@x.org"}' >"$T/c2.json"
    run_in 0 "$T/c2.json" "$U" put "$db" client -; json_ok 'd["id"] == "c2"'

    # exit 3: conflict, on stderr and as a problem object
    run 3 "$U" put "$db" booking '{"psychologist": "p1", "date": "2026-01-15", "time": "10:00", "status": "confirmed"}'
    err_has 'booking.active_slot'; out_empty
    run 3 "$U" --json put "$db" booking '{"psychologist": "p1", "date": "2026-01-15", "time": "10:00", "status": "confirmed"}'
    json_ok 'd["status"] == 409 and d["index"] == "active_slot" and d["record_type"] == "booking" and d["fields"] == ["psychologist", "date", "time"] and d["values"] == ["p1", "2026-01-15", "10:00"] and d["existing_key"] == 1 and d["title"] == "Unique constraint violated" and d["type"].endswith("conflict") and "already exists" in d["detail"]'
    run 3 "$U" put "$db" client '{"id": "c9", "email": "a@x.org"}' --json
    json_ok 'd["index"] == "email" and d["record_type"] == "client" and d["existing_key"] == "c1" and d["values"] == ["a@x.org"]'
    # both the primary key and the email collide: every violated index, key first
    run 3 "$U" put --json "$db" client '{"id": "c1", "email": "b@x.org"}'
    json_ok '[c["index"] for c in d["conflicts"]] == ["id", "email"] and d["conflicts"][1]["existing_key"] == "c2"'
    # index names: the problem's "index" is the name as declared (what find, scan, --or-get
    # and --upsert take; the type is "record_type"), the message qualifies it with the type,
    # and every command (every C call) accepts both spellings
    run 3 "$U" --json put "$db" client '{"id": "c9", "email": "a@x.org"}'
    json_ok 'd["index"] == "email" and d["record_type"] == "client" and "\"client.email\"" in d["detail"]'
    run 0 "$U" find "$db" client "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["index"])' "$T/out")" '"a@x.org"'
    json_ok 'd["id"] == "c1"'
    run 0 "$U" find "$db" client client.email '"a@x.org"'; json_ok 'd["id"] == "c1"'
    run 0 "$U" find "$db" client client.id '"c2"'; json_ok 'd["id"] == "c2"'
    run 0 "$U" put "$db" client '{"id": "c9", "email": "a@x.org"}' --or-get client.email
    json_ok 'd["id"] == "c1"'; err_has existing
    run 0 "$U" scan "$db" booking booking.by_user '["u1"]'; json_ok '[r["id"] for r in lines] == [1]'
    run 2 "$U" find "$db" booking booking.by_user '"u1"'
    err_has 'index "booking.by_user" is not unique (unique indexes of "booking": id, active_slot)'
    run 2 "$U" find "$db" client booking.email '"a@x.org"'; err_has 'type "client" has no unique index "booking.email"'

    # --or-get / --upsert, with and without an index name
    run 0 "$U" put "$db" client '{"id": "c1", "email": "a@x.org", "name": "Other"}' --or-get
    json_ok 'd["name"] == "Ana"'; err_has existing
    run 0 "$U" put "$db" schedule_workflow --or-get schedule_doctor '{"scheduleId": "s1", "doctorName": "Dr A"}'
    json_ok 'd["id"] == 1'; err_has created
    run 0 "$U" put "$db" schedule_workflow '{"scheduleId": "s1", "doctorName": "Dr A", "state": "x"}' --or-get schedule_doctor
    json_ok 'd["id"] == 1 and "state" not in d'; err_has existing
    run 3 "$U" put "$db" client '{"id": "c7", "email": "a@x.org"}' --or-get
    err_has "client.email"
    # the row an upsert would insert must be valid even when it updates: the
    # given "id" is only what an insert would have used
    run 5 "$U" put "$db" client '{"email": "a@x.org", "name": "Ana B"}' --upsert=email
    err_has 'missing required field "id"'
    run 0 "$U" put "$db" client '{"id": "c8", "email": "a@x.org", "name": "Ana B"}' --upsert=email
    json_ok 'd == {"id": "c1", "email": "a@x.org", "name": "Ana B"}'; err_has updated
    run 4 "$U" get "$db" client '"c8"'
    # a partial unique index whose predicate reads the auto key
    cat >"$T/ak.json" <<'EOF'
{"types": {"ak": {"key": "id", "fields": {"id": {"type": "uint", "auto": true},
  "a": {"type": "int"}, "t": {"type": "str"}},
  "unique": {"ak_a": {"fields": ["a"], "where": "id IS NOT NULL"}}}}}
EOF
    run 0 "$U" init "$ak" "$T/ak.json"
    run 0 "$U" put "$ak" ak '{"a": 5, "t": "first"}'; json_ok 'd["id"] == 1'
    run 0 "$U" put "$ak" ak '{"a": 5, "t": "third"}' --or-get ak_a
    json_ok 'd == {"id": 1, "a": 5, "t": "first"}'; err_has existing
    run 0 "$U" put "$ak" ak '{"a": 5, "t": "fourth"}' --upsert ak_a
    json_ok 'd == {"id": 1, "a": 5, "t": "fourth"}'; err_has updated
    run 0 "$U" scan "$ak" ak; json_ok 'lines == [{"id": 1, "a": 5, "t": "fourth"}]'
    run 2 "$U" put "$db" client '{}' --or-get --upsert

    # get / find / scan; exit 4 for not found
    run 0 "$U" get "$db" client '"c1"'; json_ok 'd["name"] == "Ana B"'
    run 0 "$U" get "$db" booking 1; json_ok 'd["id"] == 1'
    run 4 "$U" get "$db" booking 42; err_has "booking 42: no such record"; out_empty
    run 4 "$U" --json get "$db" booking 42
    json_ok 'd["status"] == 404 and d["title"] == "Not found" and d["type"].endswith("not-found")'
    run 5 "$U" get "$db" booking '"not-a-uint"'
    run 5 "$U" get "$db" client c1; err_has "KEY"          # a key must be JSON
    run 0 "$U" find "$db" client email '["a@x.org"]'; json_ok 'd["id"] == "c1"'
    run 0 "$U" find "$db" client email '"b@x.org"'; json_ok 'd["id"] == "c2"'
    run 4 "$U" find "$db" booking active_slot '["p1", "2026-01-15", "11:00"]'
    run 2 "$U" find "$db" booking nosuchindex '["p1"]'
    run 0 "$U" put "$db" booking '{"psychologist": "p2", "date": "2026-01-16", "time": "09:00", "status": "pending", "user": "u0"}'
    run 0 "$U" scan "$db" booking; json_ok '[r["id"] for r in lines] == [1, 2]'
    run 0 "$U" scan "$db" booking by_user; json_ok '[r["user"] for r in lines] == ["u0", "u1"]'
    run 0 "$U" scan "$db" booking by_user '["u1"]'; json_ok '[r["id"] for r in lines] == [1]'
    run 0 "$U" scan "$db" booking active_slot '"p2"'; json_ok '[r["id"] for r in lines] == [2]'
    run 0 "$U" scan "$db" booking id; json_ok '[r["id"] for r in lines] == [1, 2]'
    run 0 "$U" scan "$db" booking --limit 1; json_ok 'len(lines) == 1'
    run 5 "$U" scan "$db" booking by_user '[5]'              # prefix of the wrong type
    run 2 "$U" scan "$db" booking nosuchindex
    run 0 "$U" scan "$db" case; out_empty

    # update (replace and --merge), delete
    run 0 "$U" update "$db" booking 1 '{"status": "cancelled"}' --merge
    json_ok 'd["status"] == "cancelled" and d["user"] == "u1"'
    run 0 "$U" put "$db" booking '{"psychologist": "p1", "date": "2026-01-15", "time": "10:00", "status": "pending"}'
    json_ok 'd["id"] == 3'
    run 3 "$U" update "$db" booking 1 '{"status": "confirmed"}' --merge   # re-activating a taken slot
    err_has "booking.active_slot"
    run 0 "$U" update "$db" booking 1 '{"psychologist": "p1", "date": "2026-01-20", "time": "10:00", "status": "completed"}'
    json_ok '"user" not in d and d["date"] == "2026-01-20"'
    run 5 "$U" update "$db" booking 1 '{"status": "lost"}' --merge; err_has "status"
    run 4 "$U" update "$db" booking 99 '{"status": "cancelled"}' --merge
    run 0 "$U" delete "$db" booking 1; out_empty
    run 4 "$U" delete "$db" booking 1
    run 4 "$U" get "$db" booking 1

    # seq
    run 0 "$U" seq "$db" invoices; out_is 1
    run 0 "$U" seq "$db" invoices; out_is 2
    run 0 "$U" seq "$db" invoices --get; out_is 2
    run 0 "$U" seq "$db" invoices --set 41
    run 0 "$U" seq "$db" invoices; out_is 42
    run 4 "$U" seq "$db" never --get
    run 2 "$U" seq "$db" invoices --set -3
    # a value the data refuses (below the type's largest auto key) is invalid input, exit 5
    # as in README's table (and as load reports it); a bad name stays a usage error
    run 5 "$U" seq "$db" booking.id --set 0; err_has 'sequence "booking.id" is the auto key of type "booking"'
    run 5 "$U" --json seq "$db" booking.id --set 1; json_ok 'd["status"] == 422 and d["exit_code"] == 5'
    run 2 "$U" seq "$db" "" --set 5; err_has "1 to 256 bytes"
    run 0 "$U" seq "$db" booking.id --get; out_is 3

    # stat: on PostgreSQL the counts, and the file and map figures (LMDB's) left out, saying so
    run 0 "$U" stat "$db"; out_has "booking"
    if [ -z "$PG" ]; then out_has "map:"; else out_has "not on PostgreSQL"; fi
    run 0 "$U" stat --json "$db"
    json_ok 'd["types"]["booking"]["records"] == 2 and d["types"]["client"]["records"] == 2 and d["types"]["booking"]["bytes"] > 0'
    if [ -z "$PG" ]; then
        json_ok 'd["backend"] == "lmdb" and d["types"]["booking"]["index_entries"] == 4 and d["map_size"] >= d["map_used"] > 0 and d["file_size"] > 0'
    else
        json_ok 'd["backend"] == "postgresql" and not {"index_entries", "file", "file_size", "map_size", "map_used", "pages", "free_pages"} & (set(d) | set(d["types"]["booking"]))'
    fi
    # backup copies an LMDB directory: a URL is refused, naming pg_dump
    # (refused before any connection: no server needed)
    run 2 "$U" backup "postgresql:///uniqdb_test?schema=x" "$T/bk"; err_has "is a PostgreSQL database"; err_has "pg_dump"
    if [ ! -e "$T/bk" ]; then ok; else fail "backup of a URL made $T/bk"; fi
    # a password in a URL is never shown: the tool's messages quote DB
    run 2 "$U" backup "postgresql://u:s3cret@h/x?password=s3cret" "$T/bk"
    err_has "postgresql://u:***@h/x?password=*** is a PostgreSQL database"
    if grep -q s3cret "$T/out" "$T/err"; then fail "a password shown"; else ok; fi
    if [ -n "$PG" ]; then   # the server trusts the login: the password is only shown, or not
        local pw='postgresql://uniqdb:s3cret@/uniqdb_test?schema=cli_basics_pw'
        run 0 "$U" init "$pw" "$SCEN"; out_has 'postgresql://uniqdb:***@/uniqdb_test?schema=cli_basics_pw: schema applied'
        if grep -q s3cret "$T/out" "$T/err"; then fail "init showed the password"; else ok; fi
        run 0 "$U" --json init "$pw" "$SCEN"; json_ok 'd["database"] == "postgresql://uniqdb:***@/uniqdb_test?schema=cli_basics_pw"'
        run 4 "$U" delete "$pw" client '"nobody"'; err_has 'postgresql://uniqdb:***@/uniqdb_test?schema=cli_basics_pw: client "nobody": no such record'
        if grep -q s3cret "$T/out" "$T/err"; then fail "delete showed the password"; else ok; fi
    fi
}

# ---------------------------------------------------------------------------
# Every row of the exit-code table in README.md and `uniqdb --help`, each with
# its --json problem status; names a script could mistype are usage errors
# that list the valid ones.
group_exits() {
    local db ji
    db=$(db_of db) ji=$(db_of ji)

    run 0 "$U" init "$db" "$SCEN"
    run 0 "$U" --help; out_has "8 committed"; out_has "2 bad command line; unknown type"; out_has "7 --timeout"
    # --json: every output is JSON, usage errors of the tool itself and init's report too
    run 2 "$U" --json; json_ok 'd["status"] == 400 and d["exit_code"] == 2 and "no command" in d["detail"]'; err_empty
    run 2 "$U" --json --bogus; json_ok 'd["status"] == 400 and "--bogus" in d["detail"]'; err_empty
    run 2 "$U" --bogus --json; json_ok 'd["status"] == 400'
    run 0 "$U" --json init "$ji" "$SCEN"
    json_ok 'd["database"] == "'"$ji"'" and d["types"] == ["schedule_workflow", "client", "workflow", "booking", "case"] and len(d["changes"]) == 5 and d["changes"][1].startswith("added type \"client\"")'
    run 0 "$U" init --json "$ji" "$SCEN"; json_ok 'd["changes"] == [] and len(d["types"]) == 5'; err_empty
    # 1: any other error (here: no such directory; on PostgreSQL, no server there)
    if [ -z "$PG" ]; then
        run 1 "$U" get "$T/nowhere" client 1; err_has "no such directory"
        run 1 "$U" --json get "$T/nowhere" client 1; json_ok 'd["status"] == 500 and d["exit_code"] == 1'
    else
        run 1 "$U" get "postgresql:///uniqdb_test?host=$T/nosocket&schema=x" client 1; err_has "$T/nosocket/.s.PGSQL."
        run 1 "$U" --json get "postgresql:///uniqdb_test?host=$T/nosocket&schema=x" client 1; json_ok 'd["status"] == 500 and d["exit_code"] == 1'
    fi
    # 2: unknown type / index / sequence names and bad arguments, listing the valid names
    run 2 "$U" get "$db" nosuch 1
    err_has 'unknown record type "nosuch" (this database has: schedule_workflow, client, workflow, booking, case)'
    run 2 "$U" --json get "$db" nosuch 1; json_ok 'd["status"] == 400 and d["exit_code"] == 2 and "client" in d["detail"]'
    run 2 "$U" put "$db" client '{"id": "c1", "email": "a@x"}' --upsert nosuch
    err_has 'type "client" has no unique index "nosuch" (its unique indexes: id, email)'
    run 2 "$U" put "$db" client '{"id": "c1", "email": "a@x"}' --or-get nosuch; err_has "id, email"
    run 2 "$U" find "$db" booking by_user '"u1"'
    err_has 'index "booking.by_user" is not unique (unique indexes of "booking": id, active_slot)'
    run 2 "$U" find "$db" booking nosuch '"u1"'; err_has "id, active_slot"
    run 2 "$U" scan "$db" booking nosuch; err_has "its indexes: id, active_slot, by_user"
    run 2 "$U" dump "$db" nosuch; err_has 'unknown record type "nosuch" (this database has: schedule_workflow'
    run 2 "$U" seq "$db" ""; err_has "1 to 256 bytes"
    run 2 "$U" seq "$db" "" --get
    run 2 "$U" init "" "$SCEN"; err_has "empty"
    run 2 "$U" --json init "" "$SCEN"; json_ok 'd["status"] == 400'
    # 3: conflict
    run 0 "$U" put "$db" client '{"id": "c1", "email": "a@x"}'
    run 3 "$U" put "$db" client '{"id": "c2", "email": "a@x"}'
    run 3 "$U" --json put "$db" client '{"id": "c2", "email": "a@x"}'; json_ok 'd["status"] == 409 and d["exit_code"] == 3'
    # 4: not found
    run 4 "$U" get "$db" client '"zz"'
    run 4 "$U" --json get "$db" client '"zz"'; json_ok 'd["status"] == 404 and d["exit_code"] == 4'
    # 5: invalid input, and an exhausted sequence
    run 5 "$U" put "$db" client '{"id": "c3", "email": 5}'
    run 5 "$U" --json put "$db" client '{"id": "c3", "email": 5}'; json_ok 'd["status"] == 422 and d["exit_code"] == 5'
    run 0 "$U" seq "$db" s --set 18446744073709551615
    run 5 "$U" seq "$db" s; err_has 'sequence "s" is exhausted'
    run 5 "$U" --json seq "$db" s; json_ok 'd["status"] == 422 and "exhausted" in d["detail"]'
    run 0 "$U" seq "$db" booking.id --set 18446744073709551615
    run 5 "$U" put "$db" booking '{"psychologist": "p", "date": "d", "time": "t", "status": "pending"}'
    err_has 'key sequence "booking.id" is exhausted'
    # 4: a sequence that does not exist, named with those that do
    run 4 "$U" seq "$db" nosuch --get; err_has 'sequence "nosuch" was never advanced (this database has: booking.id, s)'
    run 4 "$U" --json seq "$db" nosuch --get; json_ok 'd["status"] == 404 and "booking.id, s" in d["detail"]'
    run 4 "$U" seq "$ji" nosuch --get; err_has "(this database has no sequences yet)"
    # 6: check found problems
    if lmdb_only "exit 6: damage made underneath by the LMDB damage helper"; then
        cp -r "$db" "$T/d"
        "$DAMAGE" "$T/d" del-first u:client:email >/dev/null || fail "damage"
        run 6 "$U" check "$T/d"
        run 6 "$U" --json check "$T/d"; json_ok 'd["ok"] is False'
    fi
    # 8: committed, but the result could not be written: a retry would repeat it
    if [ -w /dev/full ]; then
        "$U" put "$db" client '{"id": "c9", "email": "c9@x"}' >/dev/full 2>"$T/err"
        if [ $? -eq 8 ]; then ok; else fail "put >/dev/full: want exit 8"; fi
        err_has "the change was committed"
        run 0 "$U" get "$db" client '"c9"'           # it was
        "$U" seq "$db" n >/dev/full 2>/dev/null
        if [ $? -eq 8 ]; then ok; else fail "seq >/dev/full: want exit 8"; fi
        run 0 "$U" seq "$db" n --get; out_is 1
        "$U" get "$db" client '"c9"' >/dev/full 2>/dev/null    # a read that fails to print is 1
        if [ $? -eq 1 ]; then ok; else fail "get >/dev/full: want exit 1"; fi
        "$U" put "$db" client '{"id": "c9", "email": "c9@x"}' >/dev/full 2>/dev/null   # conflict: nothing committed
        if [ $? -eq 3 ]; then ok; else fail "conflicting put >/dev/full: want exit 3"; fi
    else
        echo "note: /dev/full is missing; exit 8 not tested here" >&2
    fi

    # 7: --timeout while another process holds the write lock; nothing written
    if lmdb_only "exit 7: --timeout against LMDB's writer lock held by the damage helper"; then
        "$DAMAGE" "$db" hold-write 4 >"$T/hold" &
        local holder=$!
        for _ in $(seq 50); do grep -q holding "$T/hold" 2>/dev/null && break; sleep 0.1; done
        local t0=$SECONDS
        run 7 "$U" put --timeout 1 "$db" client '{"id": "t1", "email": "t1@x"}'
        err_has "gave up after 1 s waiting for another process's write transaction"; err_has "nothing was written"
        run 7 "$U" --json --timeout 0.5 seq "$db" t
        json_ok 'd["status"] == 503 and d["exit_code"] == 7 and "nothing was written" in d["detail"]'
        if [ $((SECONDS - t0)) -lt 4 ]; then ok; else fail "--timeout did not end the wait"; fi
        run 2 "$U" put --timeout x "$db" client '{}'; err_has "--timeout needs"
        # init and load's schema line honour it too (issue 23): a schema adding a type
        "$PY" -c 'import json, sys; s = json.load(open(sys.argv[1])); s["types"]["extra"] = {"key": "id", "fields": {"id": {"type": "uint"}}}; open(sys.argv[2], "w").write(json.dumps(s)); open(sys.argv[3], "w").write(json.dumps({"schema": s}) + "\n")' "$SCEN" "$T/extra.json" "$T/extra.ndjson"
        t0=$SECONDS
        run 7 "$U" init --timeout 0.5 "$db" "$T/extra.json"; err_has "gave up after 0.5 s"
        run 7 "$U" load --timeout 0.5 "$db" "$T/extra.ndjson"; err_has "nothing was written"
        if [ $((SECONDS - t0)) -lt 3 ]; then ok; else fail "--timeout did not end init's or load's wait"; fi
        wait "$holder"
        run 0 "$U" schema "$db"; json_ok '"extra" not in d["types"]'
        run 4 "$U" get "$db" client '"t1"'
        run 4 "$U" seq "$db" t --get
        run 0 "$U" put --timeout 5 "$db" client '{"id": "t1", "email": "t1@x"}'
    fi

    # every limit is in --help
    run 0 "$U" --help; out_has "a record 4 MiB"; out_has "16 levels"; out_has "names 64 bytes"; out_has "8 fields per index"
    # messages say what was given, what is allowed, and where
    "$PY" -c 'print("{\"id\": \"big\", \"email\": \"" + "x" * 5000000 + "\"}")' >"$T/big.json"
    run_in 5 "$T/big.json" "$U" put "$db" client -; err_has "a record may have at most 4194304 bytes (4 MiB)"
    run 5 "$U" delete "$db" client '{"id": 1}'
    err_has 'type "client": a key is one value of the key field "id" (str), not a map or array'
    run 4 "$U" delete "$db" client '"nobody"'; err_has "$db: client \"nobody\": no such record"
    run 4 "$U" update "$db" client '"nobody"' '{"name": "x"}' --merge; err_has "$db: client \"nobody\": no such record"

    # --or-get / --upsert say what happened on stdout with --json
    run 0 "$U" --json put "$db" client '{"id": "c1", "email": "other@x"}' --or-get
    json_ok 'd == {"created": False, "record": {"id": "c1", "email": "a@x"}}'
    run 0 "$U" --json put "$db" client '{"id": "c5", "email": "c5@x"}' --or-get
    json_ok 'd == {"created": True, "record": {"id": "c5", "email": "c5@x"}}'
    run 0 "$U" --json put "$db" client '{"id": "c5", "email": "c5@x", "name": "Five"}' --upsert email
    json_ok 'd == {"created": False, "updated": True, "record": {"id": "c5", "email": "c5@x", "name": "Five"}}'
    run 0 "$U" --json put "$db" client '{"id": "c6", "email": "c6@x"}' --upsert
    json_ok 'd["created"] is True and d["updated"] is False and d["record"]["id"] == "c6"'

    # a failed init leaves nothing behind, and removes only what it created
    echo '{"types": {"x": {"key": "id", "fields": {"id": {"type": "nosuch"}}}}}' >"$T/bad.json"
    if [ -n "$PG" ]; then
        # on a server: the schema is applied in one transaction, so nothing of it stays
        run 5 "$U" init "$(db_of new)" "$T/bad.json"
        run 0 psql -X -tAc "SELECT count(*) FROM pg_namespace WHERE nspname = 'cli_exits_new'"; out_is 0
        # two inits of one new database at once: each is one server transaction under the
        # engine's advisory lock, so one creates it and the other finds it applied
        local both s1 s2 p1
        both=$(db_of both)
        "$U" init "$both" "$SCEN" >"$T/i1" 2>&1 &
        p1=$!
        "$U" init "$both" "$SCEN" >"$T/i2" 2>&1; s2=$?
        wait "$p1"; s1=$?
        if [ "$s1" -eq 0 ] && [ "$s2" -eq 0 ]; then ok; else fail "two inits at once: exit $s1 and $s2: $(cat "$T/i1" "$T/i2")"; fi
        if [ "$(cat "$T/i1" "$T/i2" | grep -c 'added type "client"')" -eq 1 ] &&
            [ "$(cat "$T/i1" "$T/i2" | grep -c ': no change$')" -eq 1 ]; then ok; else fail "two inits at once: $(cat "$T/i1" "$T/i2")"; fi
        run 0 "$U" check "$both"
    fi
    if lmdb_only "a failed init leaves no directory, files or private directory behind"; then
        run 5 "$U" init "$T/new" "$T/bad.json"
        if [ ! -e "$T/new" ]; then ok; else fail "failed init left $T/new behind"; fi
        mkdir "$T/mine"; echo keep >"$T/mine/notes"
        run 5 "$U" init "$T/mine" "$T/bad.json"
        if [ -f "$T/mine/notes" ] && [ ! -e "$T/mine/data.mdb" ] && [ ! -e "$T/mine/lock.mdb" ]; then ok; else fail "failed init in an existing directory: $(ls "$T/mine")"; fi
        # a new database is built in a private directory and put in place when complete
        # (issue 23): none is left behind, and it gets the mode udb_open gives a directory
        if [ -z "$(find "$T" -maxdepth 2 -name '*uniqdb-new*')" ]; then ok; else fail "a failed init left its private directory: $(find "$T" -maxdepth 2 -name '*uniqdb-new*')"; fi
        run 0 "$U" init "$T/mine" "$SCEN"; run 0 "$U" put "$T/mine" client '{"id": "m", "email": "m@x"}'
        if [ -f "$T/mine/notes" ] && [ -z "$(find "$T" -maxdepth 2 -name '*uniqdb-new*')" ]; then ok; else fail "init in an existing directory: $(ls -A "$T/mine")"; fi
        (umask 027 && "$U" init "$T/modes.db/" "$SCEN" >/dev/null) || fail "init with a trailing slash"
        if [ "$(stat -c %a "$T/modes.db")" = 750 ] && [ "$(stat -c %a "$T/modes.db/data.mdb")" = 640 ]; then ok; else fail "modes of a new database: $(stat -c '%a %n' "$T/modes.db" "$T/modes.db"/*)"; fi
    fi
    run 5 "$U" init "$db" "$T/bad.json"              # an existing database is left as it was
    run 0 "$U" get "$db" client '"c1"'

    # read commands never create or modify: an empty LMDB environment made by
    # another program gets no uniqdb metadata
    if lmdb_only "read commands on a foreign LMDB environment and an empty directory"; then
        mkdir "$T/foreign"
        "$DAMAGE" "$T/foreign" list >/dev/null || fail "raw LMDB env"
        cp "$T/foreign/data.mdb" "$T/foreign.before"
        for c in stat check schema dump; do
            run 1 "$U" "$c" "$T/foreign"; err_has "not a uniqdb database"
        done
        run 1 "$U" get "$T/foreign" client 1; err_has "not a uniqdb database"
        if cmp -s "$T/foreign/data.mdb" "$T/foreign.before"; then ok; else fail "a read command wrote into a foreign LMDB environment"; fi
        run 0 "$DAMAGE" "$T/foreign" list; out_empty
        mkdir "$T/emptydir"
        run 1 "$U" check "$T/emptydir"; err_has "not a uniqdb database"
        if [ -z "$(ls -A "$T/emptydir")" ]; then ok; else fail "check wrote into an empty directory"; fi
    fi
    # ... and on a server, a read of a schema that holds no database creates nothing there
    if [ -n "$PG" ]; then
        local none st
        none=$(db_of none)
        for c in stat check schema dump; do
            "$U" "$c" "$none" >"$T/out" 2>"$T/err"; st=$?
            if [ "$st" -ne 0 ]; then ok; else fail "$c of a schema without a database: exit 0"; fi
        done
        run 1 "$U" seq "$none" invoices --get; err_has "not a uniqdb database"
        run 0 psql -X -tAc "SELECT count(*) FROM pg_namespace WHERE nspname = 'cli_exits_none'"; out_is 0
    fi
}

# ---------------------------------------------------------------------------
# Read-only databases, as a user who cannot write them (root ignores file
# permissions, so the commands run as "nobody" when the test runs as root).
group_readonly() {
    local as=() db="$T/ro"
    if [ -n "$PG" ]; then
        echo "readonly: SKIP on PostgreSQL (LMDB only): file permissions of a database directory and its lock.mdb" >&2
        exit 77
    fi
    if [ "$(id -u)" -eq 0 ]; then
        if ! runuser -u nobody -- true 2>/dev/null; then
            echo "readonly: SKIP: running as root and cannot run as nobody (runuser)" >&2
            exit 77
        fi
        as=(runuser -u nobody --)
    fi
    chmod 755 "$T"
    if ! "${as[@]}" test -x "$U"; then
        echo "readonly: SKIP: $U is not executable as ${as[*]:-this user}" >&2
        exit 77
    fi
    run 0 "$U" init "$db" "$SCEN"
    run 0 "$U" put "$db" client '{"id": "c1", "email": "a@x"}'
    run 0 "$U" seq "$db" invoices
    chmod 444 "$db"/*.mdb; chmod 555 "$db"
    run 0 "${as[@]}" "$U" get "$db" client '"c1"'; json_ok 'd["email"] == "a@x"'
    err_has "lock.mdb cannot be written"; err_has "may be inconsistent"
    run 0 "${as[@]}" "$U" find "$db" client email '"a@x"'; json_ok 'd["id"] == "c1"'
    run 0 "${as[@]}" "$U" scan "$db" client; json_ok 'len(lines) == 1'
    run 0 "${as[@]}" "$U" dump "$db"; json_ok 'lines[-2]["sequences"]["invoices"] == 1 and "end" in lines[-1]'
    run 0 "${as[@]}" "$U" check "$db"; out_has "check: ok (1 records"
    run 0 "${as[@]}" "$U" stat "$db"; out_has "client"
    run 0 "${as[@]}" "$U" schema "$db"; out_has '"client"'
    run 0 "${as[@]}" "$U" seq "$db" invoices --get; out_is 1
    # writing is refused as permission denied, and nothing changed
    run 1 "${as[@]}" "$U" put "$db" client '{"id": "c2", "email": "b@x"}'; err_has "permission denied"
    run 0 "$U" scan "$db" client; json_ok 'len(lines) == 1'
    # the three failures a user fixes differently are told apart
    run 1 "${as[@]}" "$U" get "$T/nowhere" client 1; err_has "no such directory"
    mkdir -m 755 "$T/empty"
    run 1 "${as[@]}" "$U" get "$T/empty" client 1; err_has "not a uniqdb database"
    cp -r "$db" "$T/private"; chmod 700 "$T/private"
    if [ "${#as[@]}" -gt 0 ] || [ "$(id -u)" -ne 0 ]; then
        run 1 "${as[@]}" "$U" get "$T/private" client 1; err_has "permission denied"
        if grep -q "not a uniqdb" "$T/err"; then fail "an unreadable directory called not a database"; else ok; fi
    fi
    chmod 755 "$db" "$T/private"

    # reads never change who can write (issue 23): run as root on another user's
    # database whose lock.mdb is missing, each read makes lock.mdb that user's, and
    # the owner can still write
    if [ "${#as[@]}" -gt 0 ]; then
        local own="$T/owned" nobody_id
        nobody_id=$(id -u nobody)
        mkdir "$own"; chown nobody "$own"
        run 0 "${as[@]}" "$U" init "$own/db" "$SCEN"
        run 0 "${as[@]}" "$U" put "$own/db" client '{"id": "o1", "email": "o1@x"}'
        run 0 "${as[@]}" "$U" seq "$own/db" invoices
        # read_as_root CMD ARGS...: CMD on the database with lock.mdb missing
        read_as_root() {
            local cmd=$1
            shift
            rm -f "$own/db/lock.mdb"
            run 0 "$U" "$cmd" "$own/db" "$@"
            if [ "$(stat -c %u "$own/db/lock.mdb" 2>/dev/null)" = "$nobody_id" ]; then ok; else fail "uniqdb $cmd as root made lock.mdb: $(stat -c '%U %a' "$own/db/lock.mdb" 2>&1)"; fi
        }
        read_as_root scan client; read_as_root get client '"o1"'; read_as_root find client email '"o1@x"'
        read_as_root dump; read_as_root check; read_as_root stat; read_as_root schema
        read_as_root seq invoices --get
        rm -f "$own/db/lock.mdb"; run 0 "$U" export --postgres "$own/db"
        if [ "$(stat -c %u "$own/db/lock.mdb")" = "$nobody_id" ]; then ok; else fail "uniqdb export as root made lock.mdb root's"; fi
        run 0 "${as[@]}" "$U" put "$own/db" client '{"id": "o2", "email": "o2@x"}'
        run 0 "${as[@]}" "$U" seq "$own/db" invoices; out_is 2
    fi
}

# ---------------------------------------------------------------------------
group_types() {
    local db
    db=$(db_of db)

    run 0 "$U" init "$db" "$SCHEMA_ALL"
    # every field type, large integers at both ends, binary with every byte class,
    # NUL and non-ASCII in strings, nested any values.  PostgreSQL's text holds no NUL
    # (README, "Moving to PostgreSQL"): there such a str is refused, exit 5, and the
    # string is checked without it
    local nul='\u0000 '
    if [ -n "$PG" ]; then
        run 5 "$U" put "$db" thing '{"k": 3, "s": "a\u0000b"}'; err_has 'field "s": PostgreSQL text cannot hold a NUL byte'
        run 4 "$U" get "$db" thing 3
        nul=''
    fi
    local rec='{"k":18446744073709551615,"s":"h\u00e9llo '"$nul"'\"q\" \\ \ud83d\ude00","i":-9223372036854775808,"f":0.1,"b":true,"raw":{"$bin":"AAEC/4CBfn8="},"e":"y","a":{"n":null,"big":9007199254740993,"huge":18446744073709551614,"neg":-9007199254740993,"neg19":-1000000000000000000,"arr":[1,2.5,-0.0,1e+300,false,{"$bin":""}],"s":"x"}}'
    run 0 "$U" put "$db" thing "$rec"
    json_ok 'd["k"] == 18446744073709551615 and d["i"] == -9223372036854775808 and d["a"]["big"] == 9007199254740993 and d["a"]["huge"] == 18446744073709551614 and d["raw"] == {"$bin": "AAEC/4CBfn8="} and d["s"] == "h\u00e9llo '"$nul"'\"q\" \\ \U0001F600" and d["f"] == 0.1 and d["b"] is True and d["a"]["arr"][2] == 0.0'
    # exact text round trip (numbers are not squeezed through doubles)
    run 0 "$U" get "$db" thing 18446744073709551615
    if grep -qF '"k":18446744073709551615,' "$T/out" && grep -qF '"big":9007199254740993,' "$T/out" &&
        grep -qF '"huge":18446744073709551614,' "$T/out" && grep -qF '"f":0.1,' "$T/out" &&
        grep -qF '"neg":-9007199254740993,"neg19":-1000000000000000000,' "$T/out" && grep -qF '[1,2.5,-0.0,1e+300,false,{"$bin":""}]' "$T/out"; then ok; else fail "exact numbers in: $(cat "$T/out")"; fi
    local first; first=$(cat "$T/out")
    run 0 "$U" put "$db" thing "$first" --or-get   # what get prints is accepted back as is
    if [ "$(cat "$T/out")" = "$first" ]; then ok; else fail "get output does not round-trip"; fi

    # -0.0 in a float field is kept, not silently turned into 0.0
    run 0 "$U" put "$db" thing '{"k": 77, "f": -0.0}'; out_has '"f":-0.0'
    run 0 "$U" get "$db" thing 77; out_has '"f":-0.0'
    run 0 "$U" delete "$db" thing 77
    run 0 "$U" put "$db" thing '{"k": 9007199254740993, "f": 3, "i": 9223372036854775807, "e": "x", "raw": {"$bin": "AA=="}}'
    json_ok 'd["f"] == 3.0 and isinstance(d["f"], float) and d["k"] == 9007199254740993'
    if grep -qF '"f":3.0' "$T/out"; then ok; else fail "float field printed as a real"; fi
    run 0 "$U" put "$db" thing '{"k": 0, "f": {"$float": "-inf"}, "a": [{"$float": "nan"}, {"$float": "inf"}]}'
    json_ok 'd["f"] == {"$float": "-inf"} and d["a"] == [{"$float": "nan"}, {"$float": "inf"}]'
    run 5 "$U" put "$db" thing '{"k": 6, "f": {"$float": "nan"}}'; err_has '"f"'   # the engine refuses NaN in float fields
    # msgpack extension values: the engine stores none, so the tool refuses them itself
    run 5 "$U" put "$db" thing '{"k": 5, "a": {"$ext": [5, "AQI="]}}'; err_has "extension"
    run 5 "$U" put "$db" thing '{"k": 5, "a": [{"$ext": [500, "AQI="]}]}'; err_has 'at /a/0: "$ext"'
    run 5 "$U" put "$db" thing '{"k": 5, "a": {"$float": "NaN"}}'; err_has '"$float" must be'
    run 0 "$U" find "$db" thing by_raw '{"$bin": "AAEC/4CBfn8="}'; json_ok 'd["k"] == 18446744073709551615'
    run 0 "$U" scan "$db" thing; json_ok '[r["k"] for r in lines] == [0, 9007199254740993, 18446744073709551615]'
    run 0 "$U" scan "$db" thing by_i; json_ok '[r["k"] for r in lines if "i" in r] == [18446744073709551615, 9007199254740993]'

    # invalid input: exit 5, the field named
    run 5 "$U" put "$db" thing '{"k": 1, "s": 5}'; err_has '"s"'
    run 5 "$U" put "$db" thing '{"k": 1, "b": "yes"}'; err_has '"b"'
    run 5 "$U" put "$db" thing '{"k": 1, "e": "z"}'; err_has '"e"'; err_has "x, y"
    run 5 "$U" put "$db" thing '{"k": 1, "nosuch": 1}'; err_has "nosuch"
    run 5 "$U" put "$db" thing '{"k": -1}'; err_has '"k"'
    run 5 "$U" put "$db" thing '{"k": 1, "raw": "AA=="}'; err_has '"raw"'
    run 5 "$U" put "$db" thing '{"k": 1, "raw": {"$bin": "not base64!"}}'; err_has 'field "raw"'; err_has base64
    run 5 "$U" put "$db" thing '{"k": 1, "a": [{"$bin": "A"}]}'; err_has '/a/0'
    run 5 "$U" put "$db" thing '{"k": 1, "i": 9223372036854775808}'; err_has '"i"'
    run 5 "$U" put "$db" thing '{"k": 18446744073709551616}'; err_has "out of range"
    run 5 "$U" put "$db" thing '{"k": -9223372036854775809}'; err_has "out of range"
    # reals a float64 cannot hold: refused with the field, what was given and what is allowed
    run 5 "$U" put "$db" thing '{"k": 1, "f": 1e999}'
    err_has 'field "f": 1e999 is out of the float64 range: finite numbers from -1.7976931348623157e308 to 1.7976931348623157e308 are allowed'
    err_has '(line 1, column 15)'
    if grep -qF "integer" "$T/err"; then fail "a real called an integer"; else ok; fi
    run 5 "$U" put "$db" thing '{"k": 1, "a": {"x": [2, -1.5E+400]}}'; err_has 'at /a/x/1: -1.5E+400 is out of the float64 range'
    run 5 "$U" put "$db" thing '{"k": 1, "f": 1e-400}'
    err_has 'field "f": 1e-400 is too close to zero for a float64: it would be stored as 0, without even its first digit (a float64 holds 0 and magnitudes from 4.9406564584124654e-324, printed 5e-324, to 1.7976931348623157e308'
    run 5 "$U" put "$db" thing '{"k": 1, "a": [-2e-330]}'; err_has 'at /a/0: -2e-330 is too close to zero for a float64: it would be stored as -0,'
    run 5 "$U" put "$db" thing '{"k": 1, "a": 3e-324}'; err_has 'field "a": 3e-324 is too close to zero for a float64: it would be stored as 5e-324,'
    run 5 "$U" put "$db" thing '{"k": 1, "a": 8e-324}'; err_has 'would be stored as 1e-323,'
    run 5 "$U" put "$db" thing "{\"k\": 1, \"f\": 0.$("$PY" -c 'print("0" * 400)')1}"; err_has 'field "f": 0.000000000000000000...00000000000000000001 is too close to zero'
    printf '{"k": 1,\n  "f":\n   1e400}' >"$T/multiline.json"
    run_in 5 "$T/multiline.json" "$U" put "$db" thing -; err_has '(line 3, column 4)'
    run 5 "$U" --json put "$db" thing '{"k": 1, "f": -1e309}'
    json_ok 'd["status"] == 422 and "out of the float64 range" in d["detail"]'
    # ... while zero in any spelling, the extremes, and subnormals are stored exactly
    run 0 "$U" put "$db" thing '{"k": 78, "f": 1.7976931348623157e308, "a": [0e-999, -0.0E+999, 5e-324, -4.9406564584124654e-324, 2.2250738585072014e-308, 1e-310, -1.7976931348623157e308]}'
    out_has '"f":1.7976931348623157e+308,"a":[0.0,-0.0,5e-324,-5e-324,2.2250738585072014e-308,1e-310,-1.7976931348623157e+308]'
    run 0 "$U" delete "$db" thing 78
    # every float64 below 2^-1022 as print writes it (the shortest form, also Python's repr)
    # reads back: the 2000 smallest and 2000 spread over the subnormal range
    "$PY" -c 'import json, struct, random; r = random.Random(7); print(json.dumps({"k": 79, "a": [struct.unpack("<d", struct.pack("<Q", b))[0] * s for b in list(range(1, 2001)) + [r.randrange(1, 1 << 52) for _ in range(2000)] for s in (1, -1)]}))' >"$T/subnormal.json"
    run_in 0 "$T/subnormal.json" "$U" put "$db" thing -
    if "$PY" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$T/out" "$T/subnormal.json"; then ok; else fail "subnormals changed"; fi
    run 0 "$U" delete "$db" thing 79
    run 5 "$U" put "$db" thing '{"k": 1, "k": 2}'; err_has "duplicate"
    run 5 "$U" put "$db" thing '{"k": 1,'; err_has "invalid JSON"
    run 5 "$U" put "$db" thing '[1, 2]'; err_has "JSON object"
    run 5 "$U" --json put "$db" thing '{"k": 1, "s": 5}'
    json_ok 'd["status"] == 422 and d["type"].endswith("invalid") and "\"s\"" in d["detail"]'
    run 5 "$U" --json put "$db" thing '{"k": '
    json_ok 'd["status"] == 422 and "invalid JSON" in d["detail"]'
    run 0 "$U" scan "$db" thing; json_ok 'len(lines) == 3'   # nothing invalid was written
}

# ---------------------------------------------------------------------------
group_dumpload() {
    local a b c m ta kill atomic ns d1 d2 lk lk2
    a=$(db_of a) b=$(db_of b) c=$(db_of c) m=$(db_of m) ta=$(db_of ta) kill=$(db_of kill)
    atomic=$(db_of atomic) ns=$(db_of ns) d1=$(db_of d1) d2=$(db_of d2) lk=$(db_of lk) lk2=$(db_of lk2)
    if ! needs_scan "dumpload: every check starts from a dump"; then exit 77; fi

    # a database with every scenario type (the demo fills all five) plus more
    run 0 "$U" demo "$a"
    run 0 "$U" put "$a" booking '{"psychologist": "p9", "date": "2026-02-01", "time": "08:00", "status": "completed", "note": {"$bin": "3q2+7w=="}}'
    run 0 "$U" put "$a" workflow '{"workflow_name": "big", "version": -4, "execution_engine": "argo", "definition": {"x": [18446744073709551615, 0.5, null, {"$bin": ""}]}}'
    # what an `any` field may hold but JSON cannot say directly: a non-UTF-8
    # string, maps with non-string, NUL-holding or duplicate keys, a map that
    # looks like a marker
    run 0 "$U" put "$a" booking '{"psychologist": "p9", "date": "2026-02-02", "time": "08:00", "status": "completed", "note": {"a": {"$map": [[1, "one"], [{"$str": "/w=="}, null]]}, "b": {"$map": [["$bin", "not binary"]]}, "c": {"$map": [["k", 1], ["k", 2]]}, "d": {"$str": "aGk="}, "e": {"$map": [["a\u0000b", 1]]}}}'
    json_ok 'd["note"] == {"a": {"$map": [[1, "one"], [{"$str": "/w=="}, None]]}, "b": {"$map": [["$bin", "not binary"]]}, "c": {"$map": [["k", 1], ["k", 2]]}, "d": "hi", "e": {"$map": [["a\x00b", 1]]}}'
    run 5 "$U" put "$a" booking '{"psychologist": "p9", "date": "2026-02-03", "time": "08:00", "status": "completed", "note": {"$map": [[1]]}}'
    err_has '"$map" must be an array of [key, value] pairs'
    # a msgpack float32 (stored through the C API; here written underneath) keeps its bytes
    # through dump | load: {"k": 1, "a": [float32 0.1, {"x": float32 FLT_MAX}]}
    if lmdb_only "a float32 written underneath with the LMDB damage helper"; then
        local f32=82a16b01a16192ca3dcccccd81a178ca7f7fffff
        run 0 "$U" init "$T/f32" "$SCHEMA_ALL"
        run 0 "$U" put "$T/f32" thing '{"k": 1}'
        run 0 "$DAMAGE" "$T/f32" set-first-value t:thing "$f32"
        run 0 "$U" check "$T/f32"
        run 0 "$U" get "$T/f32" thing 1; out_is '{"k":1,"a":[{"$float32":0.1},{"x":{"$float32":3.4028235e+38}}]}'
        "$U" dump "$T/f32" >"$T/f32.nd"
        run_in 0 "$T/f32.nd" "$U" load "$T/f32b"
        run 0 "$DAMAGE" "$T/f32b" first-value t:thing; out_has "value $f32"
        run 0 "$U" dump "$T/f32b"
        if cmp -s "$T/out" "$T/f32.nd"; then ok; else fail "float32: dump -> load -> dump differs"; fi
        # ... and can be written as JSON: the shortest text that reads back, NaN and infinities by name
        run 0 "$U" put "$T/f32" thing '{"k": 2, "a": [{"$float32": 0.1}, {"$float32": -0.0}, {"$float32": 16777217}, {"$float32": 1e-45}, {"$float32": "nan"}, {"$float32": "-inf"}, {"$map": [["$float32", 1]]}]}'
        out_is '{"k":2,"a":[{"$float32":0.1},{"$float32":-0.0},{"$float32":16777216.0},{"$float32":1e-45},{"$float32":"nan"},{"$float32":"-inf"},{"$map":[["$float32",1]]}]}'
        run 5 "$U" put "$T/f32" thing '{"k": 3, "a": {"$float32": 1e39}}'; err_has 'field "a": "$float32": out of the float32 range'
        run 5 "$U" put "$T/f32" thing '{"k": 3, "a": [{"$float32": 1e-50}]}'; err_has 'at /a/0: "$float32": too close to zero for a float32'
        run 5 "$U" put "$T/f32" thing '{"k": 3, "a": {"$float32": "0.1"}}'; err_has '"$float32" must be a number, or "nan", "inf" or "-inf"'
    fi

    # strings shaped like the in-band number marker older versions used
    # ("\u0001udb" + 16 hex digits + ":"), and a string of the byte 0xFF and
    # digits (how big integers are held inside the tool), come back as strings
    local mk='\u0001udb702d511b3a46fda5:'
    run 0 "$U" put "$a" booking '{"psychologist": "p9", "date": "2026-02-04", "time": "08:00", "status": "completed", "note": {"'"$mk"'18446744073709551615": "'"$mk"'0.1", "m": ["'"$mk"'1", "\u0001udb0123456789abcdef:-5", "\u0001udb", "x'"$mk"'2", ["'"$mk"'"]], "u": "\u00ff18446744073709551615", "b": {"$str": "/zE4NDQ2NzQ0MDczNzA5NTUxNjE1"}, "n": 18446744073709551615}}'
    json_ok 'd["note"] == {"\x01udb702d511b3a46fda5:18446744073709551615": "\x01udb702d511b3a46fda5:0.1", "m": ["\x01udb702d511b3a46fda5:1", "\x01udb0123456789abcdef:-5", "\x01udb", "x\x01udb702d511b3a46fda5:2", ["\x01udb702d511b3a46fda5:"]], "u": "\xff18446744073709551615", "b": {"$str": "/zE4NDQ2NzQ0MDczNzA5NTUxNjE1"}, "n": 18446744073709551615}'
    if grep -qF '"note":{"\u0001udb702d511b3a46fda5:18446744073709551615":"\u0001udb702d511b3a46fda5:0.1",' "$T/out"; then ok; else fail "marker-shaped strings printed as: $(cat "$T/out")"; fi
    run 0 "$U" seq "$a" "invoice:2026"
    run 0 "$U" dump "$a"
    cp "$T/out" "$T/a.dump"
    json_ok 'list(lines[0]) == ["schema"] and list(lines[-2]) == ["sequences"] and {l["type"] for l in lines[1:-2]} == {"schedule_workflow", "client", "workflow", "booking", "case"} and lines[-2]["sequences"]["invoice:2026"] == 1 and lines[-2]["sequences"]["booking.id"] >= 7'
    # the end line: records written per type (every type dumped, in schema order) and
    # the number of sequences; nothing left out
    json_ok 'list(lines[-1]) == ["end"] and lines[-1]["end"] == {"records": {t: sum(1 for l in lines[1:-2] if l["type"] == t) for t in ["schedule_workflow", "client", "workflow", "booking", "case"]}, "sequences": len(lines[-2]["sequences"])} and list(lines[-1]["end"]["records"]) == ["schedule_workflow", "client", "workflow", "booking", "case"]'
    # types in schema order, then primary-key order
    json_ok '[l["type"] for l in lines[1:-2]] == sorted([l["type"] for l in lines[1:-2]], key=["schedule_workflow", "client", "workflow", "booking", "case"].index)'
    json_ok 'all(x["record"]["id"] < y["record"]["id"] for x, y in zip(lines[1:-2], lines[2:-2]) if x["type"] == y["type"] == "booking")'

    # dump | load | dump is byte-identical
    run_in 0 "$T/a.dump" "$U" load "$b"; err_empty
    run 0 "$U" dump "$b"
    if cmp -s "$T/out" "$T/a.dump"; then ok; else fail "dump -> load -> dump differs"; diff "$T/a.dump" "$T/out" | head -5 >&2; fi
    run 0 "$U" check "$b"; out_has "check: ok"
    # across backends (on PostgreSQL): the dump of the server's database loads into a
    # directory, `dump DIR | load URL` moves that onto the server and `dump URL | load DIR`
    # back, and every dump is byte-identical
    if [ -n "$PG" ]; then
        local st
        run_in 0 "$T/a.dump" "$U" load "$T/dir-a"; err_empty
        run 0 "$U" dump "$T/dir-a"
        if cmp -s "$T/out" "$T/a.dump"; then ok; else fail "dump URL | load DIR | dump DIR differs"; diff "$T/a.dump" "$T/out" | head -5 >&2; fi
        "$U" dump "$T/dir-a" | "$U" load "$(db_of moved)" >"$T/out" 2>"$T/err"; st=$?
        if [ "$st" -eq 0 ]; then ok; else fail "dump DIR | load URL: exit $st"; fi
        run 0 "$U" dump "$(db_of moved)"
        if cmp -s "$T/out" "$T/a.dump"; then ok; else fail "dump DIR | load URL | dump URL differs"; diff "$T/a.dump" "$T/out" | head -5 >&2; fi
        "$U" dump "$(db_of moved)" | "$U" load --atomic "$T/dir-back" >"$T/out" 2>"$T/err"; st=$?
        if [ "$st" -eq 0 ]; then ok; else fail "dump URL | load --atomic DIR: exit $st"; fi
        run 0 "$U" dump "$T/dir-back"
        if cmp -s "$T/out" "$T/a.dump"; then ok; else fail "dump URL | load DIR | dump DIR differs"; fi
        run 0 "$U" check "$(db_of moved)"; out_has "check: ok"
    fi
    # the restored sequences hand out the next values, not used ones
    run 0 "$U" put "$b" booking '{"psychologist": "p9", "date": "2026-03-01", "time": "08:00", "status": "pending"}'
    local next; next=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readlines()[-2])["sequences"]["booking.id"] + 1)' "$T/a.dump")
    json_ok "d['id'] == $next"
    # dump of chosen types only
    run 0 "$U" dump "$a" client case
    json_ok '{l["type"] for l in lines[1:-2]} == {"client", "case"} and list(lines[-1]["end"]["records"]) == ["client", "case"]'
    run 2 "$U" dump "$a" nosuchtype; err_has nosuchtype

    # loading into a database that has data: conflicts are reported by line,
    # the rest is loaded, exit 3
    "$U" init "$c" "$SCEN" >/dev/null
    "$U" put "$c" client '{"id": "c-7f3a", "email": "other@example.com"}' >/dev/null
    "$U" put "$c" client '{"id": "zz", "email": "ana@example.com"}' >/dev/null
    local line; line=$(grep -n '"type":"client"' "$T/a.dump" | head -1 | cut -d: -f1)
    run 3 "$U" load "$c" "$T/a.dump"
    err_has "line $line: duplicate key"; err_has "conflicting"
    if [ "$(grep -c '^uniqdb: line' "$T/err")" -eq 1 ]; then ok; else fail "expected exactly one conflicting line"; fi
    run 0 "$U" get "$c" client '"c-7f3a"'; json_ok 'd["email"] == "other@example.com"'   # not overwritten
    run 0 "$U" scan "$c" case; json_ok 'len(lines) == 24'
    run 0 "$U" check "$c"
    # every record conflicts now: the first 20 lines are listed, then how many more
    # were not (text on stderr; --json: a problem object per listed line, with its
    # number, then one with the count)
    local nrec; nrec=$(grep -c '"record":' "$T/a.dump")
    run 3 "$U" load "$c" "$T/a.dump"
    if [ "$(grep -c '^uniqdb: line [0-9]*: duplicate key' "$T/err")" -eq 20 ]; then ok; else fail "expected 20 listed conflicts"; fi
    err_has "$((nrec - 20)) more conflicting or invalid lines not listed (only the first 20 are)"
    err_has "loaded 0 records, $nrec conflicting"
    run 3 "$U" load --json "$c" "$T/a.dump"
    json_ok "len(lines) == 21 and all(p['status'] == 409 and 'line' in p and 'index' in p for p in lines[:20]) and lines[20]['status'] == 409 and lines[20]['not_listed'] == $nrec - 20"
    if [ "$nrec" -gt 21 ]; then ok; else fail "the dump has too few records to show the cap"; fi
    # --or-get: conflicting records are skipped, exit 0
    run 0 "$U" load "$c" "$T/a.dump" --or-get; err_has "skipped"
    # sequences in a database that had them are never lowered
    run 0 "$U" seq "$c" "invoice:2026" --set 100
    run 0 "$U" load "$c" "$T/a.dump" --or-get
    run 0 "$U" seq "$c" "invoice:2026" --get; out_is 100

    # invalid lines: reported by line number, the others loaded, exit 5
    {
        head -1 "$T/a.dump"
        echo '{"type": "client", "record": {"id": "n1", "email": "n1@x"}}'
        echo 'this is not json'
        echo '{"type": "client", "record": {"id": "n2", "email": 5}}'
        echo '{"what": 1}'
        echo ''
        echo '{"type": "client", "record": {"id": "n3", "email": "n3@x"}}'
    } >"$T/mixed.ndjson"
    run 5 "$U" load --no-end "$m" "$T/mixed.ndjson"
    err_has "line 3: invalid JSON"; err_has 'line 4: type "client", field "email"'; err_has "line 5: expected"
    run 0 "$U" scan "$m" client; json_ok '[r["id"] for r in lines] == ["n1", "n3"]'
    run 1 "$U" load "$(db_of m2)" "$T/does-not-exist"
    # --atomic: one transaction, a bad line anywhere and nothing is written; a database the
    # load created is removed again
    run 5 "$U" load --atomic --no-end "$(db_of ma)" "$T/mixed.ndjson"
    err_has "line 3: invalid JSON"; err_has 'line 4: type "client", field "email"'; err_has "line 5: expected"
    err_has "--atomic: nothing loaded (0 conflicting, 3 invalid)"
    if [ -z "$PG" ]; then
        err_has "--atomic: the database was not created"
        if [ ! -e "$T/ma" ]; then ok; else fail "a failed --atomic load left the database it created"; fi
    else
        # on a server the schema line is applied in its own transaction, as for an existing
        # database, and stays; the records (one server transaction) do not
        err_has "--atomic: the schema change of line 1 stays applied"
        run 4 "$U" get "$(db_of ma)" client '"n1"'
        run 4 "$U" get "$(db_of ma)" client '"n3"'
    fi
    # the new database is built aside; if another process creates DB while the load
    # reads its input, the load puts nothing there (issue 23): the input comes
    # through a FIFO held open until `init` has made DB (its first line, the schema,
    # before: load decides whether DB is new once it has read that line)
    if lmdb_only "load --atomic builds a new database in a private directory beside DB"; then
        mkfifo "$T/fifo"
        "$U" load --atomic "$T/mt" "$T/fifo" >"$T/out" 2>"$T/err" &
        local lpid=$!
        exec 3>"$T/fifo"
        head -n 1 "$T/a.dump" >&3
        for _ in $(seq 100); do
            [ -n "$(find "$T" -maxdepth 1 -name '.mt.uniqdb-new-*')" ] && break
            sleep 0.05
        done
        if [ ! -e "$T/mt" ]; then ok; else fail "load --atomic made DB before its input ended"; fi
        "$U" init "$T/mt" "$SCEN" >/dev/null 2>&1 || fail "init beside a running load"
        "$U" put "$T/mt" client '{"id": "theirs", "email": "t@x"}' >/dev/null 2>&1 || fail "put"
        tail -n +2 "$T/a.dump" >&3
        exec 3>&-
        wait "$lpid"
        local got=$?
        if [ "$got" -eq 1 ]; then ok; else fail "load --atomic into a DB made meanwhile: exit $got (want 1)"; fi
        err_has "another process created this database while the load ran"
        run 0 "$U" scan "$T/mt" client; json_ok '[r["id"] for r in lines] == ["theirs"]'
        if [ -z "$(find "$T" -maxdepth 1 -name '.mt.uniqdb-new-*')" ]; then ok; else fail "load --atomic left its private directory"; fi
    fi

    # into a database with records: a new record, then a conflicting one, then a sequence
    {
        head -1 "$T/a.dump"
        echo '{"type": "client", "record": {"id": "n4", "email": "n4@x"}}'
        echo '{"type": "client", "record": {"id": "n5", "email": "n1@x"}}'
        echo '{"sequences": {"atomic.test": 41}}'
    } >"$T/conflict.ndjson"
    run 3 "$U" load --atomic --no-end "$m" "$T/conflict.ndjson"
    err_has 'line 3: duplicate key in unique index "client.email"'; err_has "--atomic: nothing loaded (1 conflicting, 0 invalid)"
    run 0 "$U" scan "$m" client; json_ok '[r["id"] for r in lines] == ["n1", "n3"]'
    run 4 "$U" seq "$m" atomic.test --get
    # without it the lines before (and after) the bad one stay loaded
    run 3 "$U" load --no-end "$m" "$T/conflict.ndjson"; err_has 'line 3: duplicate key'
    run 0 "$U" scan "$m" client; json_ok '[r["id"] for r in lines] == ["n1", "n3", "n4"]'
    run 0 "$U" seq "$m" atomic.test --get; out_is 41
    # a schema change is its own transaction: it stays, and the user is told
    echo '{"types": {"t": {"key": "id", "fields": {"id": {"type": "uint"}}}}}' >"$T/ta.json"
    run 0 "$U" init "$ta" "$T/ta.json"
    {
        echo '{"schema": {"types": {"t": {"key": "id", "fields": {"id": {"type": "uint"}, "v": {"type": "str"}}}}}}'
        echo '{"type": "t", "record": {"id": 1, "v": 5}}'
    } >"$T/ta.ndjson"
    run 5 "$U" load --atomic --no-end "$ta" "$T/ta.ndjson"; err_has "the schema change of line 1 stays applied"
    run 0 "$U" scan "$ta" t; out_empty
    # a schema line after records cannot join their transaction: refused, nothing loaded
    { echo '{"type": "t", "record": {"id": 1}}'; head -1 "$T/ta.ndjson"; } >"$T/late.ndjson"
    run 5 "$U" load --atomic "$ta" "$T/late.ndjson"; err_has "line 2: with --atomic a schema line must come before every record"
    run 0 "$U" scan "$ta" t; out_empty
    # a killed load keeps a prefix of whole lines: each commit (up to 100000 records or 16 MiB
    # of them: here ~8000 records of 2 KiB) is durable before the next begins, and `check`
    # finds nothing wrong
    "$PY" -c 'import json
for i in range(30000): print(json.dumps({"type": "client", "record": {"id": "k%d" % i, "email": "k%d@x.org" % i, "name": "n" * 2000}}))' >"$T/kill.ndjson"
    "$U" init "$kill" "$SCEN" >/dev/null
    "$U" load "$kill" "$T/kill.ndjson" 2>/dev/null &
    local loader=$! status
    for _ in $(seq 1200); do
        "$U" get "$kill" client '"k0"' >/dev/null 2>&1 && break
        sleep 0.05
    done
    kill -9 "$loader" 2>/dev/null
    wait "$loader"; status=$?
    if [ "$status" -eq 137 ]; then ok; else fail "the load was not killed mid-way (exit $status)"; fi
    run 0 "$U" check "$kill"
    run 0 "$U" scan "$kill" client
    json_ok '0 < len(lines) < 30000 and {r["id"] for r in lines} == {"k%d" % i for i in range(len(lines))}'
    # a whole dump in one transaction reproduces it
    run_in 0 "$T/a.dump" "$U" load --atomic "$atomic"
    run 0 "$U" dump "$atomic"
    if cmp -s "$T/out" "$T/a.dump"; then ok; else fail "load --atomic: dump differs"; fi
    # records before the schema line, into a new database: one clear error
    { sed -n 2,4p "$T/a.dump"; head -1 "$T/a.dump"; } >"$T/noschema.ndjson"
    run 5 "$U" load "$ns" "$T/noschema.ndjson"
    err_has "$ns does not exist, and the input does not begin with a {\"schema\": ...} line (dump writes it first): a new database needs one; nothing was created"
    if [ "$(grep -c '^uniqdb:' "$T/err")" -eq 1 ]; then ok; else fail "expected one error for records before the schema"; fi
    if [ -z "$PG" ]; then
        if [ ! -e "$T/ns" ]; then ok; else fail "a load made a database without a schema"; fi
    else
        run 0 psql -X -tAc "SELECT count(*) FROM pg_namespace WHERE nspname = 'cli_dumpload_ns'"; out_is 0
    fi
    # into a database that exists without a schema: one error at the first record
    if lmdb_only "a database without a schema, made by deleting it underneath with the damage helper"; then
        "$U" init "$T/ns0" "$T/ta.json" >/dev/null
        "$DAMAGE" "$T/ns0" del-key __meta schema >/dev/null && "$DAMAGE" "$T/ns0" del-key __meta gen >/dev/null || fail "no schema"
        run 5 "$U" load "$T/ns0" "$T/noschema.ndjson"
        err_has "line 1: a record, but the database has no schema"
        if [ "$(grep -c '^uniqdb: line' "$T/err")" -eq 1 ]; then ok; else fail "expected one error for records before the schema"; fi
        # a database without a schema (made underneath): dump and export say so (exit 4, not found)
        "$U" init "$T/ns" "$T/ta.json" >/dev/null && "$DAMAGE" "$T/ns" del-key __meta schema >/dev/null &&
            "$DAMAGE" "$T/ns" del-key __meta gen >/dev/null || fail "no schema"
        run 4 "$U" dump "$T/ns"; err_has "$T/ns: no schema applied yet"; out_empty
        run 4 "$U" export --postgres "$T/ns"; err_has "$T/ns: no schema applied yet"; out_empty
    fi

    # an older schema (in a dump, or given to init) never drops a unique index
    echo '{"types":{"t":{"key":"id","fields":{"id":{"type":"uint","auto":true},"email":{"type":"str"}}}}}' >"$T/v1.json"
    echo '{"types":{"t":{"key":"id","fields":{"id":{"type":"uint","auto":true},"email":{"type":"str"}},"unique":{"email":{"fields":["email"]}}}}}' >"$T/v2.json"
    run 0 "$U" init "$d1" "$T/v1.json"; out_has 'added type "t" (2 fields)'
    run 0 "$U" put "$d1" t '{"email":"a@x"}'
    "$U" dump "$d1" >"$T/old.nd"
    run 0 "$U" init "$d2" "$T/v2.json"; out_has 'added type "t" (2 fields; unique index "t.email" (email))'
    run 0 "$U" put "$d2" t '{"id":100,"email":"b@x"}'
    run 0 "$U" load "$d2" "$T/old.nd"; err_has 'schema: kept unique index "t.email" (email) (not in the given schema)'
    run 3 "$U" put "$d2" t '{"email":"b@x"}'; err_has 't.email'
    run 5 "$U" init "$d2" "$T/v1.json"; err_has 'would remove or weaken: unique index "t.email" (email)'; err_has '--drop'
    run 0 "$U" init "$d2" "$T/v1.json" --keep; out_has 'kept unique index "t.email"'
    run 3 "$U" put "$d2" t '{"email":"a@x"}'
    run 0 "$U" init "$d2" "$T/v2.json"; out_has "no change"
    run 2 "$U" init "$d2" "$T/v1.json" --keep --drop
    run 0 "$U" load "$d2" "$T/old.nd" --drop --or-get; err_has 'schema: removed unique index "t.email" (email)'
    run 0 "$U" put "$d2" t '{"email":"a@x"}'
    run 0 "$U" check "$d2"

    # unique values far past LMDB's 511-byte key: distinct when they differ
    # only at the end, a conflict when equal, and dump | load | dump exact
    local long600 long600b
    long600=$("$PY" -c 'print("u" * 599 + "1")')
    long600b=$("$PY" -c 'print("u" * 599 + "2")')
    run 0 "$U" init "$lk" "$T/v2.json"
    run 0 "$U" put "$lk" t "{\"email\":\"$long600\"}"
    run 0 "$U" put "$lk" t "{\"email\":\"$long600b\"}"
    run 3 "$U" --json put "$lk" t "{\"email\":\"$long600\"}"
    json_ok 'd["values"] == ["u" * 599 + "1"] and d["existing_key"] == 1'
    run 0 "$U" find "$lk" t email "[\"$long600b\"]"; json_ok 'd["id"] == 2'
    run 0 "$U" scan "$lk" t email; json_ok '[r["id"] for r in lines] == [1, 2]'
    "$U" dump "$lk" >"$T/lk.nd"
    run_in 0 "$T/lk.nd" "$U" load "$lk2"
    run 0 "$U" dump "$lk2"
    if cmp -s "$T/out" "$T/lk.nd"; then ok; else fail "long keys: dump -> load -> dump differs"; fi
    run 0 "$U" check "$lk2"

    # 2000 types with a unique index each: more LMDB databases than the default
    # max_dbs; every command opens it, and dump | load copies it
    if lmdb_only "more LMDB named databases than the default max_dbs"; then
        "$PY" -c 'import json; print(json.dumps({"types": {"t%d" % i: {"key": "id", "fields": {"id": {"type": "uint"}, "v": {"type": "str"}}, "unique": {"v": {"fields": ["v"]}}} for i in range(2000)}}))' >"$T/many.json"
        run 0 "$U" init "$T/many" "$T/many.json"; out_has "schema applied, 2000 types"
        run 0 "$U" put "$T/many" t1999 '{"id": 1, "v": "x"}'
        run 3 "$U" put "$T/many" t1999 '{"id": 2, "v": "x"}'
        run 0 "$U" find "$T/many" t1999 v '"x"'; json_ok 'd["id"] == 1'
        run 0 "$U" check "$T/many"
        run 0 "$U" stat "$T/many"; out_has "t1999"
        "$U" dump "$T/many" >"$T/many.nd"
        run_in 0 "$T/many.nd" "$U" load "$T/many2"
        run 0 "$U" scan "$T/many2" t1999; json_ok 'lines == [{"id": 1, "v": "x"}]'
    fi
}

# ---------------------------------------------------------------------------
# dump's end line (issue 23): a dump ends with {"end": {"records": {TYPE: N}, "sequences": N}}
# (plus "left_out" when it could not write damaged records), and load takes nothing that
# is not a complete dump for a complete copy: a dump cut short, with a line missing, or of
# a damaged database fails the load (exit 5) -- as `dump | load`, whose status is load's.
#
# flip_leaf DATA.MDB: damage one leaf page of t:booking the way a bad disk does, in
# the file: every record's first byte on it (its msgpack header) and 10 entries more than
# it holds (pointers to the page's start, which read as 13-byte garbage values).  Prints
# the page number.
flip_leaf() {
    "$PY" - "$1" <<'PYEOF'
import struct, sys
path = sys.argv[1]
d = bytearray(open(path, "rb").read())
# meta page 0: the page size is md_pad of the free-list database (LMDB keeps it there)
psize = struct.unpack_from("<I", d, 40)[0]
for p in range(2, len(d) // psize):
    off = p * psize
    _, _, flags, lower, upper = struct.unpack_from("<QHHHH", d, off)
    n = (lower - 16) // 2
    if flags != 2 or n < 10 or lower + 20 > upper:
        continue
    nodes = [struct.unpack_from("<H", d, off + 16 + 2 * i)[0] for i in range(n)]
    def node(o):
        lo, hi, nflags, ks = struct.unpack_from("<HHHH", d, off + o)
        return ks, d[off + o + 8], d[off + o + 8 + ks]
    # a t:booking leaf: keys are one small uint tuple, values msgpack maps
    if not all(1 <= node(o)[0] <= 3 and 0x15 <= node(o)[1] <= 0x17 and node(o)[2] & 0xF0 == 0x80
               for o in nodes):
        continue
    for o in nodes:
        d[off + o + 8 + node(o)[0]] ^= 0xFF
    struct.pack_into("<H", d, off + 12, lower + 20)
    d[off + lower:off + lower + 20] = bytes(20)
    open(path, "r+b").write(d)
    print(p)
    sys.exit(0)
sys.exit("no t:booking leaf page found")
PYEOF
}

group_trailer() {
    local db st
    db=$(db_of db)
    if ! needs_scan "trailer: every check starts from a dump"; then exit 77; fi
    run 0 "$U" init "$db" "$SCEN"
    "$PY" -c 'import json
for i in range(600): print(json.dumps({"type": "booking", "record": {"psychologist": "p%d" % (i % 50), "date": "2026-01-%02d" % (i % 28 + 1), "time": "%02d:00" % (i % 24), "status": "pending", "user": "u%d" % i}}))' >"$T/b.ndjson"
    # records written by hand, no schema line: no end line needed
    run 0 "$U" load "$db" "$T/b.ndjson"
    run 0 "$U" put "$db" client '{"id": "c1", "email": "c1@x"}'
    run 0 "$U" seq "$db" invoices
    run 0 "$U" dump "$db"; cp "$T/out" "$T/d.nd"
    json_ok 'lines[-1] == {"end": {"records": {"schedule_workflow": 0, "client": 1, "workflow": 0, "booking": 600, "case": 0}, "sequences": 2}} and list(lines[-2]) == ["sequences"]'
    local nl; nl=$(wc -l <"$T/d.nd")

    # healthy: dump | load round-trips, end line and all
    "$U" dump "$db" | "$U" load "$(db_of copy)" >"$T/out" 2>"$T/err"; st=$?
    if [ "$st" -eq 0 ]; then ok; else fail "dump | load of a healthy database: exit $st"; fi
    err_empty
    run 0 "$U" dump "$(db_of copy)"
    if cmp -s "$T/out" "$T/d.nd"; then ok; else fail "dump | load | dump differs"; fi

    # a dump cut short (head -n): load fails and says why; what it loaded stays
    head -n 300 "$T/d.nd" | "$U" load "$(db_of cut)" >"$T/out" 2>"$T/err"; st=$?
    if [ "$st" -eq 5 ]; then ok; else fail "head -n 300 DUMP | load: exit $st (want 5)"; fi
    err_has "line 300: the input ends without dump's end line"; err_has "the dump that begins at line 1 stopped early or was cut"
    err_has "loaded 299 records, 0 conflicting, 0 invalid; the input is not a complete dump, so $(db_of cut) is not a complete copy"
    run 0 "$U" scan "$(db_of cut)" booking; json_ok 'len(lines) == 298'     # and the client
    head -n 300 "$T/d.nd" >"$T/cut.nd"
    run 5 "$U" --json load "$(db_of cut2)" "$T/cut.nd"
    json_ok 'len(lines) == 1 and d["status"] == 422 and d["exit_code"] == 5 and d["incomplete"] is True and d["line"] == 300'
    # --atomic: nothing written, and the database it created is gone
    run 5 "$U" load --atomic "$(db_of cuta)" "$T/cut.nd"
    err_has "--atomic: nothing loaded (0 conflicting, 0 invalid; the input is not a complete dump)"
    if [ -z "$PG" ]; then
        no_db cuta "load --atomic of a cut dump"
    else   # the schema line stays applied (its own transaction), no record
        run 4 "$U" get "$(db_of cuta)" booking 1
    fi
    # ... also into a database that exists (with records): nothing of the input written
    "$U" init "$(db_of cutb)" "$SCEN" >/dev/null
    run 0 "$U" put "$(db_of cutb)" client '{"id": "z", "email": "z@x"}'
    run 5 "$U" load --atomic "$(db_of cutb)" "$T/cut.nd"
    run 0 "$U" scan "$(db_of cutb)" booking; out_empty
    # a dump cut right after its header still begins with it: not loaded as complete
    head -n 1 "$T/d.nd" | "$U" load "$(db_of cut1)" 2>"$T/err"; st=$?
    if [ "$st" -eq 5 ]; then ok; else fail "head -n 1 DUMP | load: exit $st (want 5)"; fi
    # input written by hand that begins with a schema line: --no-end loads it
    run 0 "$U" load --no-end "$(db_of cut3)" "$T/cut.nd"; run 0 "$U" scan "$(db_of cut3)" booking; json_ok 'len(lines) == 298'

    # a record line removed (or one too many, or a sequence missing): the counts differ
    sed 100d "$T/d.nd" >"$T/gap.nd"
    "$U" load "$(db_of gap)" <"$T/gap.nd" >"$T/out" 2>"$T/err"; st=$?
    if [ "$st" -eq 5 ]; then ok; else fail "a dump with a record line removed: exit $st (want 5)"; fi
    err_has "line $((nl - 1)): dump's end line does not match the lines before it (booking: 600 written, 599 read): lines are missing or were changed"
    run 5 "$U" load --atomic "$(db_of gapa)" "$T/gap.nd"
    if [ -z "$PG" ]; then
        no_db gapa "load --atomic of a changed dump"
    else
        run 4 "$U" get "$(db_of gapa)" booking 1
    fi
    { head -n 3 "$T/d.nd"; tail -n +3 "$T/d.nd"; } >"$T/extra.nd"
    run 5 "$U" load --or-get "$(db_of extra)" "$T/extra.nd"; err_has "(booking: 600 written, 601 read)"
    grep -v '^{"sequences"' "$T/d.nd" >"$T/noseq.nd"
    run 5 "$U" load "$(db_of noseq)" "$T/noseq.nd"; err_has "(sequences: 2 written, 0 read)"
    # lines after the end line are not part of the dump; a second dump may follow
    { cat "$T/d.nd"; sed -n 2p "$T/d.nd"; } >"$T/after.nd"
    run 5 "$U" load --or-get "$(db_of after)" "$T/after.nd"; err_has "line $((nl + 1)): after dump's end line (line $nl) only a new dump"
    cat "$T/d.nd" "$T/d.nd" >"$T/twice.nd"
    run 0 "$U" load --or-get "$(db_of twice)" "$T/twice.nd"
    { head -n 300 "$T/d.nd"; cat "$T/d.nd"; } >"$T/cutfirst.nd"
    run 5 "$U" load --or-get "$(db_of cutfirst)" "$T/cutfirst.nd"; err_has "line 1: the dump that begins here has no end line before the next schema line"
    run 0 "$U" load --or-get --no-end "$(db_of cutfirst2)" "$T/cutfirst.nd"    # the second is whole

    # an empty input loads nothing and creates nothing (a dump that wrote nothing)
    run 5 "$U" load "$(db_of e.db)" /dev/null; err_has "/dev/null: the input is empty: nothing to load"
    no_db e.db "load e.db /dev/null"
    : | "$U" load "$(db_of e2.db)" 2>"$T/err"; st=$?
    if [ "$st" -eq 5 ]; then ok; else fail "an empty stdin: exit $st"; fi
    no_db e2.db "load of an empty stdin"
    run 5 "$U" --json load "$db" /dev/null; json_ok 'd["status"] == 422'
    # ... and a database without a schema is never created: a sequences line alone
    echo '{"sequences": {"x": 5}}' >"$T/seqonly.nd"
    run 5 "$U" load "$(db_of s.db)" "$T/seqonly.nd"; err_has "a new database needs one; nothing was created"
    no_db s.db "a load of a sequences line alone"

    # a damaged database: dump writes what it can read, says how many records it left
    # out -- the true number, measured against LMDB's count of the type -- and its end
    # line says so; `dump | load` then fails (load's own exit status)
    if lmdb_only "a damaged leaf page of data.mdb (flip_leaf)"; then
        cp -r "$db" "$T/dmg"
        local page; page=$(flip_leaf "$T/dmg/data.mdb") || fail "flip_leaf"
        "$U" dump "$T/dmg" 2>"$T/dump.err" | tee "$T/dmg.nd" | "$U" load "$T/dmgcopy" >"$T/out" 2>"$T/err"; st=$?
        if [ "$st" -eq 5 ]; then ok; else fail "dump | load of a damaged database (page $page): exit $st (want 5)"; fi
        local got lost
        got=$(grep -c '"type":"booking"' "$T/dmg.nd")
        lost=$((600 - got))
        if [ "$lost" -gt 0 ] && [ "$got" -gt 0 ]; then ok; else fail "damage of page $page left out $lost of 600 records"; fi
        err_has "the dump left out $lost damaged records of its database (booking: $lost), so this is not a complete copy"
        if grep -qF "booking: $lost of its 600 records left out of the dump (damaged; $got written, $((lost + 10)) unreadable entries skipped)" "$T/dump.err" &&
            grep -qF "uniqdb: $lost damaged records left out of the dump" "$T/dump.err"; then ok; else
            fail "dump's count of left-out records is not the $lost missing: $(tail -n 3 "$T/dump.err")"; fi
        if [ "$(grep -c 'in key order skipped' "$T/dump.err")" -eq 10 ]; then ok; else fail "dump lists more than 10 damaged entries"; fi
        "$PY" -c 'import json, sys; e = json.loads(open(sys.argv[1]).read().splitlines()[-1])["end"]; sys.exit(e["left_out"] != {"booking": int(sys.argv[2])} or e["records"]["booking"] != int(sys.argv[3]))' \
            "$T/dmg.nd" "$lost" "$got" && ok || fail "end line of the damaged dump: $(tail -n 1 "$T/dmg.nd")"
        run 0 "$U" scan "$T/dmgcopy" booking; json_ok "len(lines) == $got"     # loaded, and said incomplete
        run 5 "$U" load --atomic "$T/dmga" "$T/dmg.nd"
        if [ ! -e "$T/dmga" ]; then ok; else fail "load --atomic of a damaged database's dump left $T/dmga"; fi
    fi
}

# ---------------------------------------------------------------------------
group_check() {
    local db big
    db=$(db_of db) big=$(db_of big)

    run 0 "$U" init "$db" "$SCEN"
    for i in 1 2 3; do
        "$U" put "$db" booking "{\"psychologist\": \"p$i\", \"date\": \"2026-01-15\", \"time\": \"10:00\", \"status\": \"pending\", \"user\": \"u$i\"}" >/dev/null
        "$U" put "$db" client "{\"id\": \"c$i\", \"email\": \"c$i@x.org\"}" >/dev/null
        "$U" put "$db" workflow "{\"workflow_name\": \"w$i\", \"version\": $i, \"execution_engine\": \"argo\"}" >/dev/null
    done
    run 0 "$U" check "$db"; out_has "check: ok (9 records"
    run 0 "$U" --json check "$db"; json_ok 'd["ok"] is True and d["problems"] == [] and d["records"] == 9'

    if lmdb_only "damage made underneath by the LMDB damage helper"; then
        run 0 "$DAMAGE" "$db" list; out_has "u:booking:active_slot 3"; out_has "t:client 3"
        # each kind of damage, on a fresh copy; check exits 6 and names it
        damaged() { rm -rf "$T/d"; cp -r "$db" "$T/d"; "$DAMAGE" "$T/d" "$@" >/dev/null || fail "damage $*"; }
        damaged del-first u:client:email            # a record missing from an index
        run 6 "$U" check "$T/d"; out_has "client.email"; out_has "missing from the index"; out_has "check: 1 problem found"
        damaged del-first t:workflow                # index entries without a record
        run 6 "$U" check "$T/d"; out_has "workflow.name_version"; out_has "missing record"
        damaged mangle-first-key u:booking:active_slot   # an entry whose key does not match its record
        run 6 "$U" check "$T/d"; out_has "booking.active_slot"; out_has "does not match"
        damaged mangle-first-key i:booking:by_user
        run 6 "$U" check "$T/d"; out_has "booking.by_user"
        damaged set-first-value t:client 81a3666f6f01    # a record that fails its schema: {"foo": 1}
        run 6 "$U" check "$T/d"; out_has "client"; out_has "foo"
        damaged set-first-value t:client c1              # bytes that are not msgpack at all
        run 6 "$U" check "$T/d"; out_has "client"
        run 6 "$U" --json check "$T/d"
        json_ok 'd["ok"] is False and d["problem_count"] == len(d["problems"]) >= 1'
        # a record whose bytes declare 4 billion elements (a msgpack bomb): check
        # reports it; dump leaves it out, says so, salvages the rest and exits 6
        # (the database is damaged)
        damaged set-first-value t:client ddffffffff
        run 6 "$U" check "$T/d"; out_has "client"
        run 6 "$U" dump "$T/d"; err_has "client: record 1 in key order skipped"; err_has "1 damaged record"
        json_ok '[l["record"]["id"] for l in lines if l.get("type") == "client"] == ["c2", "c3"] and "sequences" in lines[-2] and lines[-1]["end"]["left_out"] == {"client": 1} and lines[-1]["end"]["records"]["client"] == 2'
        run 6 "$U" get "$T/d" client '"c1"'; err_has 'stored record of key ("c1") is damaged'
        # several problems at once are all listed
        damaged del-first u:client:email
        "$DAMAGE" "$T/d" del-first t:workflow >/dev/null
        run 6 "$U" check "$T/d"; out_has "client.email"; out_has "workflow.name_version"
        # the healthy original is untouched
        run 0 "$U" check "$db"
    fi

    # progress lines: on a terminal (script(1) gives one) and over 5000
    # records only; silence when stderr is a file
    "$PY" -c 'import json
for i in range(6000): print(json.dumps({"type": "client", "record": {"id": "b%d" % i, "email": "b%d@x.org" % i}}))' >"$T/big.ndjson"
    "$U" init "$big" "$SCEN" >/dev/null
    run 0 "$U" load "$big" "$T/big.ndjson"; err_empty
    run 0 "$U" check "$big"; err_empty; out_has "check: ok (6000 records"
    # on a server, check compares the tables and indexes with the stored schema: a unique
    # index dropped by another SQL client is found
    if [ -n "$PG" ]; then
        run 0 psql -X -q -v ON_ERROR_STOP=1 -c 'DROP INDEX "cli_check_db"."client.email"'
        run 6 "$U" check "$db"; out_has "client.email"
        run 6 "$U" --json check "$db"; json_ok 'd["ok"] is False and any("client.email" in p for p in d["problems"])'
    fi
}

# ---------------------------------------------------------------------------
# What needs a terminal: script(1) gives one, where a pseudo-terminal can be
# opened; elsewhere the group is skipped (exit 77), never passed.
group_tty() {
    if ! script -qec true /dev/null >/dev/null 2>&1; then
        echo "tty: SKIP: no pseudo-terminal can be opened here (script -qec true fails)" >&2
        exit 77
    fi
    "$PY" -c 'import json
for i in range(6000): print(json.dumps({"type": "client", "record": {"id": "b%d" % i, "email": "b%d@x.org" % i}}))' >"$T/big.ndjson"
    "$U" init "$(db_of big2)" "$SCEN" >/dev/null
    run 0 script -qec "'$U' load '$(db_of big2)' '$T/big.ndjson' && '$U' check '$(db_of big2)'" /dev/null
    # the input's size is known (a file): a percentage and the rate
    out_has "loading: 100% (6000 records, "; out_has " records/s)"; out_has "uniqdb: loaded 6000 records"
    if [ -z "$PG" ]; then
        out_has "checking: 4096 of 12000 records and index entries (34%)"
        out_has "checking: 12000 of 12000 records and index entries (100%)"
    else   # the server's check counts rows (its indexes are checked from the catalog)
        out_has "checking: 4096 of 6000 records (68%)"; out_has "checking: 6000 of 6000 records (100%)"
    fi
    out_has "check: ok (6000 records"
    # from a pipe the size is unknown: the count and the rate (the tool's drawing, the
    # same on both; on PostgreSQL 6000 more inserts cost ~10 s, so it runs on LMDB only)
    if lmdb_only "progress from a pipe: drawn by the tool alike on both; kept off the server for time"; then
        "$U" init "$(db_of big3)" "$SCEN" >/dev/null
        run 0 script -qec "cat '$T/big.ndjson' | '$U' load '$(db_of big3)'" /dev/null
        out_has "loading: 6000 records ("; out_has " records/s)"
        if grep -qa "loading: [0-9]*%" "$T/out"; then fail "a percentage without a known size"; else ok; fi
    fi
    # --atomic: reading (percent of the file), then inserting (percent of the records)
    "$PY" -c 'import json
for i in range(9000): print(json.dumps({"type": "client", "record": {"id": "b%d" % i, "email": "b%d@x.org" % i}}))' >"$T/big9.ndjson"
    "$U" init "$(db_of big4)" "$SCEN" >/dev/null
    run 0 script -qec "'$U' load --atomic '$(db_of big4)' < '$T/big9.ndjson'" /dev/null
    if grep -qaE "reading: [0-9]+% \(8191 records, [0-9]+ records/s\)" "$T/out"; then ok; else fail "no reading progress"; fi
    out_has "loading: 45% (4096 records, "; out_has "loading: 91% (8192 records, "; out_has "uniqdb: loaded 9000 records"
    # a write waiting for another process's write transaction says so after a second
    if lmdb_only "a write waiting for LMDB's writer lock held by the damage helper"; then
        "$DAMAGE" "$(db_of big2)" hold-write 3 >"$T/hold" &
        local holder=$!
        for _ in $(seq 50); do grep -q holding "$T/hold" 2>/dev/null && break; sleep 0.1; done
        run 0 script -qec "'$U' put '$(db_of big2)' client '{\"id\": \"w1\", \"email\": \"w1@x\"}'" /dev/null
        out_has "waiting for another process's write transaction on $T/big2 to end"; out_has '"id":"w1"'
        wait "$holder"
    fi
}

# ---------------------------------------------------------------------------
group_demo() {
    if ! needs_scan "demo: it ends by printing a few records"; then exit 77; fi
    # A hang guard, not a speed target (speed is uniqdb-bench's job): the demo
    # takes a few seconds on an idle machine, far longer under a loaded CI.
    run 0 timeout 240 "$U" demo "$(db_of demo)"
    out_has "8 processes booked psychologist p1 at 2026-01-15 10:00 at the same instant: 1 booked, 7 got 409 conflict (booking.active_slot, held by id 1)"
    out_has "1 created it (id 1), 7 got that same record back"
    out_has "8 got 409 conflict (client.email, held by id \"c-7f3a\")"
    out_has "(workflow.name_version: (workflow_name, version)=(invoice-sync, 3), held by id 1)"
    out_has 'field "execution_engine": expected one of temporal, airflow, argo'
    out_has "4 booked (11:00, 12:00, 13:00, 14:00), 4 got 409"
    out_has "24 cases"; out_has "all distinct, no gaps"
    out_has "check: ok"
    out_has '{"type":"booking","record":{"id":1,'
    if grep -q UNEXPECTED "$T/out"; then fail "demo reported something unexpected"; else ok; fi
    # the demo's database is a real one the other commands can read
    run 0 "$U" check "$(db_of demo)"
    run 0 "$U" scan "$(db_of demo)" case; json_ok 'sorted(int(r["case_number"][-6:]) for r in lines) == list(range(1, 25))'
    run 0 "$U" scan "$(db_of demo)" booking; json_ok '[r["status"] for r in lines].count("cancelled") == 1'
    # a directory that already holds a database is refused
    run 1 "$U" demo "$(db_of demo)"
    # default: a new temporary directory
    if lmdb_only "demo without DIR makes a temporary directory"; then
        TMPDIR="$T" run 0 "$U" demo
        if ls -d "$T"/uniqdb-demo-* >/dev/null 2>&1; then ok; else fail "no temporary demo directory"; fi
    fi
}

# ---------------------------------------------------------------------------
# scan ranges (issue 27): bounds, reverse, --limit and paging with --after
group_scan() {
    local db
    db=$(db_of db)
    run 0 "$U" init "$db" "$SCEN"
    local t p u
    for t in 09:00 10:00 11:00 12:30 14:00 15:00; do
        for p in p1 p2; do
            u='"user": "u'$p'", '
            [ "$t" = 11:00 ] && u=''   # no user: NULL in by_user
            run 0 "$U" put "$db" booking '{"psychologist": "'$p'", "date": "2026-01-15", "time": "'$t'", '"$u"'"status": "pending"}'
        done
    done
    # ids: p1 at 09:00 is 1, p2 at 09:00 is 2, ... p2 at 15:00 is 12
    # bookings of p1 between 10:00 and 14:00
    run 0 "$U" scan "$db" booking active_slot --ge '["p1", "2026-01-15", "10:00"]' --lt '["p1", "2026-01-15", "14:00"]'
    json_ok '[r["id"] for r in lines] == [3, 5, 7]'; err_empty
    run 0 "$U" scan "$db" booking active_slot --from '["p1", "2026-01-15", "10:00"]' --to '["p1", "2026-01-15", "14:00"]'
    json_ok '[r["id"] for r in lines] == [3, 5, 7, 9]'
    run 0 "$U" scan "$db" booking active_slot --gt '["p1", "2026-01-15", "10:00"]' --le '["p1", "2026-01-15", "14:00"]' --reverse
    json_ok '[r["id"] for r in lines] == [9, 7, 5]'
    # a bound shorter than the index: everything that starts with it
    run 0 "$U" scan "$db" booking active_slot --gt '"p1"'; json_ok '[r["id"] for r in lines] == [2, 4, 6, 8, 10, 12]'
    run 0 "$U" scan "$db" booking active_slot --le '["p1"]' --reverse; json_ok '[r["id"] for r in lines] == [11, 9, 7, 5, 3, 1]'
    run 0 "$U" scan "$db" booking active_slot '["p2"]' --reverse --limit 2; json_ok '[r["id"] for r in lines] == [12, 10]'
    # empty ranges are not errors
    run 0 "$U" scan "$db" booking active_slot --ge '"p2"' --le '"p1"'; out_empty
    run 0 "$U" scan "$db" booking --gt 3 --lt 4; out_empty
    # NULL is the smallest value: an upper bound alone takes in the records without a user
    run 0 "$U" scan "$db" booking by_user --lt '"up2"'; json_ok '[r["id"] for r in lines] == [5, 6, 1, 3, 7, 9, 11]'
    run 0 "$U" scan "$db" booking by_user --gt null --lt '"up2"'; json_ok '[r["id"] for r in lines] == [1, 3, 7, 9, 11]'
    run 0 "$U" scan "$db" booking by_user --ge null --le null --reverse; json_ok '[r["id"] for r in lines] == [6, 5]'
    # the 5 newest bookings, then the pages after them: stderr's last line says how to go on
    run 0 "$U" scan "$db" booking --reverse --limit 5; json_ok '[r["id"] for r in lines] == [12, 11, 10, 9, 8]'
    err_has 'next: --after [8]'
    local ids="" next="" pages=0
    local -a after=()
    while :; do
        run 0 "$U" scan "$db" booking by_user --reverse --limit 5 "${after[@]}"
        ids="$ids $("$PY" -c 'import json, sys; print(" ".join(str(json.loads(l)["id"]) for l in open(sys.argv[1])))' "$T/out")"
        pages=$((pages + 1))
        next=$(sed -n 's/^next: --after //p' "$T/err")
        [ -n "$next" ] || break
        after=(--after "$next")
        # the record a page ended on may go: the position stays
        local last=${ids##* }
        run 0 "$U" delete "$db" booking "$last"
        [ "$pages" -lt 10 ] || { fail "paging does not end"; break; }
    done
    if [ "$ids" = " 12 10 8 4 2 11 9 7 3 1 6 5" ] && [ "$pages" -eq 3 ]; then ok; else fail "pages: $ids ($pages)"; fi
    # a last page of exactly --limit records (1 and 2 are gone): no next line
    run 0 "$U" scan "$db" booking --limit 10; json_ok 'len(lines) == 10'; err_empty
    run 0 "$U" scan "$db" booking --limit 0; out_empty; err_empty
    run 0 "$U" scan "$db" booking by_user --after '[null, "2026-01-15", 6]'; json_ok '[r["id"] for r in lines][:2] == [3, 7]'
    # bad ranges: exit 2 for the command line, 5 for values, naming what is wrong
    run 2 "$U" scan "$db" booking active_slot '["p1"]' --ge '"p1"'; err_has "a prefix or bounds, not both"
    run 2 "$U" scan "$db" booking --ge 1 --gt 2; err_has "one lower bound"
    run 2 "$U" scan "$db" booking --lt; err_has "need a value"
    run 5 "$U" scan "$db" booking active_slot --ge 5; err_has 'range lo of "booking.active_slot", value 1'; err_has 'field "psychologist": expected str'
    run 5 "$U" scan "$db" booking active_slot --le '["p1", "d", "t", "x"]'; err_has "too many values"
    run 5 "$U" scan "$db" booking active_slot --after '["p1"]'; err_has "4 values (psychologist, date, time, then the primary key id)"
    run 5 "$U" scan "$db" booking --ge '[1'; err_has "--ge"
    run 0 "$U" scan --help; out_has "--after JSON"; out_has "next: --after JSON"
}

group_nocase() {
    # "collate": "nocase": the tool passes the schema through and shows the
    # holder's spelling in conflicts; find and scan match in any case
    local db plain="$T/nc-plain.json" nc="$T/nc.json"
    db=$(db_of nc.db)
    cat >"$nc" <<'EOF'
{"types": {"user": {"key": "id", "fields": {"id": {"type": "uint", "auto": true},
  "email": {"type": "str"}, "tag": {"type": "str"}},
  "unique": {"email": {"fields": [{"field": "email", "collate": "nocase"}]}},
  "indexes": {"by_tag": {"fields": [{"field": "tag", "collate": "nocase"}]}}}}}
EOF
    cat >"$plain" <<'EOF'
{"types": {"user": {"key": "id", "fields": {"id": {"type": "uint", "auto": true},
  "email": {"type": "str"}, "tag": {"type": "str"}},
  "unique": {"email": {"fields": ["email"]}},
  "indexes": {"by_tag": {"fields": [{"field": "tag", "collate": "nocase"}]}}}}}
EOF
    run 0 "$U" init "$db" "$nc"
    out_has 'unique index "user.email" (email collate nocase)'
    run 0 "$U" schema "$db"
    json_ok 'd["types"]["user"]["unique"]["email"]["fields"] == [{"field": "email", "collate": "nocase"}]'
    run 0 "$U" put "$db" user '{"email": "ana@example.com", "tag": "b"}'
    run 0 "$U" put "$db" user '{"email": "Bob@Example.com", "tag": "A"}'
    run 0 "$U" put "$db" user '{"email": "\u00c9ve@x", "tag": "_"}'
    run 0 "$U" put "$db" user '{"email": "\u00e9ve@x", "tag": "a"}'
    run 3 "$U" put "$db" user '{"email": "Ana@Example.COM"}'
    err_has '(email)=(ana@example.com) already exists as id 1'
    run 3 "$U" --json put "$db" user '{"email": "bob@example.com"}'
    json_ok 'd["index"] == "email" and d["values"] == ["Bob@Example.com"] and d["existing_key"] == 2'
    run 0 "$U" find "$db" user email '["ANA@EXAMPLE.COM"]'
    json_ok 'd["email"] == "ana@example.com" and d["id"] == 1'
    run 0 "$U" find "$db" user email '["\u00c9VE@X"]'
    json_ok 'd["id"] == 3'
    run 0 "$U" find "$db" user email '["\u00e9VE@X"]'
    json_ok 'd["id"] == 4'
    run 0 "$U" scan "$db" user by_tag
    json_ok '[l["tag"] for l in lines] == ["_", "A", "a", "b"]'
    run 0 "$U" scan "$db" user by_tag '["a"]'
    json_ok '[l["id"] for l in lines] == [2, 4]'
    run 0 "$U" check "$db"
    # the plain schema redefines the index: refused, then --drop rebuilds it
    run 5 "$U" init "$db" "$plain"
    err_has 'unique index "user.email" (email collate nocase), redefined as unique (email)'
    run 0 "$U" init --drop "$db" "$plain"
    run 0 "$U" put "$db" user '{"email": "ANA@example.com"}'
    # and back: the records that collide without case are listed
    run 3 "$U" init --drop "$db" "$nc"
    err_has 'new unique index "user.email" (email) is violated by 1 existing record; colliding id: 1 and 5'
    run 0 "$U" delete "$db" user 5
    run 0 "$U" init --drop "$db" "$nc"
    # dump and load keep the collation; export maps it for PostgreSQL
    if needs_scan "nocase: dump | load"; then
        run 0 "$U" dump "$db"
        cp "$T/out" "$T/nc.dump"
        run 0 "$U" load "$(db_of nc2.db)" "$T/nc.dump"
        run 3 "$U" put "$(db_of nc2.db)" user '{"email": "BOB@EXAMPLE.COM"}'
    fi
    run 0 "$U" export --postgres --schema-only "$db"
    out_has 'CREATE UNIQUE INDEX "user.email" ON "public"."user" (lower("email" COLLATE "C"));'
    out_has 'CREATE INDEX "user.by_tag" ON "public"."user" (lower("tag" COLLATE "C"));'
    # only str fields
    printf '%s' '{"types": {"t": {"key": "id", "fields": {"id": {"type": "int"}, "n": {"type": "int"}}, "unique": {"n": {"fields": [{"field": "n", "collate": "nocase"}]}}}}}' >"$T/nc-bad.json"
    run 5 "$U" init "$(db_of nc3.db)" "$T/nc-bad.json"
    err_has '"collate": "nocase" is only for str fields'
}

case "$GROUP" in
basics | exits | readonly | types | dumpload | trailer | check | tty | demo | scan | nocase) "group_$GROUP" ;;
*)
    echo "unknown group $GROUP" >&2
    exit 2
    ;;
esac
SKIPPING=""
echo "$GROUP${PG:+ (PostgreSQL)}: $passed passed, $failed failed${PG:+, $skipped skipped (reasons on stderr)}"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
