#!/bin/sh
# layers.sh ENGINE_DIR -- the engine's layers form a line: no file includes
# the header of a layer above its own, and a struct body (*_int.h) is
# included only by the files that own it.  The table is ARCHITECTURE.md's.
# The files are in ENGINE_DIR's folders (core/, lmdb/); names are unique
# across them, as the include path holds every folder.  A file of core/
# includes no header of another folder and not <lmdb.h>: the core knows
# nothing of how records are stored.
set -eu
dir=${1:?usage: layers.sh ENGINE_DIR}

# header layer (0: the public headers of include/)
layers='
uniqdb_jansson.h 0
buf.h 1
error.h 1
base64.h 1
mpack.h 2
keycodec.h 2
predicate.h 3
schema.h 4
record.h 5
conflict.h 5
pgddl.h 5
backend.h 6
schemaplan.h 7
cursor.h 7
index.h 6
layout.h 7
longkey.h 7
xlock.h 7
pgconn.h 7
env.h 8
env_int.h 8
sync.h 8
ship.h 8
pgmeta.h 8
pgcache.h 8
pgstore.h 9
txn.h 9
txn_int.h 9
seq.h 10
unit.h 11
group.h 12
backup.h 13
'
# source file layer: the layer of the header it implements; the files
# without a header are the public operations on top
owner='
arena.c 1
version.c 1
error.c 1
base64.c 1
mpack.c 2
json.c 2
keycodec.c 2
predicate.c 3
schema.c 4
record.c 5
conflict.c 5
ddl.c 5
front.c 6
index.c 6
schemaplan.c 7
cursor.c 7
layout.c 7
longkey.c 7
xlock.c 7
mdb_error.c 7
conn.c 7
env.c 8
sync.c 8
ship.c 8
meta.c 8
pgcache.c 8
pgstore.c 9
txn.c 9
seq.c 10
unit.c 11
group.c 12
'
top=13
# who may include a struct body
private='
env_int.h env.c group.c
txn_int.h txn.c
'

layer_of() {   # $1: file name; prints its layer, or nothing
    printf '%s\n%s\n' "$layers" "$owner" | awk -v f="$1" '$1 == f { print $2; exit }'
}

bad=0
checked=0
for f in "$dir"/*/*.c "$dir"/*/*.h; do
    name=$(basename "$f")
    mine=$(layer_of "$name")
    if [ -z "$mine" ]; then
        case $name in
        *.c) mine=$top ;;
        *) echo "layers: $name is not in the layer table"; bad=1; continue ;;
        esac
    fi
    folder=$(basename "$(dirname "$f")")
    if [ "$folder" = core ] && grep -q '^#include <lmdb\.h>' "$f"; then
        echo "layers: core/$name includes <lmdb.h>"
        bad=1
    fi
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
        checked=$((checked + 1))
        case "$inc" in uniqdb.h | uniqdb_jansson.h) continue ;; esac   # the public headers
        if [ "$folder" = core ] && [ ! -f "$dir/core/$inc" ]; then
            echo "layers: core/$name includes $inc, which is not in core/"
            bad=1
        fi
        theirs=$(layer_of "$inc")
        if [ -z "$theirs" ]; then
            echo "layers: $name includes $inc, which is not in the layer table"
            bad=1
        elif [ "$theirs" -gt "$mine" ]; then
            echo "layers: $name (layer $mine) includes $inc (layer $theirs)"
            bad=1
        fi
        owners=$(printf '%s\n' "$private" | awk -v h="$inc" '$1 == h { $1 = ""; print }')
        if [ -n "$owners" ] && ! printf ' %s ' "$owners" | grep -q " $name "; then
            case $name in
            *_int.h) ;;
            *) echo "layers: $name includes $inc, the struct body of$owners"; bad=1 ;;
            esac
        fi
    done
done
echo "layers: $checked includes checked"
exit $bad
