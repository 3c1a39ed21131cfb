/* The residual Add -> LayerNormalization fusion (src/passes/fuse_norm.c): the pass fires only
 * where the Add's sum feeds nothing but the LayerNormalization, the fused node carries
 * kiln.residual = 1 and a 4th input, and the CPU backend's output matches a float64 reference
 * written here. Also: the fused form is refused without its marker. */
#include "test_passes_util.h"

#include "passes/passes.h"

#include <math.h>

/* y = LayerNorm(a + b) over the last dim (len), scale g, bias bb. */
static void ref_ln(const float *a, const float *b, const float *g, const float *bb, int64_t rows, int64_t len,
                   double eps, double *y) {
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int64_t j = 0; j < len; j++) mean += (double)a[r * len + j] + b[r * len + j];
        mean /= (double)len;
        for (int64_t j = 0; j < len; j++) {
            double d = (double)a[r * len + j] + b[r * len + j] - mean;
            var += d * d;
        }
        var /= (double)len;
        double inv = 1.0 / sqrt(var + eps);
        for (int64_t j = 0; j < len; j++)
            y[r * len + j] = ((double)a[r * len + j] + b[r * len + j] - mean) * inv * g[j] + (bb ? bb[j] : 0.0);
    }
}

/* x: [2, 3, 16]; y = LN(a + b); variant 0: fused; 1: the sum is also a graph output; 2: the sum
 * is also read by a Relu that is added to the result; 3: no B input; 4: b broadcasts ([16]). */
static void run_variant(int variant, kiln_precision prec) {
    int64_t xd[3] = {2, 3, 16}, pd[1] = {16};
    const int64_t rows = 6, len = 16, n = rows * len;
    float a[96], b[96], g[16], bb[16];
    kt_fill_uniform(a, n, -1, 1);
    kt_fill_uniform(b, n, -1, 1);
    kt_fill_uniform(g, 16, 0.5f, 1.5f);
    kt_fill_uniform(bb, 16, -0.5f, 0.5f);
    kiln_graph *gr = NULL;
    KT_OK(kiln_graph_create(&gr));
    if (!gr) return;
    kt_input(gr, "a", 3, xd);
    if (variant == 4) KT_OK(kiln_graph_add_input(gr, "b", KILN_F32, 1, pd, NULL));
    else kt_input(gr, "b", 3, xd);
    KT_OK(kiln_graph_add_initializer(gr, "g", KILN_F32, 1, pd, g));
    KT_OK(kiln_graph_add_initializer(gr, "bb", KILN_F32, 1, pd, bb));
    kt_node(gr, "Add", "res", "a", "b", "s");
    const char *in[3] = {"s", "g", "bb"};
    kiln_attr eps = kiln_attr_float("epsilon", 1e-5f);
    kt_node_attrs(gr, "LayerNormalization", "ln", variant == 3 ? 2 : 3, in, variant == 2 ? "n" : "y", 1, &eps);
    if (variant == 2) {
        kt_node(gr, "Relu", "r", "s", NULL, "sr");
        kt_node(gr, "Add", "post", "n", "sr", "y");
    }
    KT_OK(kiln_graph_add_output(gr, "y"));
    if (variant == 1) KT_OK(kiln_graph_add_output(gr, "s"));
    float bfull[96];
    for (int64_t i = 0; i < n; i++) bfull[i] = variant == 4 ? b[i % 16] : b[i];
    double ref[96];
    ref_ln(a, bfull, g, variant == 3 ? NULL : bb, rows, len, 1e-5, ref);
    if (variant == 2)
        for (int64_t i = 0; i < n; i++) ref[i] += fmax(0.0, (double)a[i] + bfull[i]);
    kt_opts o = {.optimize = true, .precision = prec};
    kiln_module *m = kt_compile(gr, &o);
    const kn_node *ln = kt_find_op(m, "LayerNormalization");
    int want_fused = variant == 0 || variant == 3;
    char what[96];
    snprintf(what, sizeof what, "variant %d (%s)", variant, prec == KILN_PRECISION_FP16 ? "fp16" : "fp32");
    if (ln) {
        int fused = kn_attr_i(ln, "kiln.residual", 0) == 1 && ln->n_in == 4 && ln->in[3] >= 0;
        KT_CHECK(fused == want_fused, "%s: fused %d, expected %d", what, fused, want_fused);
        KT_CHECK(kt_count_op(m, "Add") == (want_fused ? 0 : variant == 2 ? 2 : 1), "%s: %d Add left", what,
                 kt_count_op(m, "Add"));
        if (want_fused) KT_CHECK(kn_attr_i(ln, "kiln.nodes", 1) == 2, "%s: kiln.nodes counts the Add", what);
    } else {
        KT_CHECK(0, "%s: no LayerNormalization in the module", what);
    }
    float *ins[2] = {a, b}, *out[8] = {0};
    int64_t on[8] = {0};
    if (m && kt_run(m, ins, NULL, out, on)) {
        KT_CHECK(on[0] == n, "%s: output size", what);
        double tol = prec == KILN_PRECISION_FP16 ? 2e-2 : 1e-5;
        if (on[0] == n) {
            double r = kt_max_tol_ratio(out[0], ref, n, tol, tol);
            KT_CHECK(r <= 1.0, "%s: off the float64 reference by %g x tolerance", what, r);
        }
    }
    for (int k = 0; k < 8; k++) free(out[k]);
    kiln_module_free(m);
    kiln_graph_free(gr);
}

/* The fused form needs its marker, and the marker needs the input. */
static void test_marker_required(void) {
    for (int form = 0; form < 3; form++) {
        kiln_graph *gr = NULL;
        KT_OK(kiln_graph_create(&gr));
        if (!gr) return;
        int64_t xd[2] = {3, 8}, pd[1] = {8};
        kt_input(gr, "x", 2, xd);
        kt_input(gr, "r", 2, xd);
        kt_const(gr, "g", 1, pd, 0.5f, 1.5f);
        kt_const(gr, "b", 1, pd, -0.5f, 0.5f);
        const char *in[4] = {"x", "g", "b", "r"};
        kiln_attr res = kiln_attr_int("kiln.residual", 1);
        /* 0: 4 inputs, no marker; 1: marker, 3 inputs; 2: both (the fused form) */
        const char *out[1] = {"y"};
        kiln_status st = kiln_graph_add_node(gr, "LayerNormalization", "ln4", form == 1 ? 3 : 4, in, 1, out,
                                             form ? 1 : 0, &res);
        if (form == 0) KT_FAILS(st, KILN_ERR_INVALID_ARGUMENT, "ln4");
        if (form == 1) KT_FAILS(st, KILN_ERR_INVALID_ARGUMENT, "kiln.residual");
        if (form == 2) {
            KT_OK(st);
            KT_OK(kiln_graph_add_output(gr, "y"));
            KT_OK(kn_graph_verify(&gr->g));
        }
        kiln_graph_free(gr);
    }
}

int main(void) {
    kt_seed(77);
    for (int v = 0; v < 5; v++) {
        run_variant(v, KILN_PRECISION_FP32);
        run_variant(v, KILN_PRECISION_FP16);
    }
    test_marker_required();
    return kt_finish();
}
