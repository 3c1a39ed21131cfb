/* The kiln command-line tool: one file per command (cmd_<name>.c), dispatched from main.c.
 * Exit codes: 0 success, 1 a failure of the work (bad model, failed check), 2 a usage error. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "kiln.h"

#include <stdio.h>

typedef struct kiln_cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    void (*help)(FILE *f);
} kiln_cli_command;

/* Each command file defines one of these. */
extern const kiln_cli_command kiln_cmd_demo;
extern const kiln_cli_command kiln_cmd_build;
extern const kiln_cli_command kiln_cmd_run;
extern const kiln_cli_command kiln_cmd_bench;
extern const kiln_cli_command kiln_cmd_inspect;
extern const kiln_cli_command kiln_cmd_conformance;

/* Prints "kiln CMD: message" to stderr and returns 2 (usage error). */
int kiln_cli_usage_error(const char *cmd, const char *fmt, ...);
/* Prints "kiln CMD: <what>: <kiln_last_error()>" and returns 1. */
int kiln_cli_fail(const char *cmd, const char *what);

#endif
