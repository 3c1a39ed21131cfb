/* The pass pipeline. */
#include "build/module.h"

kiln_status kn_passes_run(kn_graph *g, const kn_pass_options *opt) {
    (void)g;
    (void)opt;
    return KILN_OK;
}

kiln_status kn_lower_precision(kn_graph *g, kiln_precision p) {
    (void)g;
    if (p == KILN_PRECISION_FP16 || p == KILN_PRECISION_BF16)
        return kn_error(KILN_ERR_UNSUPPORTED, "fp16/bf16 precision lowering is not available yet");
    return KILN_OK;
}
