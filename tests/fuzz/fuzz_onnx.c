/* libFuzzer target: the ONNX importer on arbitrary bytes, then verification and a CPU compile of
 * whatever imports. Nothing may crash, hang or leak. */
#include "kiln.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_graph *g = NULL;
    if (kiln_graph_load_onnx_memory(data, size, NULL, &g) != KILN_OK) return 0;
    char *text = NULL;
    if (kiln_graph_to_text(g, &text) == KILN_OK) kiln_free(text);
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.time_tactics = false;
    char *report = NULL;
    if (kiln_dry_run(g, &cfg, false, &report) == KILN_OK) kiln_free(report);
    kiln_graph_free(g);
    return 0;
}
