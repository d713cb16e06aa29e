#!/bin/sh
# exports.sh LIB HEADER -- the shared library exports exactly the functions
# the header marks UDB_API: nothing internal (udb__*, helpers) leaks, and no
# public function is missing.
set -eu
lib=${1:?usage: exports.sh LIB HEADER}
header=${2:?usage: exports.sh LIB HEADER}
command -v nm >/dev/null || { echo "exports: nm not found (binutils): skipped"; exit 77; }
tmp=${TMPDIR:-/tmp}/udb-exports.$$
trap 'rm -f "$tmp".*' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' | sort -u > "$tmp.lib"
sed -n 's/^UDB_API [^(]*\<\(udb_[a-z_]*\)(.*/\1/p' "$header" | sort -u > "$tmp.hdr"
status=0
if ! diff -u "$tmp.hdr" "$tmp.lib" > "$tmp.diff"; then
    echo "exports: $lib differs from the UDB_API functions of $header (- header, + library):"
    cat "$tmp.diff"
    status=1
fi
echo "exports: $(wc -l < "$tmp.lib") symbols exported, $(wc -l < "$tmp.hdr") declared UDB_API"
exit $status
