/*
 * backup.h -- for tests only: udb_backup (backup.c) is public, in uniqdb.h.
 */
#ifndef UDB_BACKUP_H
#define UDB_BACKUP_H

/* A negative control: with UDB_BACKUP_TEST_IN_PLACE, udb_backup writes the
 * copy straight to dest/data.mdb (making dest if missing) and leaves what it
 * wrote when it fails -- the half-copy that opens as a database which the
 * temporary name prevents.  Process-wide; breaks the guarantee on purpose. */
enum { UDB_BACKUP_TEST_IN_PLACE = 1 };
void udb__backup_set_test_flags(unsigned flags);

#endif
