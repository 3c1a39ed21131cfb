/* The pass pipeline. Cleanup passes (identity removal, constant and shape folding, CSE, DCE)
 * run to a fixed point, since each can expose work for the others; then the fusions run in the
 * order their patterns nest (BatchNorm into Conv first, so that the Conv's epilogue sees the
 * Add and activation that followed the BatchNorm; MatMul's operand transposes and scales before
 * its bias and activation; a residual Add into the LayerNormalization that reads it; attention
 * after MatMul's, so that its scale is already the first MatMul's kiln.alpha), and a last DCE. Constants that were read
 * before the passes and are read by nothing after them (weights replaced by folded ones, inputs
 * of folded nodes) are released, so no backend uploads them; initializers the model never read
 * are left to the engine writer, which skips them. */
#include "passes.h"

typedef kiln_status (*kn_pass_fn)(kn_graph *g, const kn_pass_options *opt, int *changed);

static kiln_status kn_passes_rewrite(kn_graph *g, const kn_pass_options *opt) {
    static const kn_pass_fn cleanup[] = {kn_pass_remove_identity, kn_pass_fold_constants, kn_pass_cse, kn_pass_dce};
    static const kn_pass_fn fusion[] = {kn_pass_fold_batchnorm, kn_pass_fuse_conv, kn_pass_fuse_matmul,
                                            kn_pass_fuse_gemm, kn_pass_fuse_norm, kn_pass_fuse_attention, kn_pass_dce};
    int round = 0;
    for (;; round++) {
        int total = 0;
        for (size_t p = 0; p < sizeof cleanup / sizeof cleanup[0]; p++) {
            int changed = 0;
            KN_TRY(cleanup[p](g, opt, &changed));
            total += changed;
        }
        if (!total) break;
        if (round >= 16) {
            kn_pass_log(opt, "passes: cleanup still changing the graph after %d rounds; stopping", round + 1);
            break;
        }
    }
    for (size_t p = 0; p < sizeof fusion / sizeof fusion[0]; p++) {
        int changed = 0;
        KN_TRY(fusion[p](g, opt, &changed));
    }
    int live = 0;
    for (int i = 0; i < g->n_nodes; i++) live += !g->nodes[i].dead;
    kn_pass_log(opt, "passes: %d node%s after optimization (%d cleanup round%s)", live, live == 1 ? "" : "s",
                round + 1, round ? "s" : "");
    return KILN_OK;
}

kiln_status kn_passes_run(kn_graph *g, const kn_pass_options *opt) {
    KN_ARG_CHECK(g && opt, "graph/options");
    int *uses_before, n_before = g->n_values;
    KN_TRY(kn_graph_use_counts(g, &uses_before));
    kiln_status st = kn_passes_rewrite(g, opt);
    if (st == KILN_OK) {
        int *uses_after;
        st = kn_graph_use_counts(g, &uses_after);
        if (st == KILN_OK) {
            int released = 0;
            for (int v = 0; v < g->n_values; v++) {
                kn_value *val = &g->values[v];
                if (!val->constant || uses_after[v] || (val->flags & (KN_VALUE_INPUT | KN_VALUE_OUTPUT))) continue;
                /* values the passes made lie beyond n_before */
                if (v >= n_before || uses_before[v] > 0) {
                    kn_host_tensor_free(val->constant);
                    val->constant = NULL;
                    released++;
                }
            }
            if (released) kn_pass_log(opt, "passes: released %d constant%s nothing reads any more", released, released == 1 ? "" : "s");
            kn_free(uses_after);
        }
    }
    kn_free(uses_before);
    return st;
}
