#!/usr/bin/env bash
# `uniqdb export --postgres` on the demo database loads into PostgreSQL without
# an error, and every type arrives with all its records.  Run under pg_run.
set -euo pipefail
uniqdb="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "export_demo: FAIL: $*" >&2; exit 1; }

"$uniqdb" demo "$work/demo" >"$work/demo.log" 2>&1 || { cat "$work/demo.log" >&2; fail "uniqdb demo"; }
"$uniqdb" export --postgres "$work/demo" -o "$work/demo.sql"
psql -X -q -v ON_ERROR_STOP=1 -f "$work/demo.sql" >"$work/psql.log" 2>&1 ||
    { cat "$work/psql.log" >&2; fail "psql could not load the export"; }
[ ! -s "$work/psql.log" ] || { cat "$work/psql.log" >&2; fail "psql printed messages"; }

"$uniqdb" dump "$work/demo" >"$work/dump.ndjson"
checked=0
for t in $("$uniqdb" schema "$work/demo" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["types"]))'); do
    want="$(grep -c "^{\"type\":\"$t\"," "$work/dump.ndjson" || true)"
    got="$(psql -X -A -t -v ON_ERROR_STOP=1 -c "select count(*) from \"$t\"")"
    [ "$want" = "$got" ] || fail "type $t: $want records in uniqdb, $got rows in PostgreSQL"
    checked=$((checked + 1))
done
[ "$checked" -ge 5 ] || fail "only $checked types checked"
echo "export_demo: ok ($checked types, $(grep -c '"record"' "$work/dump.ndjson") records loaded)"
