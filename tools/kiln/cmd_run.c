#include "cli.h"

static int run(int argc, char **argv) {
    return kiln_cli_usage_error("run", "this command is not built yet");
}
static void help(FILE *f) { fprintf(f, "usage: kiln run (not built yet)\n"); }
const kiln_cli_command kiln_cmd_run = {"run", "(not built yet)", run, help};
