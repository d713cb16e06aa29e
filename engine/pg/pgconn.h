/*
 * pgconn.h -- connections to PostgreSQL (conn.c): the URL a database is
 * named by, a small pool of libpq connections shared by threads, and
 * libpq's errors as UDB_E codes with the server's message kept.
 *
 * The URL is a libpq connection URI (postgresql:// or postgres://) plus one
 * parameter of uniqdb's own, schema=NAME (percent-encoded like any URI
 * value; default "public"): the PostgreSQL schema holding the database, so
 * several uniqdb databases can share one server database.  libpq refuses
 * parameters it does not know, so it is taken out before libpq sees the URI.
 * It is not libpq's options=-csearch_path: uniqdb names every table with its
 * schema and must create the schema, so it needs one name, not a path.
 */
#ifndef UDB_PGCONN_H
#define UDB_PGCONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

#define UDB_PG_DEFAULT_SCHEMA "public"

/* Does path name a PostgreSQL database (postgresql:// or postgres://)?  A
 * path without a scheme is an LMDB directory. */
bool udb__pg_is_url(const char *path);

/* url for messages: a password in it (user:PASSWORD@, password=...) as ***. */
void udb__pg_url_redact(udb_buf *b, const char *url);

typedef struct udb_pgurl {
    char *conninfo;   /* the URI without uniqdb's parameters: libpq's */
    char *schema;     /* the PostgreSQL schema (decoded) */
} udb_pgurl;

/* Split url.  0, UDB_EINVAL (not a PostgreSQL URL, a bad or repeated schema
 * parameter, a bad %-escape: msg says which), UDB_ENOMEM. */
int  udb__pg_url_parse(udb_pgurl *out, const char *url, udb_buf *msg);
void udb__pg_url_free(udb_pgurl *u);

/* The UDB_E code of a failed statement (r may be NULL: then the
 * connection's state decides), with "what: SQLSTATE message" in msg:
 * 23505 UDB_ECONFLICT, other 23xxx UDB_EBADRECORD, 54000 UDB_EKEYTOOLONG, 08xxx and a broken
 * connection UDB_ECONNECT, 28xxx UDB_EAUTH, 53xxx UDB_ECONNECT (53300) or
 * UDB_ENOMEM, 40001/40P01 UDB_EBUSY, anything else UDB_ESERVER. */
int  udb__pg_error(udb_buf *msg, PGconn *c, const PGresult *r, const char *what);

/* Run sql (no parameters) on c: 0, or the code of udb__pg_error.  *out (may
 * be NULL) gets the result of a query, the caller's to PQclear. */
int  udb__pg_exec(PGresult **out, PGconn *c, const char *sql, udb_buf *msg);
/* The same with text parameters (values[i] NULL: SQL NULL). */
int  udb__pg_execp(PGresult **out, PGconn *c, const char *sql, int n,
                   const char *const *values, udb_buf *msg);

/* A pool of at most max connections to one URL, for any number of threads.
 * Opening connects once, so that a wrong URL, refused connection or login
 * fails here: UDB_EINVAL (the URL), UDB_ECONNECT, UDB_EAUTH, UDB_ENOMEM,
 * message in msg. */
typedef struct udb_pgpool udb_pgpool;
int  udb__pg_pool_open(udb_pgpool **out, const char *url, size_t max, udb_buf *msg);
void udb__pg_pool_close(udb_pgpool *p);
/* A connection for this thread alone until released: an idle one, a new one
 * while fewer than max are open, else wait for one.  Errors as opening, and
 * UDB_EINVAL in a forked child (a connection is one process's). */
int  udb__pg_acquire(PGconn **out, udb_pgpool *p, udb_buf *msg);
/* A connection to p's server outside the pool (not counted, never waits for
 * one to be freed): for a thread that holds a pooled one inside a
 * transaction and needs another snapshot.  Close it with PQfinish.  Errors
 * as acquiring. */
int  udb__pg_connect_extra(PGconn **out, udb_pgpool *p, udb_buf *msg);
/* Give c back; one that is broken or still inside a transaction is closed. */
void udb__pg_release(udb_pgpool *p, PGconn *c);
const char *udb__pg_pool_schema(const udb_pgpool *p);
/* server_version_num, e.g. 150004 */
int  udb__pg_pool_server_version(const udb_pgpool *p);
/* Tests: make the pool report another server version, to show what an
 * older server refuses (0: the real one again). */
void udb__pg_pool_fake_version(udb_pgpool *p, int version);
/* Tests only: schema apply skips its advisory lock (the negative control
 * of the concurrent-apply test) and sleeps sleep_ms after reading the stored
 * schema (to make appliers overlap). */
void udb__pg_pool_test_race(udb_pgpool *p, bool nolock, int sleep_ms);
bool udb__pg_pool_nolock(const udb_pgpool *p);
int  udb__pg_pool_sleep_ms(const udb_pgpool *p);
/* How many connections are open (idle or in use). */
size_t udb__pg_pool_open_count(udb_pgpool *p);

#endif
