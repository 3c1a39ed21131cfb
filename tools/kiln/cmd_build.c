/* kiln build: compile an ONNX model into a .kiln engine file, or show the partition it would
 * make (--dry-run), like trtexec --onnx=... --saveEngine=... */
#include "args.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The report up to its per-step table (the whole report with --verbose). */
static void print_summary(const char *report, bool verbose) {
    const char *steps = verbose ? NULL : strstr(report, "\nsteps:\n");
    if (steps) fwrite(report, 1, (size_t)(steps - report) + 1, stdout);
    else fputs(report, stdout);
}

static int run(int argc, char **argv) {
    kc_args a;
    kc_args_init(&a, "build", argc, argv);
    kc_build b;
    kc_build_init(&b, 1);
    const char *model = NULL, *out = NULL;
    bool dry = false, json = false;
    while (kc_next(&a)) {
        if (kc_build_flag(&a, &b)) continue;
        if (kc_flag(&a, "--output", "-o")) {
            if (!a.failed && !*a.value) kc_usage(&a, "-o needs a file name");
            out = a.value;
        } else if (kc_switch(&a, "--dry-run")) {
            dry = true;
        } else if (kc_switch(&a, "--json")) {
            json = true;
        } else if (kc_positional(&a)) {
            if (model) kc_usage(&a, "more than one model given ('%s' and '%s')", model, a.arg);
            model = a.arg;
        } else {
            kc_unknown(&a);
        }
    }
    int rc = 0;
    if (a.failed) rc = 2;
    else if (!model) rc = kiln_cli_usage_error("build", "no model given (kiln build MODEL.onnx -o MODEL.kiln)");
    else if (json && !dry) rc = kiln_cli_usage_error("build", "--json goes with --dry-run ('kiln inspect --json' describes a built module)");
    else if (dry && out) rc = kiln_cli_usage_error("build", "--dry-run builds nothing to save: leave out -o");
    else if (kc_is_kiln_file(model)) rc = kiln_cli_usage_error("build", "%s is already compiled; build takes an .onnx model ('kiln inspect' describes a .kiln file)", model);
    if (rc) {
        kc_build_free(&b);
        return rc;
    }

    kiln_build_config cfg;
    kc_model mdl = {0};
    char *text = NULL;
    char what[1200];
    if (b.verbose) kiln_set_log_level(2);
    if (dry) {
        if ((rc = kc_build_config("build", &b, NULL, &cfg))) goto done;
        if ((rc = kc_load_graph("build", model, &mdl.graph))) goto done;
        if ((rc = kc_check_input_names("build", mdl.graph, &b, NULL))) goto done;
        kc_check_fallback_names("build", mdl.graph, &b);
        if (kiln_dry_run(mdl.graph, &cfg, json, &text) != KILN_OK) {
            snprintf(what, sizeof what, "dry run of %s", model);
            rc = kiln_cli_fail("build", what);
            goto done;
        }
        fputs(text, stdout);
        goto done;
    }
    if ((rc = kc_load_model("build", model, &b, NULL, &mdl))) goto done;
    if (kiln_module_report(mdl.module, false, &text) != KILN_OK) {
        rc = kiln_cli_fail("build", "reporting the module");
        goto done;
    }
    printf("built %s\n", model);
    print_summary(text, b.verbose);
    if (!out) {
        printf("no -o given: the module was not saved\n");
        goto done;
    }
    if (kiln_module_save(mdl.module, out) != KILN_OK) {
        snprintf(what, sizeof what, "saving %s", out);
        rc = kiln_cli_fail("build", what);
        goto done;
    }
    struct stat stt;
    if (stat(out, &stt) == 0 && stt.st_size < 1048576)
        printf("saved %s (%.1f KiB)\n", out, (double)stt.st_size / 1024.0);
    else if (stat(out, &stt) == 0)
        printf("saved %s (%.2f MiB)\n", out, (double)stt.st_size / 1048576.0);
    else printf("saved %s\n", out);
done:
    kiln_free(text);
    kc_model_free(&mdl);
    kc_build_free(&b);
    return rc;
}

static void help(FILE *f) {
    fprintf(f,
            "usage: kiln build MODEL.onnx [options] -o MODEL.kiln\n"
            "       kiln build MODEL.onnx --dry-run [--json] [options]\n\n"
            "Compiles an ONNX model for a range of input shapes: graph passes, partition into engine\n"
            "blocks and fallback ops, tactic timing at the opt shape, and a memory plan at the max\n"
            "shape. The engine file loads without re-timing ('kiln run MODEL.kiln').\n\n"
            "options:\n"
            "  -o, --output FILE           where to save the compiled module (.kiln)\n"
            "  --dry-run                   print the partition the build would make (segments, ops, and\n"
            "                              the reason for each graph break) and build nothing\n"
            "  --json                      with --dry-run: the report as JSON\n");
    kc_build_help(f, 1);
    fprintf(f,
            "\nexamples:\n"
            "  kiln build resnet18.onnx --min x:1x3x224x224 --opt x:8x3x224x224 --max x:16x3x224x224 \\\n"
            "             --fp16 -o resnet18.kiln\n"
            "  kiln build seed_graph_break.onnx --dry-run --fallback-ops Mul --min-block-size 1\n"
            "\nexit status: 0 success, 1 the model did not load, compile or save, 2 a usage error.\n");
}

const kiln_cli_command kiln_cmd_build = {"build", "compile an ONNX model into a .kiln engine (or --dry-run)", run, help};
