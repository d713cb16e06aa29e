#!/usr/bin/env bash
# exec_test.sh -- `uniqdb` write commands share commits across processes
# (through udb_exec), and print exactly what they print alone.
#
#   exec_test.sh MODE UNIQDB EXEC_WATCH SCENARIOS.json
#
# exec_watch (exec_watch.c) leads a group commit on database A and holds it
# while the commands below start at once, each its own `uniqdb` process; it
# lets go only once all of them that write have queued their unit for it
# through the engine's shared slots (something only udb_exec() does; a
# `put --or-get` of a key held already writes nothing), and then reports
# the engine's counters: every unit run by a leader (run), all but one by a
# leader of another process than the unit's (foreign: one of the commands
# led and ran the others' units in its batch, one commit).  The same
# commands then run one after the other, alone, on database B, made the same
# way: every command's exit code, stdout and stderr must be the same in both,
# and so must `uniqdb dump` of A and B.
#
# MODE shared: the commands as a user types them; the counters must show
# every unit shipped and shared.
# MODE control (negative control): the commands on A get --timeout, which
# sends them through udb_write() (see tools/cli_records.c) as every command
# went before udb_exec(); nothing may be shipped (queued 0, run 0), and the
# test passes only if the sharing check fails -- proof that it catches a CLI
# that writes through udb_write().  The outputs must still match.
set -u

MODE=$1
U=$2
WATCH=$3
SCEN=$4

T=$(mktemp -d "${TMPDIR:-/tmp}/uniqdb-exec-test.XXXXXX")
watcher=
cleanup() {
    exec 3>&- 2>/dev/null
    if [ -n "$watcher" ]; then kill "$watcher" 2>/dev/null; wait "$watcher" 2>/dev/null; fi
    rm -rf "$T"
}
trap cleanup EXIT
failed=0
fail() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}

# Independent commands (different records), so that their outputs do not
# depend on the order a batch runs them in; some fail inside the shared
# batch (conflict, not found, invalid) and must roll back only themselves.
cmds=(
    "put db client '{\"id\": \"c1\", \"email\": \"e1@x\"}'"
    "put db client '{\"id\": \"c2\", \"email\": \"e2@x\"}' --or-get"
    "--json put db client '{\"id\": \"c0\", \"email\": \"e0@x\"}' --or-get"
    "put db client '{\"id\": \"c5\", \"email\": \"e5@x\", \"name\": \"five\"}' --upsert"
    "update db client '\"c6\"' '{\"name\": \"six\"}' --merge"
    "delete db client '\"c7\"'"
    "seq db n"
    "--json put db client '{\"id\": \"c9\", \"email\": \"e0@x\"}'"
    "put db booking '{\"psychologist\": \"p1\", \"date\": \"2026-01-15\", \"time\": \"10:00\",
                      \"status\": \"pending\"}'"
    "update db client '\"nope\"' '{\"email\": \"x@x\"}'"
    "put db client '{\"id\": \"c10\"}'"
    "put db client '{\"id\": \"c3\", \"email\": \"e0@x\"}'"
)
N=${#cmds[@]}
# Command 2 (put --or-get of c0, which make_db stores) writes nothing: the
# engine answers a unit of held insert_or_get keys from a read snapshot,
# without a commit, so it is not handed over.  The other N-1 are.
SHIP=$((N - 1))

# A database in DIR/db holding the records the commands read and change.
make_db() {
    mkdir -p "$1"
    (cd "$1" &&
        "$U" init db "$SCEN" >/dev/null &&
        for i in 0 5 6 7; do
            "$U" put db client "{\"id\": \"c$i\", \"email\": \"e$i@x\"}" >/dev/null || exit 1
        done)
}
make_db "$T/A" || { echo "FAIL: cannot make database A" >&2; exit 1; }
make_db "$T/B" || { echo "FAIL: cannot make database B" >&2; exit 1; }

pre=
wait_s=60
if [ "$MODE" = control ]; then
    pre="--timeout 600"
    wait_s=8   # no unit will come: how long to give them anyway
fi

mkfifo "$T/go"
"$WATCH" "$T/A/db" "$SHIP" "$wait_s" <"$T/go" >"$T/watch" 2>"$T/watch.err" &
watcher=$!
exec 3>"$T/go"
for _ in $(seq 300); do grep -q holding "$T/watch" 2>/dev/null && break; sleep 0.1; done
if ! grep -q holding "$T/watch"; then
    echo "FAIL: exec_watch did not start: $(cat "$T/watch.err")" >&2
    exit 1
fi

# every command at once on A, while exec_watch leads
pids=()
for i in $(seq 0 $((N - 1))); do
    (cd "$T/A" && eval "\"\$U\" $pre ${cmds[$i]}" >"$T/A.out.$i" 2>"$T/A.err.$i"
     echo $? >"$T/A.rc.$i") &
    pids+=($!)
done
wait "${pids[@]}"
exec 3>&-
wait "$watcher"
wrc=$?
watcher=
if [ "$wrc" -ne 0 ]; then fail "exec_watch exited $wrc: $(cat "$T/watch.err")"; fi

# the same commands alone, one after the other, on B
for i in $(seq 0 $((N - 1))); do
    (cd "$T/B" && eval "\"\$U\" ${cmds[$i]}" >"$T/B.out.$i" 2>"$T/B.err.$i"
     echo $? >"$T/B.rc.$i")
done

# what each command said and how it exited: the same in both
for i in $(seq 0 $((N - 1))); do
    for f in rc out err; do
        if ! cmp -s "$T/A.$f.$i" "$T/B.$f.$i"; then
            fail "command $i ($f differs when shared): ${cmds[$i]}"
            echo "  shared: $(head -c 400 "$T/A.$f.$i")" >&2
            echo "  alone:  $(head -c 400 "$T/B.$f.$i")" >&2
        fi
    done
    if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$T/A.err.$i" "$T/B.err.$i"; then
        fail "command $i: sanitizer report"
    fi
done
# and what they expect, so that "the same" is not "the same failure"
want_rc=(0 0 0 0 0 0 0 3 0 4 5 3)
for i in $(seq 0 $((N - 1))); do
    got=$(cat "$T/B.rc.$i")
    if [ "$got" != "${want_rc[$i]}" ]; then
        fail "command $i exits $got alone (want ${want_rc[$i]}): ${cmds[$i]}"
        echo "  stderr: $(head -c 400 "$T/B.err.$i")" >&2
    fi
done
grep -q '"created":false' "$T/A.out.2" || fail "put --or-get --json: no {\"created\": false ...}"
grep -q '"index":"email","fields":\["email"\]' "$T/A.out.7" || fail "conflicting put --json: no conflict detail"
[ "$(cat "$T/A.out.6")" = 1 ] || fail "seq: not 1"
grep -qx updated "$T/A.err.3" || fail "put --upsert: stderr does not say updated"

# the databases: the same records and sequences
(cd "$T/A" && "$U" dump db) >"$T/A.dump" 2>&1 || fail "dump A"
(cd "$T/B" && "$U" dump db) >"$T/B.dump" 2>&1 || fail "dump B"
cmp -s "$T/A.dump" "$T/B.dump" || fail "dump of A (shared commits) differs from B (alone)"

# the engine's counters: was every unit handed over and run in one leader's batch?
read -r _ queued < <(grep '^queued' "$T/watch")
read -r _ run _ foreign _ bounced _ rerun < <(grep '^run' "$T/watch")
echo "exec_watch: queued ${queued:-?} of $SHIP; run ${run:-?} foreign ${foreign:-?}" \
     "bounced ${bounced:-?} rerun ${rerun:-?}"
shared=1
[ "${queued:-}" = "$SHIP" ] || shared=0
[ "${run:-}" = "$SHIP" ] || shared=0
[ "${foreign:-}" = "$((SHIP - 1))" ] || shared=0
[ "${bounced:-}" = 0 ] || shared=0

if [ "$MODE" = control ]; then
    if [ "$shared" = 1 ]; then fail "control: the commands shared commits through udb_write?"; fi
    if [ "${queued:-}" != 0 ] || [ "${run:-}" != 0 ]; then
        fail "control: units were shipped although --timeout writes through udb_write"
    fi
else
    if [ "$shared" = 0 ]; then
        fail "the $SHIP commands that write did not share one commit through udb_exec" \
             "(want queued $SHIP, run $SHIP, foreign $((SHIP - 1)), bounced 0)"
    fi
fi

if [ "$failed" -ne 0 ]; then
    echo "exec_test $MODE: $failed failed" >&2
    exit 1
fi
echo "exec_test $MODE: ok"
