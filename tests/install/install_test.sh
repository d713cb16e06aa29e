#!/usr/bin/env bash
# install: the README's Install section, done for real.  Builds uniqdb from
# this source tree into a temporary prefix (a plain build of its own: the
# library and the tool), then, with nothing but pkg-config pointed at that
# prefix, compiles the README's example program (the C block after
# "Save as `hello.c`"), runs it twice (created, then found), compiles and
# runs examples/bookings_json.c (records as JSON), and runs the
# installed `uniqdb` on the database it made -- which must find its own
# library without LD_LIBRARY_PATH.
set -u
SRC=$1
T=$(mktemp -d /tmp/udb-install-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
checks=0
check() { checks=$((checks + 1)); if eval "$1"; then :; else echo "FAIL: $2"; fails=$((fails + 1)); fi; }

# a compiler other than the suite's sanitizer flags: a plain build
unset CFLAGS LDFLAGS
if ! meson setup "$T/build" "$SRC" --prefix="$T/prefix" -Dtests=false -Dbench=false \
        >"$T/setup.log" 2>&1; then
    cat "$T/setup.log"; echo "FAIL: meson setup"; exit 1
fi
if ! meson install -C "$T/build" >"$T/install.log" 2>&1; then
    tail -30 "$T/install.log"; echo "FAIL: meson install"; exit 1
fi
pc=$(find "$T/prefix" -name uniqdb.pc | head -n 1)
check '[ -n "$pc" ]' "no uniqdb.pc installed"
export PKG_CONFIG_PATH=$(dirname "$pc")
# the program exactly as the README gives it
awk '/Save as `hello.c`/ {want = 1} want && /^```c$/ {on = 1; next} on && /^```$/ {exit} on' \
    "$SRC/README.md" >"$T/hello.c"
check '[ -s "$T/hello.c" ]' "README has no hello.c block after 'Save as \`hello.c\`'"
check 'cmp -s "$T/hello.c" "$SRC/examples/hello.c"' "README's hello.c differs from examples/hello.c"
check 'cc "$T/hello.c" $(pkg-config --cflags --libs uniqdb) -Wl,-rpath,$(pkg-config --variable=libdir uniqdb) -o "$T/hello" 2>"$T/cc.err"' \
    "cc hello.c with pkg-config alone: $(cat "$T/cc.err" 2>/dev/null)"
if [ -x "$T/hello" ]; then
    out1=$("$T/hello" "$T/demo.db" 2>&1)
    out2=$("$T/hello" "$T/demo.db" 2>&1)
    check '[ "$out1" = "created the workflow of (s1, House)" ]' "first run: $out1"
    check '[ "$out2" = "found the workflow of (s1, House)" ]' "second run: $out2"
fi
# examples/bookings_json.c (records as JSON) the same way: pkg-config alone
check 'cc "$SRC/examples/bookings_json.c" $(pkg-config --cflags --libs uniqdb) -Wl,-rpath,$(pkg-config --variable=libdir uniqdb) -o "$T/bookings_json" 2>"$T/cc2.err"' \
    "cc bookings_json.c with pkg-config alone: $(cat "$T/cc2.err" 2>/dev/null)"
if [ -x "$T/bookings_json" ]; then
    "$T/bookings_json" "$T/bookings.db" >"$T/bookings.out" 2>&1
    check 'cmp -s "$T/bookings.out" "$SRC/examples/bookings_json.out"' \
        "bookings_json output differs: $(diff "$SRC/examples/bookings_json.out" "$T/bookings.out")"
fi
# uniqdb_jansson.h is installed and compiles against pkg-config's flags
check 'printf "#include <uniqdb_jansson.h>\nint main(void) { json_t *v = udb_jansson_u64(1); json_decref(v); return 0; }\n" >"$T/j.c" && cc "$T/j.c" $(pkg-config --cflags --libs uniqdb) -ljansson -o "$T/j" 2>"$T/cc3.err"' \
    "cc with uniqdb_jansson.h: $(cat "$T/cc3.err" 2>/dev/null)"
# the installed tool finds its library by itself (rpath)
n=$(env -u LD_LIBRARY_PATH "$T/prefix/bin/uniqdb" scan "$T/demo.db" schedule_workflow 2>"$T/u.err" | wc -l)
check '[ "$n" = 1 ]' "installed uniqdb scan: $n lines: $(cat "$T/u.err")"
check 'env -u LD_LIBRARY_PATH "$T/prefix/bin/uniqdb" check "$T/demo.db" >/dev/null 2>&1' \
    "installed uniqdb check"
echo "install: $checks checks, $fails failed"
echo "$((checks - fails)) passed, $fails failed"
[ $fails -eq 0 ]
