/*
 * header_c89.c -- include/uniqdb.h compiles alone as C89 with -pedantic
 * (the build is the test), and the library it links reports the version
 * the header names.
 */
#include "uniqdb.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
    int major = -1, minor = -1, patch = -1;
    const char *v = udb_version(&major, &minor, &patch);
    udb_options o = UDB_OPTIONS_INIT;
    udb_op op = UDB_OP_INIT;

    if (major != UDB_VERSION_MAJOR || minor != UDB_VERSION_MINOR ||
        patch != UDB_VERSION_PATCH || strcmp(v, UDB_VERSION_STRING) != 0) {
        fprintf(stderr, "udb_version() is %s (%d.%d.%d), the header says %s\n", v, major, minor,
                patch, UDB_VERSION_STRING);
        return 1;
    }
    if (o.version != UDB_OPTIONS_VERSION || udb_strerror(UDB_ELAST) == NULL) {
        fprintf(stderr, "UDB_OPTIONS_INIT does not set the options version\n");
        return 1;
    }
    if (op.version != UDB_OP_VERSION || op.kind != 0 || op.rec.data != NULL ||
        udb_result_at(NULL, 0) != NULL) {
        fprintf(stderr, "UDB_OP_INIT does not set the op version\n");
        return 1;
    }
    printf("uniqdb.h %s as C89: ok\n", v);
    return 0;
}
