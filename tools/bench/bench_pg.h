/*
 * bench_pg.h -- uniqdb-bench-pg: the PostgreSQL backend against the same
 * statements written by hand with libpq (the floor).  The engines are
 * bench.h's tables; the workload drivers are uniqdb-bench's (bench_work.c,
 * bench_conc.c), so both sides are timed and verified as the LMDB rows are.
 *
 * A database of the run is a PostgreSQL schema on the server that libpq's
 * environment (PGHOST, PGDATABASE, ...) or --url names: the drivers name a
 * database by a path, whose last component (e.g. "uniqdb-sync") becomes the
 * schema's name ("bench_uniqdb_sync").
 */
#ifndef UDB_BENCH_PG_H
#define UDB_BENCH_PG_H

#include <stddef.h>

#include "bench.h"

extern const bench_engine bench_engine_pg_udb, bench_engine_pg_floor;

/* Every engine's handle begins with this. */
typedef struct bench_pg_handle {
    char schema[64];
} bench_pg_handle;

/* The libpq connection URI of the server (without uniqdb's schema=). */
const char *bench_pg_conninfo(void);
/* The PostgreSQL schema of the database named by path. */
void bench_pg_schema_of(char out[64], const char *path);
/* uniqdb's URL of that database: conninfo plus schema=. */
void bench_pg_url(char *out, size_t cap, const char *path);
/* Apply bench_schema_json there through uniqdb (the floor's tables are
 * made the backend's way, so both have ddl.c's layout).  0 or -1. */
int  bench_pg_apply(const char *path);
/* Count what the schema holds with plain SQL on a connection of its own:
 * records, and index entries as uniqdb counts them (ref and by_user for
 * every record, active_slot for pending and confirmed ones).  0 or -1. */
int  bench_pg_count(bench_counts *out, const char *schema);

#endif
