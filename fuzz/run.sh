#!/bin/sh
# fuzz/run.sh -- build the libFuzzer harnesses (clang, ASan + UBSan) and run
# each for a bounded time, starting from a copy of the committed corpus.
#
# usage: fuzz/run.sh [SECONDS-PER-HARNESS] [HARNESS...]
#   SECONDS-PER-HARNESS  default 120
#   HARNESS              default: every harness that was built
# environment:
#   BUILD_DIR   build directory (default build-fuzz, created if missing)
#   KEEP_WORK   if set, keep the work directory (corpora, logs, crashes)
#   FUZZ_JOBS   parallel libFuzzer jobs per harness (default 1)
#
# Exits non-zero if any harness crashes, leaks, times out, exceeds its memory
# limits or finds an oracle disagreement; the reproducer is printed (hex and
# base64) with the command to replay it.  The repository is never written:
# corpora and findings live in a temporary directory.
set -eu

SECONDS_EACH=${1:-120}
[ $# -gt 0 ] && shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-build-fuzz}
case $BUILD_DIR in /*) BUILD=$BUILD_DIR ;; *) BUILD=$ROOT/$BUILD_DIR ;; esac
JOBS=${FUZZ_JOBS:-1}
ALL="fuzz_record fuzz_keycodec fuzz_unit fuzz_schema fuzz_ops fuzz_load fuzz_redact"

# ---- build ------------------------------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then
    CC=${CC:-clang} meson setup "$BUILD" "$ROOT" -Dfuzzing=true \
        -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
fi
# only the harnesses (fuzz_ops is missing without SQLite)
TARGETS=$(ninja -C "$BUILD" -t targets all | sed -n 's/^\(fuzz\/fuzz_[a-z]*\): .*/\1/p' | sort -u)
# shellcheck disable=SC2086
ninja -C "$BUILD" $TARGETS

HARNESSES=${*:-}
if [ -z "$HARNESSES" ]; then
    for h in $ALL; do
        [ -x "$BUILD/fuzz/$h" ] && HARNESSES="$HARNESSES $h"
    done
fi

# ---- run --------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/udb-fuzz.XXXXXX")
# shellcheck disable=SC2317  # called through trap
cleanup() {
    if [ -n "${KEEP_WORK:-}" ]; then
        echo "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

# Sanitizers: every finding is fatal; leaks count.  A smaller quarantine and
# no malloc filling keep the database harnesses fast; UBSan must abort so
# libFuzzer sees a crash.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:max_malloc_fill_size=0:quarantine_size_mb=64:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

failed=0
for h in $HARNESSES; do
    exe=$BUILD/fuzz/$h
    if [ ! -x "$exe" ]; then
        echo "fuzz: $h was not built" >&2
        failed=1
        continue
    fi
    corpus=$WORK/$h/corpus
    art=$WORK/$h/findings
    mkdir -p "$corpus" "$art" "$WORK/$h/tmp"
    if [ -d "$ROOT/fuzz/corpus/$h" ]; then
        cp "$ROOT/fuzz/corpus/$h"/* "$corpus"/ 2>/dev/null || true
    fi
    echo "fuzz: $h for ${SECONDS_EACH}s ($(find "$corpus" -type f | wc -l) seed files)"
    par=""
    [ "$JOBS" -gt 1 ] && par="-jobs=$JOBS -workers=$JOBS"
    set +e
    # shellcheck disable=SC2086
    (cd "$WORK/$h" && TMPDIR=$WORK/$h/tmp "$exe" \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=512 -malloc_limit_mb=128 -timeout=10 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$art/" $par \
        "$corpus" >"$WORK/$h/log" 2>&1)
    rc=$?
    set -e
    if [ "$JOBS" -gt 1 ]; then
        cat "$WORK/$h"/fuzz-*.log >>"$WORK/$h/log" 2>/dev/null || true
    fi
    execs=$(grep -h "stat::number_of_executed_units" "$WORK/$h/log" | awk '{s += $2} END {print s + 0}')
    findings=$(find "$art" -type f | wc -l)
    if [ "$rc" -eq 0 ] && [ "$findings" -eq 0 ]; then
        echo "fuzz: $h ok: $execs executions"
        continue
    fi
    failed=1
    echo "fuzz: $h FAILED (exit $rc, $findings finding(s), $execs executions); log tail:" >&2
    grep -v "^#[0-9]" "$WORK/$h/log" | tail -60 >&2
    for f in "$art"/*; do
        [ -f "$f" ] || continue
        echo "fuzz: reproducer $(basename "$f") ($(wc -c <"$f") bytes):" >&2
        xxd "$f" | head -64 >&2
        echo "base64:" >&2
        base64 -w 76 "$f" >&2
        echo "replay: $exe $f" >&2
        echo "  or, without clang (the standalone driver, fuzz/replay.c):" >&2
        echo "  base64 -d > fuzz/corpus/$h/regress-NAME; meson setup build && meson compile -C build && build/fuzz/$h fuzz/corpus/$h/regress-NAME" >&2
    done
done
exit $failed
