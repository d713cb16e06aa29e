#!/bin/sh
# The meson test `node` (suite node): build the addon against this meson
# build's libuniqdb.so and run `npm test`.
#   run-tests.sh SRCDIR BUILDROOT CC SANITIZE [TEST.js...]
# SRCDIR is bindings/node of the source tree; the package is copied to
# BUILDROOT/bindings/node (node_modules and the addon live there, one per
# meson build directory).  Exits 77 (skipped) without node, npm or Node's
# headers.  Under b_sanitize=address the ASan runtime of CC is preloaded into
# node (an instrumented libuniqdb.so cannot be loaded otherwise) with leak
# detection off: node itself is not instrumented and leaks by design at exit.
# TEST.js...: run only these files of test/ (pg-node: test/pg.test.js under
# tests/postgres/pg_run) instead of `npm test`.
set -eu
src=$1 build=$2 cc=$3 sanitize=$4
shift 4

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "node suite: $tool not found: skipped"
        exit 77
    fi
done
# Node's headers, for an offline build: installed beside node (Debian's and
# nodesource's packages: /usr/include/node).
nodedir=$(dirname "$(dirname "$(command -v node)")")
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
    echo "node suite: $nodedir/include/node/node_api.h not found (install Node's headers): skipped"
    exit 77
fi

work=$build/bindings/node
mkdir -p "$work"
# the package as it is in the source tree (not its node_modules or build/)
for f in package.json package-lock.json binding.gyp index.js decode.js index.d.ts; do
    cp "$src/$f" "$work/$f"
done
for d in src test examples; do
    rm -rf "${work:?}/$d"
    cp -R "$src/$d" "$work/$d"
done
cd "$work"

# npm ci once per build directory, and again when the lock file changed
if [ ! -d node_modules ] || ! cmp -s package-lock.json node_modules/.package-lock.src; then
    npm ci --ignore-scripts --no-audit --no-fund --prefer-offline
    cp package-lock.json node_modules/.package-lock.src
fi

UNIQDB_SCENARIOS=$src/../../tools/scenarios.json
export UNIQDB_SCENARIOS
# the C tool, for the round trips through it (skipped when built without tools)
if [ -x "$build/tools/uniqdb" ]; then
    UNIQDB_CLI=$build/tools/uniqdb
    export UNIQDB_CLI
fi
UNIQDB_BUILD=$build UNIQDB_INCLUDE=$src/../../include \
    npx --no-install node-gyp rebuild --nodedir="$nodedir" -j 2 --loglevel=warn

case ",$sanitize," in
*,address,*)
    asan=$("$cc" -print-file-name=libasan.so)
    case "$asan" in
    /*) ;;
    *) asan=$("$cc" -print-file-name=libclang_rt.asan-x86_64.so) ;;
    esac
    if [ ! -f "$asan" ]; then
        echo "node suite: no ASan runtime found for $cc to preload into node: skipped"
        exit 77
    fi
    LD_PRELOAD=$asan
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    export LD_PRELOAD ASAN_OPTIONS
    ;;
esac
if [ "$#" -gt 0 ]; then
    exec node --test "$@"
fi
exec npm test
