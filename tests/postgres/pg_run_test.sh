#!/usr/bin/env bash
# pg_run's own guarantees: the program's exit code comes back unchanged, and
# the server is stopped and its temp dir removed afterwards, also on failure.
set -uo pipefail
pg_run="$1"
fail() { echo "pg_run_test: FAIL: $*" >&2; exit 1; }
for want in 0 3; do
    out="$(mktemp)"
    "$pg_run" bash -c 'echo "$PGHOST"; psql -X -A -t -c "select pg_backend_pid()" >/dev/null || exit 9; exit '"$want" >"$out"
    rc=$?
    [ "$rc" -eq 77 ] && { rm -f "$out"; echo "pg_run_test: SKIP (no server)"; exit 77; }
    [ "$rc" -eq "$want" ] || fail "exit code $rc, wanted $want"
    dir="$(head -n1 "$out")"; rm -f "$out"
    [ -n "$dir" ] || fail "the program printed no PGHOST"
    [ ! -e "$dir" ] || fail "temp dir $dir left behind"
    if pgrep -f -- "bin/postgres -D $dir/data" >/dev/null; then fail "server for $dir still running"; fi
done
echo "pg_run_test: ok (exit codes 0 and 3 propagated, server stopped, dir removed)"
