#!/bin/sh
# Install what building and testing uniqdb needs on Debian/Ubuntu, skipping
# packages that are already there.  Used by the README's quick start and CI.
set -eu
# g++: the header test compiles include/uniqdb.h as C++;
# bsdutils gives script(1): a terminal for the CLI test of progress lines;
# postgresql and libpq-dev: the `postgres` suite runs a real server;
# python3-psycopg2: the `conformance` suite drives it from python3
pkgs="gcc g++ pkg-config meson ninja-build liblmdb-dev libmsgpack-dev libjansson-dev
      libsqlite3-dev clang libclang-rt-14-dev python3 bsdutils postgresql libpq-dev
      python3-psycopg2"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
