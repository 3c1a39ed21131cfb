#include "cli.h"

static int run(int argc, char **argv) {
    return kiln_cli_usage_error("demo", "this command is not built yet");
}
static void help(FILE *f) { fprintf(f, "usage: kiln demo (not built yet)\n"); }
const kiln_cli_command kiln_cmd_demo = {"demo", "(not built yet)", run, help};
