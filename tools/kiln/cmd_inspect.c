/* kiln inspect: describe a model — inputs, outputs and profiles, the partition, the tactic chosen
 * for each step, and the memory plan (arena next to peak live bytes). An .onnx model is compiled
 * with the build flags first; --graph adds the imported graph as text. */
#include "args.h"

#include <string.h>

static int run(int argc, char **argv) {
    kc_args a;
    kc_args_init(&a, "inspect", argc, argv);
    kc_build b;
    kc_build_init(&b, 1);
    const char *model = NULL;
    bool json = false, graph = false;
    while (kc_next(&a)) {
        if (kc_build_flag(&a, &b)) continue;
        if (kc_switch(&a, "--json")) json = true;
        else if (kc_switch(&a, "--graph")) graph = true;
        else if (kc_positional(&a)) {
            if (model) kc_usage(&a, "more than one model given ('%s' and '%s')", model, a.arg);
            model = a.arg;
        } else kc_unknown(&a);
    }
    int rc = 0;
    if (a.failed) rc = 2;
    else if (!model) rc = kiln_cli_usage_error("inspect", "no model given (kiln inspect MODEL.onnx|MODEL.kiln)");
    else if (graph && kc_is_kiln_file(model))
        rc = kiln_cli_usage_error("inspect", "--graph shows an imported ONNX graph; %s is a compiled module", model);
    if (rc) {
        kc_build_free(&b);
        return rc;
    }
    kc_model mdl = {0};
    char *graph_text = NULL, *report = NULL;
    if (b.verbose) kiln_set_log_level(2);
    if (!kc_is_kiln_file(model)) {
        if ((rc = kc_load_graph("inspect", model, &mdl.graph))) goto done;
        if (graph) {
            if (kiln_graph_to_text(mdl.graph, &graph_text) != KILN_OK) {
                rc = kiln_cli_fail("inspect", "printing the graph");
                goto done;
            }
            if (!json) { /* shown even when the compile below fails */
                printf("graph of %s:\n%s", model, graph_text);
                fflush(stdout);
            }
        }
    }
    if ((rc = kc_load_model("inspect", model, &b, NULL, &mdl))) goto done;
    if (kiln_module_report(mdl.module, json, &report) != KILN_OK) {
        rc = kiln_cli_fail("inspect", "reporting the module");
        goto done;
    }
    if (json) {
        printf("{\"model\": ");
        kc_json_str(stdout, model);
        printf(", \"format\": \"%s\", \"num_segments\": %d, \"num_engine_blocks\": %d,\n\"module\": ",
               kc_is_kiln_file(model) ? "kiln" : "onnx", kiln_module_num_segments(mdl.module),
               kiln_module_num_engine_blocks(mdl.module));
        size_t n = strlen(report);
        while (n && (report[n - 1] == '\n' || report[n - 1] == ' ')) n--;
        fwrite(report, 1, n, stdout);
        if (graph_text) {
            printf(",\n\"graph\": ");
            kc_json_str(stdout, graph_text);
        }
        printf("}\n");
    } else {
        printf("model %s (%s)\n%s", model, kc_is_kiln_file(model) ? "compiled module" : "ONNX, compiled for this report",
               report);
    }
done:
    kiln_free(graph_text);
    kiln_free(report);
    kc_model_free(&mdl);
    kc_build_free(&b);
    return rc;
}

static void help(FILE *f) {
    fprintf(f,
            "usage: kiln inspect MODEL.onnx|MODEL.kiln [--json] [--graph] [build options]\n\n"
            "Describes a model: inputs, outputs and their profiles (min/opt/max), the partition into\n"
            "engine blocks and fallback ops with the reason for each graph break, the kernel and tactic\n"
            "chosen for each step (with its measured time), and the memory plan (arena size next to the\n"
            "peak of live bytes, its lower bound). An .onnx model is compiled first with the build\n"
            "options below; a .kiln file is described as it was built.\n\n"
            "options:\n"
            "  --json                      the report as JSON: {\"model\", \"format\", \"num_segments\",\n"
            "                              \"num_engine_blocks\", \"module\": {...}[, \"graph\": \"...\"]}\n"
            "  --graph                     also print the imported graph (ONNX models only)\n");
    kc_build_help(f, 1);
    fprintf(f, "\nexit status: 0 success, 1 the model did not load or compile, 2 a usage error.\n");
}

const kiln_cli_command kiln_cmd_inspect = {"inspect", "describe a model: I/O, profiles, partition, tactics, memory plan",
                                           run, help};
