#!/usr/bin/env bash
# each.sh CMD [ARG...] [:: CMD [ARG...]]... -- run each command in turn and
# fail if any fails, so that several programs share the one PostgreSQL server
# that tests/postgres/pg_run starts (each opens schemas of its own): a
# server's start costs seconds, the programs under ASan take a few each.
# Every command is run, also after a failure, and named with its verdict.
# Exit 0 if all passed, 77 if all skipped, else 1.
set -u
[ "$#" -ge 1 ] || { echo "usage: each.sh CMD [ARG...] [:: CMD [ARG...]]..." >&2; exit 2; }
failed=0 passed=0 skipped=0
run() {
    local name
    name="$(basename "$1") ${*:2}"
    "$@"
    local rc=$?
    case $rc in
        0) passed=$((passed + 1)); echo "each: ok   $name" ;;
        77) skipped=$((skipped + 1)); echo "each: skip $name" ;;
        *) failed=$((failed + 1)); echo "each: FAIL $name (exit $rc)" ;;
    esac
}
cmd=()
for a in "$@"; do
    if [ "$a" = "::" ]; then
        [ "${#cmd[@]}" -gt 0 ] && run "${cmd[@]}"
        cmd=()
    else
        cmd+=("$a")
    fi
done
[ "${#cmd[@]}" -gt 0 ] && run "${cmd[@]}"
echo "each: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -gt 0 ] && exit 1
[ "$passed" -eq 0 ] && exit 77
exit 0
