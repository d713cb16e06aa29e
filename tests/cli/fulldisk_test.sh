#!/usr/bin/env bash
# cli-fulldisk: a nearly full file system gives an error, never a signal.
# A 2 MiB tmpfs filled to several levels (0 to 256 KiB free): `uniqdb init`
# of a new database, then writes and every reading command on a database that
# had room, each must end with exit status < 128 and, when it fails, say "no
# space".  Once space is freed, a new process writes again.  Needs root (it
# mounts the tmpfs); skipped (77) elsewhere.
set -u
U=$1
SCHEMA=$2
HOLD=$3
[ "$(id -u)" -eq 0 ] || { echo "cli-fulldisk: needs root to mount a tmpfs: skipped"; exit 77; }
MNT=$(mktemp -d /tmp/udb-fulldisk-XXXXXX)
if ! mount -t tmpfs -o size=2m tmpfs "$MNT" 2>/dev/null; then
    rmdir "$MNT"; echo "cli-fulldisk: cannot mount a tmpfs: skipped"; exit 77
fi
trap 'umount "$MNT"; rmdir "$MNT"' EXIT
fails=0
checks=0
failed_inits=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# fill the file system until `free` KiB are left
fill() {
    rm -f "$MNT/fill"
    local avail
    avail=$(df -k "$MNT" | awk 'NR == 2 {print $4}')
    [ "$avail" -gt "$1" ] && dd if=/dev/zero of="$MNT/fill" bs=1k count=$((avail - $1)) \
        status=none 2>/dev/null
    return 0
}

# run a command; it must not die of a signal, and a failure must name the cause
expect_sane() {
    local what=$1; shift
    "$@" >"$MNT/../out.$$" 2>"$MNT/../err.$$"
    local st=$?
    checks=$((checks + 1))
    if [ $st -ge 128 ]; then
        fail "$what: killed by signal $((st - 128))"
    elif [ $st -ne 0 ] && [ -n "${NEED_SPACE_MSG:-}" ] && ! grep -qi "no space" "$MNT/../err.$$"; then
        fail "$what: exit $st without saying the disk is full: $(head -c 300 "$MNT/../err.$$")"
    fi
    rm -f "$MNT/../out.$$" "$MNT/../err.$$"
    return $st
}

for free in 0 4 8 12 16 20 24 28 32 40 64 128 256; do
    rm -rf "$MNT/db"
    fill $free
    if ! NEED_SPACE_MSG=1 expect_sane "init with ${free} KiB free" "$U" init "$MNT/db" "$SCHEMA"; then
        # a failed init leaves nothing behind: not DB, not its private directory (issue 23)
        left=$(ls -A "$MNT" | grep -v '^fill$')
        checks=$((checks + 1))
        [ -z "$left" ] || fail "init with ${free} KiB free failed and left: $left"
        failed_inits=$((failed_inits + 1))
    fi
done
[ "$failed_inits" -gt 0 ] || fail "no init failed: the file system was never full enough"

# a database made with room, then the disk filled: writes fail cleanly,
# reads work or fail cleanly -- while another process keeps the database open
# the whole time (so nothing is reset by a first opener)
rm -rf "$MNT/db" "$MNT/fill"
"$U" init "$MNT/db" "$SCHEMA" >/dev/null || fail "init with room"
coproc HOLDER { "$HOLD" "$MNT/db"; }
# bash unsets HOLDER and HOLDER_PID once the coprocess has exited: keep them
holder_pid=$HOLDER_PID
holder_in=${HOLDER[1]}
read -r -u "${HOLDER[0]}" line
[ "$line" = open ] || fail "holdopen did not open the database"
for i in $(seq 1 20); do
    "$U" put "$MNT/db" client "{\"id\": \"c$i\", \"email\": \"c$i@x\"}" >/dev/null ||
        fail "put c$i with room"
done
for free in 0 4 16 64; do
    fill $free
    big=$(head -c 60000 /dev/zero | tr '\0' x)
    for i in 1 2 3; do
        NEED_SPACE_MSG=1 expect_sane "put with ${free} KiB free" \
            "$U" put "$MNT/db" client "{\"id\": \"d$free-$i\", \"email\": \"$big$free$i\"}"
    done
    expect_sane "get with ${free} KiB free" "$U" get "$MNT/db" client '"c1"'
    expect_sane "scan with ${free} KiB free" "$U" scan "$MNT/db" client
    expect_sane "check with ${free} KiB free" "$U" check "$MNT/db"
    expect_sane "stat with ${free} KiB free" "$U" stat "$MNT/db"
    expect_sane "dump with ${free} KiB free" "$U" dump "$MNT/db"
done

# space back: the next write succeeds, though a process had the database
# open all along (a full disk is refused before LMDB writes anything)
rm -f "$MNT/fill"
"$U" put "$MNT/db" client '{"id": "after", "email": "after@x"}' >/dev/null 2>"$MNT/../err.$$" ||
    fail "put after space was freed: $(cat "$MNT/../err.$$")"
rm -f "$MNT/../err.$$"
eval "exec ${holder_in}>&-"
wait "$holder_pid" || fail "holdopen"
"$U" get "$MNT/db" client '"after"' >/dev/null || fail "get after space was freed"
"$U" check "$MNT/db" >/dev/null || fail "check after space was freed"
n=$("$U" scan "$MNT/db" client | grep -c '"c[0-9]*@x"')
[ "$n" = 20 ] || fail "the 20 records written with room: $n after the full disk"

echo "cli-fulldisk: $checks commands on a full file system, $fails failed"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
