#!/usr/bin/env bash
# Smoke test of pg_run: the server answers over its Unix socket only, in the
# temp dir pg_run made, as the database pg_run announced.
set -euo pipefail
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
[ -d "$PGHOST" ] || fail "PGHOST is not a socket directory: $PGHOST"
[ -S "$PGHOST/.s.PGSQL.$PGPORT" ] || fail "no socket $PGHOST/.s.PGSQL.$PGPORT"
out="$(psql -X -A -t -v ON_ERROR_STOP=1 -c 'select 1')"
[ "$out" = 1 ] || fail "select 1 gave '$out'"
out="$(psql -X -A -t -c 'show listen_addresses')"
[ -z "$out" ] || fail "server listens on TCP: '$out'"
out="$(psql -X -A -t -c 'select current_database(), current_setting('"'"'server_version_num'"'"')::int >= 150000')"
[ "$out" = "$PGDATABASE|t" ] || fail "database/version check gave '$out'"
echo "smoke: ok ($(psql -X -A -t -c 'show server_version'), socket $PGHOST)"
