/*
 * main.c -- the `uniqdb` executable's entry point and nothing else: the rest
 * of the command-line tool is a static library (uniqdb_cli) that the fuzzers
 * link as well, so they run exactly the code users run.
 */
#include "cli_common.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
