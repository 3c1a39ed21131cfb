/* kiln: build, run, benchmark and inspect models; the dispatcher. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

static const kiln_cli_command *const kiln_commands[] = {
    &kiln_cmd_demo, &kiln_cmd_build, &kiln_cmd_run, &kiln_cmd_bench, &kiln_cmd_inspect,
    &kiln_cmd_conformance,
};
#define KILN_N_COMMANDS ((int)(sizeof kiln_commands / sizeof kiln_commands[0]))

int kiln_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kiln %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'kiln %s --help')\n", cmd);
    va_end(ap);
    return 2;
}

int kiln_cli_fail(const char *cmd, const char *what) {
    fprintf(stderr, "kiln %s: %s: %s\n", cmd, what, kiln_last_error());
    return 1;
}

static void kiln_usage(FILE *f) {
    fprintf(f, "usage: kiln COMMAND [options]\n\n"
               "kiln %s — an ahead-of-time inference compiler and runtime.\n\ncommands:\n",
            kiln_version());
    for (int i = 0; i < KILN_N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", kiln_commands[i]->name, kiln_commands[i]->summary);
    fprintf(f, "\n'kiln COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        kiln_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        kiln_usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("kiln %s\n", kiln_version());
        return 0;
    }
    for (int i = 0; i < KILN_N_COMMANDS; i++) {
        if (strcmp(argv[1], kiln_commands[i]->name)) continue;
        for (int a = 2; a < argc; a++)
            if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
                kiln_commands[i]->help(stdout);
                return 0;
            }
        return kiln_commands[i]->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "kiln: unknown command '%s'\n\n", argv[1]);
    kiln_usage(stderr);
    return 2;
}
