// header_cxx.cpp -- include/uniqdb.h compiles alone as C++ (the build is
// the test), with C linkage: the calls below link against the C library.
#include "uniqdb.h"

#include <cstdio>
#include <cstring>

int main()
{
    udb_options o = UDB_OPTIONS_INIT;
    udb_val v = {nullptr, 0};
    udb_op op = UDB_OP_INIT;
    const char *ver = udb_version(nullptr, nullptr, nullptr);
    if (std::strcmp(ver, UDB_VERSION_STRING) != 0 || o.version != UDB_OPTIONS_VERSION ||
        v.size != 0 || op.version != UDB_OP_VERSION || udb_result_at(nullptr, 0) != nullptr) {
        std::fprintf(stderr, "udb_version() is %s, the header says %s\n", ver,
                     UDB_VERSION_STRING);
        return 1;
    }
    std::printf("uniqdb.h %s as C++: ok\n", ver);
    return 0;
}
