#!/bin/sh
# run_example.sh PROGRAM EXPECTED -- run an example program on a database in
# a fresh directory; its output (stdout and stderr) must be EXPECTED's.
set -eu
prog=${1:?usage: run_example.sh PROGRAM EXPECTED}
want=${2:?usage: run_example.sh PROGRAM EXPECTED}
dir=$(mktemp -d "${TMPDIR:-/tmp}/udb-example.XXXXXX")
trap 'rm -rf "$dir"' EXIT
status=0
"$prog" "$dir/db" >"$dir/out" 2>&1 || status=$?
if [ $status -ne 0 ] || ! diff -u "$want" "$dir/out"; then
    echo "run_example: $(basename "$prog") exited $status; its output (- expected, + got) above"
    exit 1
fi
echo "run_example: $(basename "$prog"): output as expected ($(wc -l <"$dir/out") lines)"
