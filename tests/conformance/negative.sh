#!/usr/bin/env bash
# negative.sh PYTHON DRIVER UNIQDB NEGATIVE.txt SOURCES.md README.md
# The conformance driver must fail on negative.txt, naming every wrong case:
# proof that an outcome, a content or a documentation mismatch cannot pass.
set -u
py=$1 driver=$2 uniqdb=$3 cases=$4 sources=$5 readme=$6
out=$("$py" "$driver" "$uniqdb" "$cases" "$sources" "$readme" 2>&1)
rc=$?
[ "$rc" -eq 77 ] && { echo "$out"; exit 77; }
bad=0
want() { grep -qF -- "$1" <<<"$out" || { echo "negative: output lacks: $1"; bad=1; }; }
[ "$rc" -eq 1 ] || { echo "negative: driver exited $rc, want 1"; bad=1; }
want "FAIL case neg-undeclared-divergence"
want "uniqdb   invalid"
want "FAIL case neg-wrong-expectation"
want "FAIL case neg-wrong-contents"
want "contents of p on uniqdb"
want "does not list \`no-such-tag\`"
want "SOURCES.md does not list case \`neg-wrong-expectation\`"
want "1 passed, 8 failed"
if [ "$bad" -ne 0 ]; then echo "$out"; exit 1; fi
echo "negative control: the driver reported every wrong case"
echo "1 passed, 0 failed"
