/* The MatMul operand fusions (src/passes/fuse_matmul.c): a last-two-dims Transpose on an input
 * becomes kiln.trans_a / kiln.trans_b, a scalar Mul/Div on an input or the output joins
 * kiln.alpha. Each case builds a small graph, checks the pass fired (or did not, where it must
 * not), and compares the CPU backend's output with a float64 reference written here. */
#include "test_passes_util.h"

#include "passes/passes.h"

#include <math.h>

/* Y = alpha * op(A) op(B) with numpy batch broadcasting; A and B as stored (op: the last two dims
 * swapped when ta / tb). Writes Y's rank and dims. */
static void ref_matmul(const float *a, int ra, const int64_t *ad, int ta, const float *b, int rb, const int64_t *bd,
                       int tb, double alpha, double *y, int *ry, int64_t *yd) {
    int64_t M = ad[ra - 2 + ta], K = ad[ra - 1 - ta], N = bd[rb - 1 - tb];
    int nb = (ra > rb ? ra : rb) - 2;
    int64_t od[KILN_MAX_RANK], sa[KILN_MAX_RANK], sb[KILN_MAX_RANK], batch = 1;
    int64_t s_a = M * K, s_b = K * N;
    for (int i = nb - 1; i >= 0; i--) {
        int ia = i - (nb - (ra - 2)), ib = i - (nb - (rb - 2));
        int64_t da = ia >= 0 ? ad[ia] : 1, dbb = ib >= 0 ? bd[ib] : 1;
        od[i] = da > dbb ? da : dbb;
        sa[i] = da == 1 ? 0 : s_a;
        sb[i] = dbb == 1 ? 0 : s_b;
        s_a *= da;
        s_b *= dbb;
        batch *= od[i];
    }
    *ry = nb + 2;
    for (int i = 0; i < nb; i++) yd[i] = od[i];
    yd[nb] = M;
    yd[nb + 1] = N;
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t rem = bi, oa = 0, ob = 0;
        for (int i = nb - 1; i >= 0; i--) {
            int64_t idx = rem % od[i];
            rem /= od[i];
            oa += idx * sa[i];
            ob += idx * sb[i];
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += (double)a[oa + (ta ? k * M + i : i * K + k)] * (double)b[ob + (tb ? j * K + k : k * N + j)];
                y[bi * M * N + i * N + j] = alpha * acc;
            }
    }
}

static int64_t numel(int r, const int64_t *d) { return kn_numel(r, d); }

/* Runs m and checks output 0 against a float64 reference. */
static void check_outputs(const kiln_module *m, float *const *ins, const double *ref, int64_t n, const char *what) {
    float *out[8] = {0};
    int64_t on[8] = {0};
    if (!m || !kt_run(m, ins, NULL, out, on)) return;
    KT_CHECK(on[0] == n, "%s: %lld outputs, expected %lld", what, (long long)on[0], (long long)n);
    if (on[0] == n) {
        double r = kt_max_tol_ratio(out[0], ref, n, 1e-5, 1e-5);
        KT_CHECK(r <= 1.0, "%s: off the float64 reference by %g x tolerance", what, r);
    }
    for (int k = 0; k < 8; k++) free(out[k]);
}

/* One fusion case: A and B are graph inputs of the stored dims; each input may pass through a
 * Transpose of its last two dims (trans: 1 with perm, 2 without perm, rank 2 only) and a scale
 * (scale: 0 none, 1 Mul(x, c), 2 Mul(c, x), 3 Div(x, c)), the scale before the Transpose when
 * scale_first; the output may be scaled too (yscale, the constant of rank yrank, all ones). */
typedef struct mm_case {
    const char *what;
    int ra, rb;
    int64_t ad[4], bd[4];
    int trans[2], scale[2], scale_first[2];
    int yscale, yrank;
} mm_case;

static const float kCa = 0.75f, kCb = 1.25f, kCy = 0.5f;

static double factor(int scale, float c) { return scale == 0 ? 1.0 : scale == 3 ? 1.0 / c : c; }

static void build_operand(kiln_graph *g, const mm_case *c, int k, const char *in, char *out) {
    const char *x = k ? "b" : "a";
    char cur[64], nm[64];
    snprintf(cur, sizeof cur, "%s", in);
    for (int stage = 0; stage < 2; stage++) {
        int do_scale = (stage == 0) == (c->scale_first[k] != 0);
        if (do_scale && c->scale[k]) {
            char cn[32];
            snprintf(cn, sizeof cn, "%s.c", x);
            kt_scalar(g, cn, k ? kCb : kCa);
            snprintf(nm, sizeof nm, "%s.scaled", x);
            const char *op = c->scale[k] == 3 ? "Div" : "Mul";
            if (c->scale[k] == 2) kt_node(g, op, nm, cn, cur, nm);
            else kt_node(g, op, nm, cur, cn, nm);
            snprintf(cur, sizeof cur, "%s", nm);
        } else if (!do_scale && c->trans[k]) {
            int r = k ? c->rb : c->ra;
            int64_t perm[4];
            for (int i = 0; i < r; i++) perm[i] = i;
            perm[r - 2] = r - 1;
            perm[r - 1] = r - 2;
            snprintf(nm, sizeof nm, "%s.t", x);
            kiln_attr pa = kiln_attr_ints("perm", r, perm);
            const char *ins[1] = {cur};
            kt_node_attrs(g, "Transpose", nm, 1, ins, nm, c->trans[k] == 1 ? 1 : 0, &pa);
            snprintf(cur, sizeof cur, "%s", nm);
        }
    }
    strcpy(out, cur);
}

static void run_case(const mm_case *c) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    if (!g) return;
    kt_input(g, "a", c->ra, c->ad);
    kt_input(g, "b", c->rb, c->bd);
    char av[64], bv[64];
    build_operand(g, c, 0, "a", av);
    build_operand(g, c, 1, "b", bv);
    kt_node(g, "MatMul", "mm", av, bv, c->yscale ? "p" : "y");
    if (c->yscale) {
        int64_t ones[KILN_MAX_RANK] = {1, 1, 1, 1, 1, 1, 1, 1};
        float cy = kCy;
        KT_OK(kiln_graph_add_initializer(g, "y.c", KILN_F32, c->yrank, ones, &cy));
        if (c->yscale == 2) kt_node(g, "Mul", "ys", "y.c", "p", "y");
        else kt_node(g, c->yscale == 3 ? "Div" : "Mul", "ys", "p", "y.c", "y");
    }
    KT_OK(kiln_graph_add_output(g, "y"));
    int64_t na = numel(c->ra, c->ad), nb = numel(c->rb, c->bd);
    float *a = malloc((size_t)na * sizeof *a), *b = malloc((size_t)nb * sizeof *b);
    kt_fill_uniform(a, na, -1, 1);
    kt_fill_uniform(b, nb, -1, 1);
    double alpha = factor(c->scale[0], kCa) * factor(c->scale[1], kCb) * factor(c->yscale, kCy);
    int ry;
    int64_t yd[KILN_MAX_RANK];
    int64_t ymax = 4096;
    double *ref = malloc((size_t)ymax * sizeof *ref);
    ref_matmul(a, c->ra, c->ad, c->trans[0] != 0, b, c->rb, c->bd, c->trans[1] != 0, alpha, ref, &ry, yd);
    int64_t ny = numel(ry, yd);
    KT_CHECK(ny <= ymax, "%s: reference too large", c->what);
    kt_opts o = {.optimize = true};
    kiln_module *m = kt_compile(g, &o);
    if (m) {
        const kn_node *mm = kt_find_op(m, "MatMul");
        KT_CHECK(kt_count_nodes(m) == 1 && mm, "%s: one MatMul is left (%d nodes)", c->what, kt_count_nodes(m));
        if (mm) {
            KT_CHECK(kn_attr_i(mm, "kiln.trans_a", 0) == (c->trans[0] != 0), "%s: kiln.trans_a", c->what);
            KT_CHECK(kn_attr_i(mm, "kiln.trans_b", 0) == (c->trans[1] != 0), "%s: kiln.trans_b", c->what);
            float al = kn_attr_f(mm, "kiln.alpha", 1.0f);
            KT_CHECK(fabs(al - alpha) <= 1e-6 * fabs(alpha), "%s: kiln.alpha %g, expected %g", c->what, al, alpha);
            KT_CHECK(kn_attr_i(mm, "kiln.nodes", 1) ==
                         1 + !!c->trans[0] + !!c->trans[1] + !!c->scale[0] + !!c->scale[1] + !!c->yscale,
                     "%s: kiln.nodes counts the absorbed model ops", c->what);
        }
        float *ins[2] = {a, b}, *out[8] = {0};
        int64_t on[8] = {0};
        kiln_tensor sh[8];
        if (kt_run_shapes(m, ins, NULL, out, on, sh)) {
            int same = sh[0].rank == ry;
            for (int i = 0; same && i < ry; i++) same = sh[0].dims[i] == yd[i];
            KT_CHECK(same && on[0] == ny, "%s: output shape", c->what);
            if (same && on[0] == ny) {
                double r = kt_max_tol_ratio(out[0], ref, ny, 1e-5, 1e-5);
                KT_CHECK(r <= 1.0, "%s: off the float64 reference by %g x tolerance", c->what, r);
            }
        }
        for (int k = 0; k < 8; k++) free(out[k]);
    }
    kiln_module_free(m);
    /* fp16: precision lowering runs after the passes; the scale stays a float attribute */
    o.precision = KILN_PRECISION_FP16;
    m = kt_compile(g, &o);
    if (m) {
        const kn_node *mm = kt_find_op(m, "MatMul");
        KT_CHECK(mm && fabs(kn_attr_f(mm, "kiln.alpha", 1.0f) - alpha) <= 1e-6 * fabs(alpha), "%s (fp16): kiln.alpha",
                 c->what);
        float *ins[2] = {a, b}, *out[8] = {0};
        int64_t on[8] = {0};
        if (kt_run(m, ins, NULL, out, on) && on[0] == ny) {
            double r = kt_max_tol_ratio(out[0], ref, ny, 1e-2, 1e-2);
            KT_CHECK(r <= 1.0, "%s (fp16): off the float64 reference by %g x tolerance", c->what, r);
        }
        for (int k = 0; k < 8; k++) free(out[k]);
    }
    kiln_module_free(m);
    kiln_graph_free(g);
    free(a);
    free(b);
    free(ref);
}

static void test_transpose_fusion(void) {
    static const mm_case cases[] = {
        {"rank 4 x rank 4, B transposed, batch broadcast", 4, 4, {2, 3, 4, 5}, {1, 3, 6, 5}, {0, 1}, {0, 0}, {0, 0}, 0, 0},
        {"rank 3 A transposed x shared 2-D B", 3, 2, {3, 5, 4}, {5, 6}, {1, 0}, {0, 0}, {0, 0}, 0, 0},
        {"rank 3, both transposed", 3, 3, {2, 5, 4}, {2, 6, 5}, {1, 1}, {0, 0}, {0, 0}, 0, 0},
        {"rank 2, Transpose without perm on A", 2, 2, {5, 4}, {5, 6}, {2, 0}, {0, 0}, {0, 0}, 0, 0},
        {"rank 2 x rank 2, both without perm", 2, 2, {5, 4}, {6, 5}, {2, 2}, {0, 0}, {0, 0}, 0, 0},
        {"rank 3 A x rank 4 B transposed (A broadcast)", 3, 4, {3, 4, 5}, {2, 3, 6, 5}, {0, 1}, {0, 0}, {0, 0}, 0, 0},
        {"rank 4 A transposed x rank 2 B", 4, 2, {2, 2, 5, 4}, {5, 3}, {1, 0}, {0, 0}, {0, 0}, 0, 0},
        {"rank 2 A x rank 3 B transposed", 2, 3, {4, 5}, {3, 6, 5}, {0, 1}, {0, 0}, {0, 0}, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

static void test_scale_fusion(void) {
    static const mm_case cases[] = {
        {"Mul(A, c)", 3, 3, {2, 4, 5}, {2, 5, 6}, {0, 0}, {1, 0}, {0, 0}, 0, 0},
        {"Mul(c, B)", 3, 2, {2, 4, 5}, {5, 6}, {0, 0}, {0, 2}, {0, 0}, 0, 0},
        {"Div(A, c) and Mul(B, c)", 2, 2, {4, 5}, {5, 6}, {0, 0}, {3, 1}, {0, 0}, 0, 0},
        {"output Mul(Y, c) with c [1,1,1]", 3, 3, {2, 4, 5}, {2, 5, 6}, {0, 0}, {0, 0}, {0, 0}, 1, 3},
        {"output Mul(c, Y) with c scalar", 2, 2, {4, 5}, {5, 6}, {0, 0}, {0, 0}, {0, 0}, 2, 0},
        {"output Div(Y, c)", 4, 4, {1, 2, 4, 5}, {1, 2, 5, 6}, {0, 0}, {0, 0}, {0, 0}, 3, 1},
        {"attention: Mul(q, c) x Transpose(Mul(k, c))", 4, 4, {1, 2, 4, 5}, {1, 2, 6, 5}, {0, 1}, {1, 1}, {0, 1}, 0, 0},
        {"Mul(Transpose(k), c), Transpose(Div(a, c)), output Mul", 3, 3, {2, 5, 4}, {2, 6, 5}, {1, 1}, {3, 2}, {1, 0}, 1, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
}

/* Cases where the fusion must not happen: the result must still match the reference. */
static void test_no_fusion(void) {
    int64_t ad[3] = {2, 4, 5}, bd[3] = {2, 6, 5}, qd[3] = {2, 5, 6}, vd[1] = {6};
    float *a = malloc(40 * sizeof *a), *b = malloc(60 * sizeof *b), *q = malloc(60 * sizeof *q);
    float vc[6];
    kt_fill_uniform(a, 40, -1, 1);
    kt_fill_uniform(b, 60, -1, 1);
    kt_fill_uniform(q, 60, -1, 1);
    kt_fill_uniform(vc, 6, 0.5f, 2);
    double ref[48], ref2[60];
    int ry;
    int64_t yd[KILN_MAX_RANK];
    /* 1: the Transpose has a second reader (it is also a graph output) */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        kt_input(g, "a", 3, ad);
        kt_input(g, "b", 3, bd);
        int64_t perm[3] = {0, 2, 1};
        kiln_attr pa = kiln_attr_ints("perm", 3, perm);
        const char *in[1] = {"b"};
        kt_node_attrs(g, "Transpose", "bt", 1, in, "bt", 1, &pa);
        kt_node(g, "MatMul", "mm", "a", "bt", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        KT_OK(kiln_graph_add_output(g, "bt"));
        kt_opts o = {.optimize = true};
        kiln_module *m = kt_compile(g, &o);
        const kn_node *mm = kt_find_op(m, "MatMul");
        KT_CHECK(m && mm && kt_count_op(m, "Transpose") == 1 && !kn_node_attr(mm, "kiln.trans_b"),
                 "a Transpose that is also a graph output stays");
        ref_matmul(a, 3, ad, 0, b, 3, bd, 1, 1.0, ref, &ry, yd);
        check_outputs(m, (float *[]){a, b}, ref, 48, "Transpose with a second reader");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* 2: a Transpose read by two MatMuls; a perm that is not a last-two swap */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        kt_input(g, "a", 3, ad);
        kt_input(g, "b", 3, bd);
        int64_t perm[3] = {0, 2, 1};
        kiln_attr pa = kiln_attr_ints("perm", 3, perm);
        const char *in[1] = {"b"};
        kt_node_attrs(g, "Transpose", "bt", 1, in, "bt", 1, &pa);
        kt_node(g, "MatMul", "mm1", "a", "bt", "y1");
        kt_node(g, "MatMul", "mm2", "a", "bt", "y2");
        kt_node(g, "Add", "sum", "y1", "y2", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {.optimize = true};
        kiln_module *m = kt_compile(g, &o);
        /* CSE may merge the two MatMuls; either way the Transpose has to stay unless one MatMul reads it */
        int mms = kt_count_op(m, "MatMul"), tr = kt_count_op(m, "Transpose");
        KT_CHECK(m && (mms == 2 ? tr == 1 : mms == 1), "a Transpose read by two MatMuls stays (%d MatMul, %d Transpose)",
                 mms, tr);
        ref_matmul(a, 3, ad, 0, b, 3, bd, 1, 2.0, ref, &ry, yd);
        check_outputs(m, (float *[]){a, b}, ref, 48, "Transpose read twice");
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* 3: non-scalar Mul on B, scalar Mul with a second reader on A, scalar of a higher rank than
     * the operand */
    {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        kt_input(g, "a", 3, ad);
        kt_input(g, "q", 3, qd);
        KT_OK(kiln_graph_add_initializer(g, "v", KILN_F32, 1, vd, vc));
        kt_scalar(g, "s", 1.5f);
        kt_node(g, "Mul", "qv", "q", "v", "qs");      /* [2,5,6] * [6]: not a scalar */
        kt_node(g, "Mul", "as", "a", "s", "a2");      /* read by the MatMul and the Add below */
        kt_node(g, "MatMul", "mm", "a2", "qs", "p");  /* [2,4,6] */
        int64_t one4[4] = {1, 1, 1, 1};
        float two = 2.0f;
        KT_OK(kiln_graph_add_initializer(g, "s4", KILN_F32, 4, one4, &two));
        kt_node(g, "Mul", "ps", "p", "s4", "y");     /* rank grows to 4: stays */
        KT_OK(kiln_graph_add_output(g, "y"));
        KT_OK(kiln_graph_add_output(g, "a2"));
        kt_opts o = {.optimize = true};
        kiln_module *m = kt_compile(g, &o);
        const kn_node *mm = kt_find_op(m, "MatMul");
        KT_CHECK(m && mm && kt_count_op(m, "Mul") == 3 && !kn_node_attr(mm, "kiln.alpha"),
                 "non-scalar, shared and rank-growing Muls stay (%d Mul)", kt_count_op(m, "Mul"));
        float *qv = malloc(60 * sizeof *qv), *as = malloc(40 * sizeof *as);
        for (int i = 0; i < 60; i++) qv[i] = q[i] * vc[i % 6];
        for (int i = 0; i < 40; i++) as[i] = a[i] * 1.5f;
        ref_matmul(as, 3, ad, 0, qv, 3, qd, 0, 2.0, ref2, &ry, yd);
        check_outputs(m, (float *[]){a, q}, ref2, 48, "unfusable Muls");
        free(qv);
        free(as);
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    /* 4: a Transpose that moves a leading dim ([1, 0, 2] on A: [4, 2, 5] -> [2, 4, 5]) */
    {
        int64_t atd[3] = {4, 2, 5};
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        kt_input(g, "a", 3, atd);
        kt_input(g, "q", 3, qd);
        int64_t perm[3] = {1, 0, 2};
        kiln_attr pa = kiln_attr_ints("perm", 3, perm);
        const char *in[1] = {"a"};
        kt_node_attrs(g, "Transpose", "at", 1, in, "at", 1, &pa);
        kt_node(g, "MatMul", "mm", "at", "q", "y");
        KT_OK(kiln_graph_add_output(g, "y"));
        kt_opts o = {.optimize = true};
        kiln_module *m = kt_compile(g, &o);
        const kn_node *mm = kt_find_op(m, "MatMul");
        KT_CHECK(m && mm && kt_count_op(m, "Transpose") == 1 && !kn_node_attr(mm, "kiln.trans_a"),
                 "a Transpose of leading dims stays");
        float *at = malloc(40 * sizeof *at);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 2; j++)
                for (int k = 0; k < 5; k++) at[(j * 4 + i) * 5 + k] = a[(i * 2 + j) * 5 + k];
        ref_matmul(at, 3, ad, 0, q, 3, qd, 0, 1.0, ref2, &ry, yd);
        check_outputs(m, (float *[]){a, q}, ref2, 48, "Transpose of leading dims");
        free(at);
        kiln_module_free(m);
        kiln_graph_free(g);
    }
    free(a);
    free(b);
    free(q);
}

int main(void) {
    kt_seed(20240611);
    test_transpose_fusion();
    test_scale_fusion();
    test_no_fusion();
    return kt_finish();
}
