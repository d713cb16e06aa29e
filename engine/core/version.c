/*
 * version.c -- the library's own version, for programs that want to know
 * which build they run against (the header's UDB_VERSION_* say which one they
 * were compiled against).
 */
#include "uniqdb.h"

const char *udb_version(int *major, int *minor, int *patch)
{
    if (major)
        *major = UDB_VERSION_MAJOR;
    if (minor)
        *minor = UDB_VERSION_MINOR;
    if (patch)
        *patch = UDB_VERSION_PATCH;
    return UDB_VERSION_STRING;
}
