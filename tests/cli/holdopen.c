/*
 * holdopen DB -- open the database and keep it open until standard input
 * closes: another process that has the database open the whole time, for
 * the full-disk test (what one process's failure leaves for the others).
 */
#include <stdio.h>
#include <unistd.h>

#include "uniqdb.h"

int main(int argc, char **argv)
{
    udb_env *env;
    if (argc != 2 || udb_open(&env, argv[1], NULL) != 0) {
        fprintf(stderr, "holdopen: %s\n", argc == 2 ? udb_env_errmsg(NULL) : "usage: holdopen DB");
        return 2;
    }
    puts("open");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0)
        ;
    udb_close(env);
    return 0;
}
