/* The attention fusion (src/passes/fuse_attention.c): the multi-head self-attention graph that
 * torch's nn.MultiheadAttention exports (packed QKV projection, Slice/Reshape/Transpose per
 * operand, the 1/sqrt(hd) Div, MatMul-Softmax-MatMul, output Transpose and Reshape), built with a
 * symbolic batch, becomes one KilnAttention node, with constant Slice bounds and with bounds
 * computed from the shape at run time (as torch writes them); its output at batches 1, 2, 3
 * matches a float64 reference written here, with the pass on and off. The pass must not fire over
 * a mask Add, a scores tensor that is a graph output, a Softmax over another axis, or K/V of
 * another batch (and those graphs still compute the right thing); Slices without axes (dim 0)
 * are not read as column slices. Q/K/V graph inputs with a transposed K fuse too. The fused
 * module survives a save/load round trip; the internal op is refused from the graph builder. On
 * a CUDA device the same graph is built for CUDA (fp32, fp16) and checked against the same
 * reference with CUDA graphs off and whole; without one, SKIP. */
#include "test_passes_util.h"

#include "ops/attention.h"

#include <math.h>
#include <unistd.h>

enum { MAX_B = 3 };

typedef struct attn_cfg {
    int64_t S, E, H;
} attn_cfg;

/* What sits between the first MatMul and the Softmax, or around them. */
typedef enum variant {
    V_PLAIN,       /* the pattern: fused */
    V_DYN_SLICE,   /* the Slice bounds computed from Shape(qkv) at run time, as torch's export
                      writes them for a dynamic batch: fused, the Slices stay */
    V_MASK,        /* Add(scores, mask [S, S]) before the Softmax: not fused */
    V_SCORES_OUT,  /* the scores are a graph output too: not fused */
    V_SOFTMAX_AX1, /* Softmax over axis 1 (the queries): not fused */
    V_NO_AXES,     /* Slices without axes: they cut dim 0 (ONNX's default), here a no-op [0, S),
                      so Q = K = V = all 3H column groups of qkv and y is [S, 3B, E] */
    V_CROSS,       /* K and V projected from a second input "mem" [S, batch2, E], batch2 its own
                      symbol (run with mem = x): fused, the batch is checked at run time */
    V_TORCH2,      /* torch 2.x's export: q, k, v picked from the packed projection by Reshape
                      [S, B, 3, E], Unsqueeze, a 5-D Transpose, Squeeze and three Gathers, and the
                      heads viewed apart, [B, H, S, hd], around rank-4 MatMuls (K^T by a Transpose
                      of the last two dims); the output Transpose is rank 4: fused (kiln.heads),
                      the Gathers and the packing copy (the 5-D Transpose) in the views */
} variant;

static const char *variant_name(variant v) {
    static const char *const n[] = {"plain",          "run-time slice bounds", "mask",
                                    "scores output",  "softmax axis 1",        "slices without axes",
                                    "K/V of another batch symbol", "torch 2.x rank-4 form"};
    return n[v];
}

/* Float64 multi-head self-attention over x [S, B, E] with the packed projection w [E, 3E]: head h
 * of batch entry b reads columns h*hd.. of Q (x w[:, 0:E]), K (E..2E) and V (2E..3E); scores
 * scaled by 1/sqrt(hd), plus mask[i, t] when mask; softmax over the keys (axis 2) or, softmax_q,
 * over the queries (axis 1); y [S, B, E] with head h's output at columns h*hd... */
static void ref_mha(const float *x, const float *w, const attn_cfg *c, int64_t B, const float *mask, int softmax_q,
                    double *y) {
    const int64_t S = c->S, E = c->E, H = c->H, hd = E / H, E3 = 3 * E;
    double *qkv = malloc((size_t)(S * B * E3) * sizeof *qkv), *sc = malloc((size_t)(S * S) * sizeof *sc);
    if (!qkv || !sc) {
        KT_CHECK(0, "out of memory in the reference");
        free(qkv);
        free(sc);
        return;
    }
    for (int64_t r = 0; r < S * B; r++)
        for (int64_t j = 0; j < E3; j++) {
            double a = 0;
            for (int64_t e = 0; e < E; e++) a += (double)x[r * E + e] * (double)w[e * E3 + j];
            qkv[r * E3 + j] = a;
        }
    const double scale = 1.0 / sqrt((double)hd);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            /* element d of head h at sequence position s: Q, K, V */
#define QKV(part, s, d) qkv[((s) * B + b) * E3 + (part) * E + h * hd + (d)]
            for (int64_t i = 0; i < S; i++)
                for (int64_t t = 0; t < S; t++) {
                    double a = 0;
                    for (int64_t d = 0; d < hd; d++) a += QKV(0, i, d) * QKV(1, t, d);
                    sc[i * S + t] = a * scale + (mask ? (double)mask[i * S + t] : 0.0);
                }
            /* softmax over t (rows) or over i (columns) */
            for (int64_t o = 0; o < S; o++) {
                int64_t base = softmax_q ? o : o * S, step = softmax_q ? S : 1;
                double m = -INFINITY, sum = 0;
                for (int64_t u = 0; u < S; u++) m = fmax(m, sc[base + u * step]);
                for (int64_t u = 0; u < S; u++) sum += (sc[base + u * step] = exp(sc[base + u * step] - m));
                for (int64_t u = 0; u < S; u++) sc[base + u * step] /= sum;
            }
            for (int64_t i = 0; i < S; i++)
                for (int64_t d = 0; d < hd; d++) {
                    double a = 0;
                    for (int64_t t = 0; t < S; t++) a += sc[i * S + t] * QKV(2, t, d);
                    y[(i * B + b) * E + h * hd + d] = a;
                }
#undef QKV
        }
    free(qkv);
    free(sc);
}

/* V_TORCH2 after "qkv" [S, batch, 3E]: what torch 2.x's exporter writes for the same attention. */
static void build_torch2_tail(kiln_graph *g, const attn_cfg *c) {
    const int64_t S = c->S, E = c->E, H = c->H, hd = E / H;
    int64_t s4[4] = {S, -1, 3, E}, zero[1] = {0}, three[1] = {3}, sh3[3] = {S, -1, hd}, sh4[4] = {-1, H, S, hd},
            yshp[3] = {S, -1, E};
    kt_ints(g, "t2.s4", 4, s4);
    kt_ints(g, "t2.zero", 1, zero);
    kt_ints(g, "t2.three", 1, three);
    kt_ints(g, "t2.sh3", 3, sh3);
    kt_ints(g, "t2.sh4", 4, sh4);
    kt_ints(g, "shape_y", 3, yshp);
    kt_node(g, "Reshape", "t2.unflatten", "qkv", "t2.s4", "u4");           /* [S, B, 3, E] */
    kt_node(g, "Unsqueeze", "t2.unsqueeze", "u4", "t2.zero", "u5");        /* [1, S, B, 3, E] */
    static const int64_t p5[5] = {3, 1, 2, 0, 4};
    kiln_attr pa5 = kiln_attr_ints("perm", 5, p5);
    const char *t5in[1] = {"u5"};
    kt_node_attrs(g, "Transpose", "t2.transpose", 1, t5in, "t5", 1, &pa5); /* [3, S, B, 1, E] */
    kt_node(g, "Squeeze", "t2.squeeze", "t5", "t2.three", "packed");        /* [3, S, B, E] */
    static const char *const nm[3] = {"q", "k", "v"};
    for (int k = 0; k < 3; k++) {
        char idx[32], ga[32], r3[32], tr[32], r4[32];
        snprintf(idx, sizeof idx, "%s.index", nm[k]);
        snprintf(ga, sizeof ga, "%s.pick", nm[k]);
        snprintf(r3, sizeof r3, "%s.heads", nm[k]);
        snprintf(tr, sizeof tr, "%s.t", nm[k]);
        snprintf(r4, sizeof r4, "%s.4d", nm[k]);
        int64_t iv = k;
        KT_OK(kiln_graph_add_initializer(g, idx, KILN_I64, 0, NULL, &iv));
        kiln_attr ax0 = kiln_attr_int("axis", 0);
        const char *gin[2] = {"packed", idx};
        kt_node_attrs(g, "Gather", ga, 2, gin, ga, 1, &ax0); /* [S, B, E] */
        kt_node(g, "Reshape", r3, ga, "t2.sh3", r3);          /* [S, B*H, hd] */
        static const int64_t p3[3] = {1, 0, 2};
        kiln_attr pa = kiln_attr_ints("perm", 3, p3);
        const char *tin[1] = {r3};
        kt_node_attrs(g, "Transpose", tr, 1, tin, tr, 1, &pa); /* [B*H, S, hd] */
        kt_node(g, "Reshape", r4, tr, "t2.sh4", r4);           /* [B, H, S, hd] */
    }
    static const int64_t pk[4] = {0, 1, 3, 2};
    kiln_attr pka = kiln_attr_ints("perm", 4, pk);
    const char *kin[1] = {"k.4d"};
    kt_node_attrs(g, "Transpose", "k.T", 1, kin, "k.T", 1, &pka); /* [B, H, hd, S] */
    kt_scalar(g, "sqrt_hd", sqrtf((float)hd));
    kt_node(g, "Div", "q.scale", "q.4d", "sqrt_hd", "q.scaled");
    kt_node(g, "MatMul", "scores", "q.scaled", "k.T", "s");
    kiln_attr ax = kiln_attr_int("axis", -1);
    const char *smi[1] = {"s"};
    kt_node_attrs(g, "Softmax", "softmax", 1, smi, "p", 1, &ax);
    kt_node(g, "MatMul", "context", "p", "v.4d", "o"); /* [B, H, S, hd] */
    static const int64_t po[4] = {2, 0, 1, 3};
    kiln_attr poa = kiln_attr_ints("perm", 4, po);
    const char *oin[1] = {"o"};
    kt_node_attrs(g, "Transpose", "o.t", 1, oin, "o.t", 1, &poa); /* [S, B, H, hd] */
    kt_node(g, "Reshape", "merge_heads", "o.t", "shape_y", "y");
    KT_OK(kiln_graph_add_output(g, "y"));
}

/* The graph torch exports for nn.MultiheadAttention(E, H) self-attention without masks, minus
 * the biases and the output projection: x [S, batch, E] (batch symbolic), W_in [E, 3E] = w. */
static kiln_graph *build_mha(const attn_cfg *c, const float *w, const float *mask, variant var) {
    const int64_t S = c->S, E = c->E, H = c->H, hd = E / H;
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    if (!g) return NULL;
    int64_t xd[3] = {S, -1, E}, wd[2] = {E, 3 * E}, md[2] = {S, S};
    const char *dn[3] = {NULL, "batch", NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 3, xd, dn));
    KT_OK(kiln_graph_add_initializer(g, "W_in", KILN_F32, 2, wd, w));
    kt_node(g, "MatMul", "in_proj", "x", "W_in", "qkv");
    if (var == V_CROSS) {
        const char *dn2[3] = {NULL, "batch2", NULL};
        KT_OK(kiln_graph_add_input(g, "mem", KILN_F32, 3, xd, dn2));
        kt_node(g, "MatMul", "in_proj_kv", "mem", "W_in", "kv");
    }
    static const char *const nm[3] = {"q", "k", "v"};
    if (var == V_TORCH2) {
        build_torch2_tail(g, c);
        return g;
    }
    int64_t axes[1] = {2}, shp[3] = {S, -1, hd}, yshp[3] = {S, -1, E};
    kt_ints(g, "axes", 1, axes);
    kt_ints(g, "shape_y", 3, yshp);
    if (var == V_DYN_SLICE) { /* third = (Shape(qkv)[2] + 2) / 3; bounds 0, third, 2 third, 3 third */
        int64_t two[1] = {2}, three[1] = {3}, zero[1] = {0};
        kt_ints(g, "two", 1, two);
        kt_ints(g, "three", 1, three);
        kt_ints(g, "q.starts", 1, zero);
        kt_node(g, "Shape", "qkv.shape", "qkv", NULL, "qkv.shape");
        kt_node(g, "Gather", "qkv.width", "qkv.shape", "axes", "qkv.width");
        kt_node(g, "Add", "qkv.width2", "qkv.width", "two", "qkv.width2");
        kt_node(g, "Div", "qkv.third", "qkv.width2", "three", "third");
        for (int k = 0; k < 3; k++) {
            char mul[32], en[32], nst[32];
            int64_t f[1] = {k + 1};
            snprintf(mul, sizeof mul, "%s.chunk", nm[k]);
            snprintf(en, sizeof en, "%s.ends", nm[k]);
            kt_ints(g, mul, 1, f);
            kt_node(g, "Mul", en, "third", mul, en);
            if (k < 2) {
                snprintf(nst, sizeof nst, "%s.starts", nm[k + 1]);
                kt_node(g, "Identity", nst, en, NULL, nst);
            }
        }
    }
    for (int k = 0; k < 3; k++) {
        char st[32], en[32], sh[32], sl[32], rs[32], tr[32];
        int64_t b0 = k * E, b1 = (k + 1) * E;
        snprintf(st, sizeof st, "%s.starts", nm[k]);
        snprintf(en, sizeof en, "%s.ends", nm[k]);
        snprintf(sh, sizeof sh, "%s.shape", nm[k]);
        snprintf(sl, sizeof sl, "%s.slice", nm[k]);
        snprintf(rs, sizeof rs, "%s.heads", nm[k]);
        snprintf(tr, sizeof tr, "%s.t", nm[k]);
        if (var == V_NO_AXES) b0 = 0, b1 = S;
        if (var != V_DYN_SLICE) {
            kt_ints(g, st, 1, &b0);
            kt_ints(g, en, 1, &b1);
        }
        kt_ints(g, sh, 3, shp);
        const char *sin[4] = {var == V_CROSS && k ? "kv" : "qkv", st, en, "axes"};
        kt_node_attrs(g, "Slice", sl, var == V_NO_AXES ? 3 : 4, sin, sl, 0, NULL);
        kt_node(g, "Reshape", rs, sl, sh, rs);
        static const int64_t perms[3][3] = {{1, 0, 2}, {1, 2, 0}, {1, 0, 2}};
        kiln_attr pa = kiln_attr_ints("perm", 3, perms[k]);
        const char *tin[1] = {rs};
        kt_node_attrs(g, "Transpose", tr, 1, tin, tr, 1, &pa);
    }
    kt_scalar(g, "sqrt_hd", sqrtf((float)hd));
    kt_node(g, "Div", "q.scale", "q.t", "sqrt_hd", "q.scaled");
    kt_node(g, "MatMul", "scores", "q.scaled", "k.t", "s");
    const char *sm_in = "s";
    if (var == V_MASK) {
        KT_OK(kiln_graph_add_initializer(g, "mask", KILN_F32, 2, md, mask));
        kt_node(g, "Add", "masked", "s", "mask", "s_masked");
        sm_in = "s_masked";
    }
    kiln_attr ax = kiln_attr_int("axis", var == V_SOFTMAX_AX1 ? 1 : -1);
    const char *smi[1] = {sm_in};
    kt_node_attrs(g, "Softmax", "softmax", 1, smi, "p", 1, &ax);
    kt_node(g, "MatMul", "context", "p", "v.t", "o");
    int64_t operm[3] = {1, 0, 2};
    kiln_attr opa = kiln_attr_ints("perm", 3, operm);
    const char *oin[1] = {"o"};
    kt_node_attrs(g, "Transpose", "o.t", 1, oin, "o.t", 1, &opa);
    kt_node(g, "Reshape", "merge_heads", "o.t", "shape_y", "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    if (var == V_SCORES_OUT) KT_OK(kiln_graph_add_output(g, "s"));
    return g;
}

static kiln_input_profile profile_of(const attn_cfg *c, const char *name) {
    return (kiln_input_profile){.name = name, .rank = 3, .min = {c->S, 1, c->E}, .opt = {c->S, 2, c->E},
                                .max = {c->S, MAX_B, c->E}};
}

/* Max |out - ref| / max |ref| over n elements. */
static double rel_to_max(const float *out, const double *ref, int64_t n) {
    double m = 0, e = 0;
    for (int64_t i = 0; i < n; i++) {
        m = fmax(m, fabs(ref[i]));
        double d = fabs((double)out[i] - ref[i]);
        e = isnan(d) ? INFINITY : fmax(e, d);
    }
    return m > 0 ? e / m : e;
}

/* Runs m on the CPU at batch b (x for every input) and checks output 0 ([S, b, E]) against ref. */
static void check_cpu_run(const kiln_module *m, const attn_cfg *c, float *x, int64_t b, const double *ref, double tol,
                          const char *what) {
    int64_t dims[2][KILN_MAX_RANK] = {{c->S, b, c->E}, {c->S, b, c->E}};
    float *ins[2] = {x, x}, *out[8] = {0};
    int64_t on[8] = {0};
    kiln_tensor sh[8];
    const int64_t n = c->S * b * c->E;
    if (m && kt_run_shapes(m, ins, (const int64_t(*)[KILN_MAX_RANK])dims, out, on, sh)) {
        int shape_ok = sh[0].rank == 3 && sh[0].dims[0] == c->S && sh[0].dims[1] == b && sh[0].dims[2] == c->E;
        KT_CHECK(shape_ok && on[0] == n, "%s, batch %lld: output [%lld, %lld, %lld] rank %d, expected [%lld, %lld, %lld]",
                 what, (long long)b, (long long)sh[0].dims[0], (long long)sh[0].dims[1], (long long)sh[0].dims[2],
                 sh[0].rank, (long long)c->S, (long long)b, (long long)c->E);
        if (shape_ok && on[0] == n) {
            double err = rel_to_max(out[0], ref, n);
            KT_CHECK(err <= tol, "%s, batch %lld: off the float64 reference by %g of max |ref| (tol %g)", what,
                     (long long)b, err, tol);
        }
    }
    for (int k = 0; k < 8; k++) free(out[k]);
}

/* The fused module's graph: one KilnAttention, and none of the chain around it (but the Slices
 * with run-time bounds, V_DYN_SLICE); exact: nothing else but the projection and the merge (a
 * CUDA fp16 build may add casts at its edges). */
static void check_fused_structure(const kiln_module *m, variant var, int exact, const char *what, const attn_cfg *c) {
    if (var == V_TORCH2) { /* all of it fuses: the packing copy (5-D Transpose) and the Gathers too */
        KT_CHECK(kt_count_op(m, "KilnAttention") == 1 && kt_count_op(m, "Softmax") == 0 && kt_count_op(m, "MatMul") == 1 &&
                     kt_count_op(m, "Gather") == 0 && kt_count_op(m, "Transpose") == 0 && kt_count_op(m, "Div") == 0,
                 "%s: %d KilnAttention, %d Softmax, %d MatMul, %d Gather, %d Transpose, %d Div; expected 1, 0, 1, 0, 0, 0",
                 what, kt_count_op(m, "KilnAttention"), kt_count_op(m, "Softmax"), kt_count_op(m, "MatMul"),
                 kt_count_op(m, "Gather"), kt_count_op(m, "Transpose"), kt_count_op(m, "Div"));
        const kn_node *at = kt_find_op(m, "KilnAttention");
        const int64_t *p;
        KT_CHECK(at && kn_attr_i(at, "kiln.heads", 0) == 4 && kn_attr_ints(at, "kiln.out_perm", &p) == 4 && p[0] == 2 &&
                     p[1] == 0 && p[2] == 1 && p[3] == 3,
                 "%s: kiln.heads 4 and the rank-4 output Transpose in kiln.out_perm", what);
        for (int k = 0; at && k < 3; k++) {
            const int64_t *v;
            KT_CHECK(at->in[k] >= 0 && strcmp(m->graph->values[at->in[k]].name, "qkv") == 0 &&
                         kn_attr_ints(at, k == 0 ? "kiln.q_view" : k == 1 ? "kiln.k_view" : "kiln.v_view", &v) ==
                             KN_ATTN_VIEW_INTS &&
                         v[0] == k * c->E && v[1] == (k + 1) * c->E && v[6] == -1,
                     "%s: operand %d reads columns [%lld, %lld) of the projection qkv [S, B, 3E] (the Gather and "
                     "the packing copy are in the view)", what, k, (long long)(k * c->E), (long long)((k + 1) * c->E));
        }
        return;
    }
    const int dyn = var == V_DYN_SLICE;
    KT_CHECK(kt_count_op(m, "KilnAttention") == 1, "%s: %d KilnAttention, expected 1", what, kt_count_op(m, "KilnAttention"));
    KT_CHECK(kt_count_op(m, "Softmax") == 0 && kt_count_op(m, "Slice") == (dyn ? 3 : 0) &&
                 kt_count_op(m, "Transpose") == 0 && kt_count_op(m, "Div") == dyn,
             "%s: left %d Softmax, %d Slice, %d Transpose, %d Div", what, kt_count_op(m, "Softmax"),
             kt_count_op(m, "Slice"), kt_count_op(m, "Transpose"), kt_count_op(m, "Div"));
    /* the projection MatMul and the heads-merging Reshape stay */
    KT_CHECK(kt_count_op(m, "MatMul") == 1 && kt_count_op(m, "Reshape") == 1 && (!exact || dyn || kt_count_nodes(m) == 3),
             "%s: %d MatMul, %d Reshape, %d nodes; expected the projection, the attention and the merge", what,
             kt_count_op(m, "MatMul"), kt_count_op(m, "Reshape"), kt_count_nodes(m));
    const kn_node *at = kt_find_op(m, "KilnAttention");
    if (at) {
        const kn_graph *g = m->graph;
        static const char *const slice_out[3] = {"q.slice", "k.slice", "v.slice"};
        int ok = 1;
        for (int k = 0; k < 3; k++)
            ok = ok && at->in[k] >= 0 && strcmp(g->values[at->in[k]].name, dyn ? slice_out[k] : "qkv") == 0;
        KT_CHECK(ok, "%s: Q, K and V are views of %s", what, dyn ? "their Slices" : "the packed projection");
        const int64_t *p;
        KT_CHECK(kn_attr_ints(at, "kiln.out_perm", &p) == 3 && p[0] == 1 && p[1] == 0 && p[2] == 2,
                 "%s: the output Transpose is folded into kiln.out_perm", what);
        KT_CHECK(kn_attr_i(at, "kiln.nodes", 1) == (dyn ? 11 : 14),
                 "%s: kiln.nodes %lld, expected %d (3 x %sReshape/Transpose, Div, 2 MatMul, Softmax, the output "
                 "Transpose)", what, (long long)kn_attr_i(at, "kiln.nodes", 1), dyn ? 11 : 14, dyn ? "" : "Slice/");
    }
}

static void fill_inputs(const attn_cfg *c, float **x, float **w, float **mask) {
    const int64_t nx = c->S * MAX_B * c->E, nw = c->E * 3 * c->E;
    *x = malloc((size_t)nx * sizeof(float));
    *w = malloc((size_t)nw * sizeof(float));
    *mask = malloc((size_t)(c->S * c->S) * sizeof(float));
    if (!*x || !*w || !*mask) return;
    /* weights ~ 1/sqrt(E) keep the scores O(1), so the softmax is neither flat nor one-hot */
    float ws = 1.5f / sqrtf((float)c->E);
    kt_fill_uniform(*x, nx, -1, 1);
    kt_fill_uniform(*w, nw, -ws, ws);
    kt_fill_uniform(*mask, c->S * c->S, -2, 2);
}

/* 1 and 2: fused (optimize on) and plain (optimize off) against the reference at batches 1..3. */
static void test_fused(const attn_cfg *c, variant var) {
    float *x, *w, *mask;
    fill_inputs(c, &x, &w, &mask);
    double *ref = malloc((size_t)(c->S * MAX_B * c->E) * sizeof *ref);
    kiln_graph *g = x && w && mask && ref ? build_mha(c, w, NULL, var) : NULL;
    KT_CHECK(g != NULL, "S=%lld E=%lld H=%lld: graph", (long long)c->S, (long long)c->E, (long long)c->H);
    if (g) {
        kiln_input_profile p = profile_of(c, "x");
        char what[96];
        for (int opt = 1; opt >= 0; opt--) {
            snprintf(what, sizeof what, "S=%lld E=%lld H=%lld (hd %lld), %s, optimize %s", (long long)c->S,
                     (long long)c->E, (long long)c->H, (long long)(c->E / c->H), variant_name(var), opt ? "on" : "off");
            kt_opts o = {.optimize = opt, .profiles = &p, .n_profiles = 1};
            kiln_module *m = kt_compile(g, &o);
            if (opt) check_fused_structure(m, var, 1, what, c);
            else KT_CHECK(kt_count_op(m, "KilnAttention") == 0 && kt_count_op(m, "Softmax") == 1,
                          "%s: the graph as built", what);
            for (int64_t b = 1; b <= MAX_B; b++) {
                ref_mha(x, w, c, b, NULL, 0, ref);
                check_cpu_run(m, c, x, b, ref, 1e-5, what);
            }
            kiln_module_free(m);
        }
    }
    kiln_graph_free(g);
    free(x);
    free(w);
    free(mask);
    free(ref);
}

/* 3: graphs the pass must leave alone, still right (and cross attention from another input, which it fuses). */
static void test_not_fused(const attn_cfg *c) {
    float *x, *w, *mask;
    fill_inputs(c, &x, &w, &mask);
    double *ref = malloc((size_t)(c->S * MAX_B * c->E) * sizeof *ref);
    if (!x || !w || !mask || !ref) {
        KT_CHECK(0, "out of memory");
    } else {
        kiln_input_profile p[2] = {profile_of(c, "x"), profile_of(c, "mem")};
        for (variant v = V_MASK; v <= V_CROSS; v++) {
            if (v == V_NO_AXES) continue; /* test_slice_default_axes */
            char what[96];
            snprintf(what, sizeof what, "S=%lld E=%lld H=%lld, %s", (long long)c->S, (long long)c->E, (long long)c->H,
                     variant_name(v));
            kiln_graph *g = build_mha(c, w, mask, v);
            kt_opts o = {.optimize = true, .profiles = p, .n_profiles = v == V_CROSS ? 2 : 1};
            kiln_module *m = g ? kt_compile(g, &o) : NULL;
            /* K/V of another batch symbol fuse: KilnAttention checks (and broadcasts) the batch
             * at run time as the MatMuls would */
            int want = v == V_CROSS;
            KT_CHECK(m && kt_count_op(m, "KilnAttention") == want && kt_count_op(m, "Softmax") == 1 - want,
                     "%s: %s (%d KilnAttention, %d Softmax)", what, want ? "fused" : "not fused",
                     kt_count_op(m, "KilnAttention"), kt_count_op(m, "Softmax"));
            for (int64_t b = 1; b <= MAX_B; b++) {
                ref_mha(x, w, c, b, v == V_MASK ? mask : NULL, v == V_SOFTMAX_AX1, ref);
                check_cpu_run(m, c, x, b, ref, 1e-5, what);
            }
            kiln_module_free(m);
            kiln_graph_free(g);
        }
    }
    free(x);
    free(w);
    free(mask);
    free(ref);
}

/* Slices without axes cut dim 0, not the packed columns: whether or not the pass fuses, the
 * optimized module computes what the plain one does (their output is [S, 3B, E] here). */
static void test_slice_default_axes(const attn_cfg *c) {
    float *x, *w, *mask;
    fill_inputs(c, &x, &w, &mask);
    kiln_graph *g = x && w && mask ? build_mha(c, w, NULL, V_NO_AXES) : NULL;
    kiln_input_profile p = profile_of(c, "x");
    kt_opts o = {.optimize = false, .profiles = &p, .n_profiles = 1};
    kiln_module *plain = g ? kt_compile(g, &o) : NULL;
    o.optimize = true;
    kiln_module *m = g ? kt_compile(g, &o) : NULL;
    for (int64_t b = 1; plain && m && b <= MAX_B; b++) {
        int64_t dims[1][KILN_MAX_RANK] = {{c->S, b, c->E}};
        float *ins[1] = {x}, *oa[8] = {0}, *ob[8] = {0};
        int64_t na[8] = {0}, nb[8] = {0};
        kiln_tensor sa[8], sb[8];
        if (kt_run_shapes(plain, ins, (const int64_t(*)[KILN_MAX_RANK])dims, oa, na, sa) &&
            kt_run_shapes(m, ins, (const int64_t(*)[KILN_MAX_RANK])dims, ob, nb, sb)) {
            int same = sa[0].rank == 3 && sb[0].rank == 3 && sa[0].dims[1] == 3 * b;
            for (int i = 0; same && i < 3; i++) same = sa[0].dims[i] == sb[0].dims[i];
            KT_CHECK(same && na[0] == nb[0], "S=%lld, slices without axes, batch %lld: output [%lld, %lld, %lld] optimized, "
                     "[%lld, %lld, %lld] plain", (long long)c->S, (long long)b, (long long)sb[0].dims[0],
                     (long long)sb[0].dims[1], (long long)sb[0].dims[2], (long long)sa[0].dims[0],
                     (long long)sa[0].dims[1], (long long)sa[0].dims[2]);
            if (same && na[0] == nb[0]) {
                double *ref = malloc((size_t)na[0] * sizeof *ref);
                for (int64_t i = 0; ref && i < na[0]; i++) ref[i] = oa[0][i];
                double err = ref ? rel_to_max(ob[0], ref, na[0]) : INFINITY;
                KT_CHECK(err <= 1e-5, "S=%lld, slices without axes, batch %lld: optimized off the plain module by %g",
                         (long long)c->S, (long long)b, err);
                free(ref);
            }
        }
        for (int k = 0; k < 8; k++) {
            free(oa[k]);
            free(ob[k]);
        }
    }
    kiln_module_free(m);
    kiln_module_free(plain);
    kiln_graph_free(g);
    free(x);
    free(w);
    free(mask);
}

/* Also fused: Q [N, Lq, D], K [N, Lk, D], V [N, Lk, Dv] as graph inputs (no views), Lq != Lk
 * and Dv != D, K^T a Transpose (0, 2, 1) that becomes the first MatMul's kiln.trans_b, and the
 * scale a Mul on Q; the fused node reads the inputs themselves. */
static void test_plain_operands(void) {
    enum { N = 3, LQ = 4, LK = 7, D = 6, DV = 5 };
    const float c = 0.4f;
    int64_t qd[3] = {N, LQ, D}, kd[3] = {N, LK, D}, vd[3] = {N, LK, DV};
    float q[N * LQ * D], k[N * LK * D], v[N * LK * DV];
    kt_fill_uniform(q, N * LQ * D, -1, 1);
    kt_fill_uniform(k, N * LK * D, -1, 1);
    kt_fill_uniform(v, N * LK * DV, -1, 1);
    double ref[N * LQ * DV];
    for (int n = 0; n < N; n++)
        for (int i = 0; i < LQ; i++) {
            double s[LK], m = -INFINITY, sum = 0;
            for (int t = 0; t < LK; t++) {
                s[t] = 0;
                for (int d = 0; d < D; d++) s[t] += (double)q[(n * LQ + i) * D + d] * c * k[(n * LK + t) * D + d];
                m = fmax(m, s[t]);
            }
            for (int t = 0; t < LK; t++) sum += (s[t] = exp(s[t] - m));
            for (int j = 0; j < DV; j++) {
                double a = 0;
                for (int t = 0; t < LK; t++) a += s[t] / sum * v[(n * LK + t) * DV + j];
                ref[(n * LQ + i) * DV + j] = a;
            }
        }
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    if (!g) return;
    kt_input(g, "q", 3, qd);
    kt_input(g, "k", 3, kd);
    kt_input(g, "v", 3, vd);
    kt_scalar(g, "c", c);
    kt_node(g, "Mul", "q.scale", "q", "c", "qs");
    int64_t perm[3] = {0, 2, 1};
    kiln_attr pa = kiln_attr_ints("perm", 3, perm);
    const char *tin[1] = {"k"};
    kt_node_attrs(g, "Transpose", "k.t", 1, tin, "kt", 1, &pa);
    kt_node(g, "MatMul", "scores", "qs", "kt", "s");
    kiln_attr ax = kiln_attr_int("axis", 2);
    const char *smi[1] = {"s"};
    kt_node_attrs(g, "Softmax", "softmax", 1, smi, "p", 1, &ax);
    kt_node(g, "MatMul", "context", "p", "v", "y");
    KT_OK(kiln_graph_add_output(g, "y"));
    kt_opts o = {.optimize = true};
    kiln_module *m = kt_compile(g, &o);
    const kn_node *at = kt_find_op(m, "KilnAttention");
    KT_CHECK(at && kt_count_nodes(m) == 1, "plain operands: one KilnAttention (%d nodes)", kt_count_nodes(m));
    if (at) {
        KT_CHECK(fabsf(kn_attr_f(at, "kiln.alpha", 1.0f) - c) <= 1e-7f, "plain operands: kiln.alpha %g, expected %g",
                 kn_attr_f(at, "kiln.alpha", 1.0f), c);
        const int64_t *kv;
        KT_CHECK(kn_attr_ints(at, "kiln.k_view", &kv) == KN_ATTN_VIEW_INTS && kv[3] == 0 && kv[4] == 1 && kv[5] == 2 && kv[2] == 0,
                 "plain operands: K is read as stored (the trans_b undone into its view)");
        KT_CHECK(kn_attr_i(at, "kiln.nodes", 1) == 5, "plain operands: kiln.nodes %lld, expected 5",
                 (long long)kn_attr_i(at, "kiln.nodes", 1));
    }
    float *ins[3] = {q, k, v}, *out[8] = {0};
    int64_t on[8] = {0};
    kiln_tensor sh[8];
    if (m && kt_run_shapes(m, ins, NULL, out, on, sh)) {
        int ok = on[0] == N * LQ * DV && sh[0].rank == 3 && sh[0].dims[0] == N && sh[0].dims[1] == LQ && sh[0].dims[2] == DV;
        KT_CHECK(ok, "plain operands: output shape");
        if (ok) {
            double err = rel_to_max(out[0], ref, on[0]);
            KT_CHECK(err <= 1e-5, "plain operands: off the float64 reference by %g of max |ref|", err);
        }
    }
    for (int i = 0; i < 8; i++) free(out[i]);
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* 4: the fused module saved and loaded runs the same, bit for bit. */
static void test_save_load(const attn_cfg *c) {
    float *x, *w, *mask;
    fill_inputs(c, &x, &w, &mask);
    kiln_graph *g = x && w && mask ? build_mha(c, w, NULL, V_PLAIN) : NULL;
    kiln_input_profile p = profile_of(c, "x");
    kt_opts o = {.optimize = true, .profiles = &p, .n_profiles = 1};
    kiln_module *m = g ? kt_compile(g, &o) : NULL, *l = NULL;
    char path[] = "/tmp/kiln_test_attention_XXXXXX";
    int fd = mkstemp(path);
    KT_CHECK(fd >= 0, "mkstemp");
    if (m && fd >= 0) {
        close(fd);
        KT_OK(kiln_module_save(m, path));
        KT_OK(kiln_module_load(path, &l));
        unlink(path);
        KT_CHECK(l && kt_count_op(l, "KilnAttention") == 1 && kt_count_op(l, "Softmax") == 0,
                 "the loaded module keeps the fused node (%d KilnAttention)", kt_count_op(l, "KilnAttention"));
        for (int64_t b = 1; l && b <= MAX_B; b++) {
            int64_t dims[1][KILN_MAX_RANK] = {{c->S, b, c->E}};
            float *ins[1] = {x}, *oa[8] = {0}, *ob[8] = {0};
            int64_t na[8] = {0}, nb[8] = {0};
            if (kt_run(m, ins, (const int64_t(*)[KILN_MAX_RANK])dims, oa, na) &&
                kt_run(l, ins, (const int64_t(*)[KILN_MAX_RANK])dims, ob, nb))
                KT_CHECK(na[0] == c->S * b * c->E && na[0] == nb[0] && !memcmp(oa[0], ob[0], (size_t)na[0] * sizeof(float)),
                         "batch %lld: the loaded module's output is bitwise the in-memory one's", (long long)b);
            for (int k = 0; k < 8; k++) {
                free(oa[k]);
                free(ob[k]);
            }
        }
    } else if (fd >= 0) {
        close(fd);
        unlink(path);
    }
    kiln_module_free(l);
    kiln_module_free(m);
    kiln_graph_free(g);
    free(x);
    free(w);
    free(mask);
}

/* 5: the internal op is not a model op. */
static void test_internal_refused(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    if (!g) return;
    int64_t d[3] = {2, 5, 4};
    kt_input(g, "q", 3, d);
    kt_input(g, "k", 3, d);
    kt_input(g, "v", 3, d);
    const char *in[3] = {"q", "k", "v"}, *out[1] = {"y"};
    KT_FAILS(kiln_graph_add_node(g, "KilnAttention", "attn", 3, in, 1, out, 0, NULL), KILN_ERR_UNSUPPORTED, "attn");
    kiln_graph_free(g);
}

/* 6: on a CUDA device, the same graph built for CUDA. Runs m at batch b in graphs mode gm into a
 * malloc'd host buffer *y (the caller frees) of *n elements. */
static int run_cuda(const kiln_module *m, const float *x, const attn_cfg *c, int64_t b, kiln_cudagraphs_mode gm,
                    float **y, int64_t *n) {
    *n = c->S * b * c->E;
    *y = malloc((size_t)*n * sizeof(float));
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    if (!s || !*y) {
        kiln_session_free(s);
        return 0;
    }
    KT_OK(kiln_session_set_cudagraphs_mode(s, gm));
    kiln_tensor in = {.data = (void *)x, .dtype = KILN_F32, .rank = 3, .dims = {c->S, b, c->E}, .device = KILN_DEVICE_CPU};
    kiln_status st = KILN_OK;
    for (int r = 0; r < 2 && st == KILN_OK; r++) { /* twice: a captured graph replays the second time */
        memset(*y, 0xff, (size_t)*n * sizeof(float));
        kiln_tensor out = {.data = *y, .device = KILN_DEVICE_CPU};
        st = kiln_session_run(s, &in, 1, &out, 1);
        if (st == KILN_OK) st = kiln_session_synchronize(s);
        if (st == KILN_OK && (out.dtype != KILN_F32 || kn_numel(out.rank, out.dims) != *n)) {
            KT_CHECK(0, "the output is %s with %lld elements, expected f32 with %lld", kiln_dtype_name(out.dtype),
                     (long long)kn_numel(out.rank, out.dims), (long long)*n);
            st = KILN_ERR_SHAPE;
        }
    }
    KT_CHECK(st == KILN_OK, "CUDA run at batch %lld: %s", (long long)b, kiln_last_error());
    kiln_session_free(s);
    return st == KILN_OK;
}

static void test_cuda(const attn_cfg *c, variant var) {
    float *x, *w, *mask;
    fill_inputs(c, &x, &w, &mask);
    double *ref = malloc((size_t)(c->S * MAX_B * c->E) * sizeof *ref);
    kiln_graph *g = x && w && mask && ref ? build_mha(c, w, NULL, var) : NULL;
    kiln_input_profile p = profile_of(c, "x");
    for (int fp16 = 0; g && fp16 < 2; fp16++) {
        char what[96];
        snprintf(what, sizeof what, "CUDA %s S=%lld E=%lld H=%lld (hd %lld), %s", fp16 ? "fp16" : "fp32", (long long)c->S,
                 (long long)c->E, (long long)c->H, (long long)(c->E / c->H), variant_name(var));
        kt_opts o = {.optimize = true, .profiles = &p, .n_profiles = 1,
                     .precision = fp16 ? KILN_PRECISION_FP16 : KILN_PRECISION_FP32};
        kiln_build_config cfg;
        kt_config(&cfg, &o);
        cfg.device = KILN_DEVICE_CUDA;
        kiln_module *m = NULL;
        kiln_status st = kiln_compile(g, &cfg, &m);
        KT_CHECK(st == KILN_OK, "%s: build: %s", what, kiln_last_error());
        /* CUDA fuses in fp32 only (fuses_attention): fp16 keeps cuBLAS's tensor-core products */
        if (m && !fp16) check_fused_structure(m, var, 1, what, c);
        if (m && fp16)
            KT_CHECK(kt_count_op(m, "KilnAttention") == 0 && kt_count_op(m, "Softmax") == 1,
                     "%s: not fused in fp16 (%d KilnAttention, %d Softmax)", what, kt_count_op(m, "KilnAttention"),
                     kt_count_op(m, "Softmax"));
        const double tol = fp16 ? 1e-2 : 1e-4;
        for (int64_t b = 1; m && b <= MAX_B; b++) {
            ref_mha(x, w, c, b, NULL, 0, ref);
            for (int mode = 0; mode < 2; mode++) {
                float *y = NULL;
                int64_t n = 0;
                if (run_cuda(m, x, c, b, mode ? KILN_CUDAGRAPHS_WHOLE : KILN_CUDAGRAPHS_OFF, &y, &n)) {
                    double err = rel_to_max(y, ref, n);
                    KT_CHECK(err <= tol, "%s, batch %lld, graphs %s: off the float64 reference by %g of max |ref| (tol %g)",
                             what, (long long)b, mode ? "whole" : "off", err, tol);
                }
                free(y);
            }
        }
        kiln_module_free(m);
    }
    kiln_graph_free(g);
    free(x);
    free(w);
    free(mask);
    free(ref);
}

/* The operand views' batch: an operand with N = 1 broadcasts (stride 0), other mismatches are a
 * shape error that names the node; plain [N, L, D] operands get packed strides. */
static void test_geometry_broadcast(void) {
    kn_node n = {.name = "att", .op = KN_OP_KilnAttention};
    kn_tensor q = {.dtype = KILN_F32, .rank = 3, .dims = {4, 5, 8}}, k = q, v = q;
    k.dims[0] = 1;
    k.dims[1] = v.dims[1] = 7;
    v.dims[2] = 6;
    kn_attn_geom g;
    KT_OK(kn_attn_geometry(&n, &q, &k, &v, &g));
    KT_CHECK(g.n == 4 && g.lq == 5 && g.lk == 7 && g.dk == 8 && g.dv == 6, "geometry: N 4, Lq 5, Lk 7, Dk 8, Dv 6");
    KT_CHECK(g.k.s_outer == 0 && g.k.s_inner == 0 && g.q.s_outer == 40 && g.q.s_l == 8 && g.q.s_d == 1 && g.v.s_outer == 42,
             "geometry: K (batch 1) broadcasts with stride 0, Q and V packed (%lld, %lld, %lld)", (long long)g.k.s_outer,
             (long long)g.q.s_outer, (long long)g.v.s_outer);
    KT_CHECK(g.y_dims[0] == 4 && g.y_dims[1] == 5 && g.y_dims[2] == 6 && g.y.s_outer == 30 && g.y.s_l == 6, "geometry: Y [4, 5, 6] packed");
    k.dims[0] = 3;
    kiln_status st = kn_attn_geometry(&n, &q, &k, &v, &g);
    KT_CHECK(st == KILN_ERR_SHAPE && strstr(kiln_last_error(), "att") != NULL,
             "geometry: batch 4 against 3 is a shape error naming the node (%s: %s)", kiln_status_name(st), kiln_last_error());
}

int main(void) {
    kt_seed(20240611);
    test_geometry_broadcast();
    /* hd 4 with S 5 and 37 (two key tiles of 32 on CUDA, the second partial); hd 32 and 64 */
    static const attn_cfg cfgs[] = {{5, 16, 4}, {37, 16, 4}, {37, 64, 2}, {9, 128, 2}};
    const int nc = (int)(sizeof cfgs / sizeof cfgs[0]);
    for (int i = 0; i < nc; i++) test_fused(&cfgs[i], V_PLAIN);
    test_fused(&cfgs[0], V_DYN_SLICE);
    test_fused(&cfgs[2], V_DYN_SLICE);
    test_fused(&cfgs[0], V_TORCH2);
    test_fused(&cfgs[1], V_TORCH2);
    test_not_fused(&cfgs[0]);
    test_not_fused(&cfgs[1]);
    test_plain_operands();
    static const attn_cfg s8 = {8, 16, 4}; /* S a multiple of hd: columns [0, S) would split into heads */
    test_slice_default_axes(&cfgs[0]);
    test_slice_default_axes(&s8);
    test_save_load(&cfgs[1]);
    test_internal_refused();
    if (kiln_cuda_available()) {
        for (int i = 0; i < nc; i++) test_cuda(&cfgs[i], V_PLAIN);
        /* CUDA's kernels by head size: up to 32 and up to 64 the tiled kernel, whose query rows per
         * block (16, 32, 64) grow with the batch: S 352 with 16 heads takes 16, 32 and 64 at
         * batches 1, 2 and 3, the last query tile and key chunk partial; hd 48 pads to 64; hd 128
         * goes to the row-per-warp kernel */
        static const attn_cfg big[] = {{352, 512, 16}, {352, 768, 16}, {9, 256, 2}};
        for (int i = 0; i < (int)(sizeof big / sizeof big[0]); i++) test_cuda(&big[i], V_PLAIN);
        test_cuda(&cfgs[2], V_DYN_SLICE);
        test_cuda(&cfgs[1], V_TORCH2);
    } else {
        printf("SKIP: no CUDA device (the CUDA attention checks)\n");
    }
    return kt_finish();
}
