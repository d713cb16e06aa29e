#!/bin/sh
# exports.sh LIB HEADER... -- the shared library exports exactly the functions
# the headers mark UDB_API: nothing internal (udb__*, helpers) leaks, and no
# public function is missing.
set -eu
lib=${1:?usage: exports.sh LIB HEADER}
shift
[ $# -gt 0 ] || { echo "usage: exports.sh LIB HEADER..."; exit 2; }
command -v nm >/dev/null || { echo "exports: nm not found (binutils): skipped"; exit 77; }
tmp=${TMPDIR:-/tmp}/udb-exports.$$
trap 'rm -f "$tmp".*' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sort -u > "$tmp.lib"
sed -n 's/^UDB_API [^(]*\<\(udb_[a-z0-9_]*\)(.*/\1/p' "$@" | sort -u > "$tmp.hdr"
status=0
if ! diff -u "$tmp.hdr" "$tmp.lib" > "$tmp.diff"; then
    echo "exports: $lib differs from the UDB_API functions of $* (- headers, + library):"
    cat "$tmp.diff"
    status=1
fi
echo "exports: $(wc -l < "$tmp.lib") symbols exported, $(wc -l < "$tmp.hdr") declared UDB_API"
exit $status
