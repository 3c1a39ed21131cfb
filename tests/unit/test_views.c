/* Views (docs/DESIGN.md, "Views"): Reshape, Flatten, Squeeze, Unsqueeze and Identity take their
 * input's memory and do no work. One graph holds the cases (a view between two computing steps,
 * a chain Squeeze -> Unsqueeze -> Reshape, a view read by two steps, a view as graph output, a
 * view of a graph input, a view of a graph input that is a graph output (declined: a copy), a
 * view of a constant); its outputs are checked against float64 math written here at several
 * shapes of a dynamic profile, eager and through the recorder, compiled with and without the
 * passes, and after an engine file round trip. The aliasing itself is checked on the memory plan
 * (shared offsets), the module report and the profile; the loader refuses a non-view step whose
 * output shares its input's memory. */
#include "testlib.h"

#include "build/module.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define C 4
#define K 6
#define MAXB 5
#define NOUT 8

static float W[C * K];

/* X [B,4,1,6] (B dynamic), W [24] a constant.
 *   a  = Relu(X)                 r  = Reshape(a, [0,24])     o1 = Sigmoid(r)
 *   q  = Squeeze(a, [2])         u  = Unsqueeze(q, [0])      c  = Reshape(u, [-1,6])   o2 = Tanh(c)
 *   v  = Flatten(a, 1)           p  = Add(v, W)              o3 = Mul(p, v)            o5 = Reshape(p, [0,4,6])
 *   vi = Reshape(X, [0,24])      o6 = Sub(vi, r)             o7 = Flatten(X, 1)
 *   vc = Reshape(W, [4,6])       id = Identity(q)            o8 = Mul(id, vc) */
static kiln_graph *make_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t xd[4] = {-1, C, 1, K};
    const char *xn[4] = {"batch", NULL, NULL, NULL};
    KT_OK(kiln_graph_add_input(g, "X", KILN_F32, 4, xd, xn));
    int64_t wd[1] = {C * K}, d1[1] = {1}, d2[1] = {2}, d3[1] = {3};
    KT_OK(kiln_graph_add_initializer(g, "W", KILN_F32, 1, wd, W));
    const int64_t s_b24[2] = {0, C * K}, s_m6[2] = {-1, K}, s_b46[3] = {0, C, K}, s_46[2] = {C, K}, ax2[1] = {2}, ax0[1] = {0};
    KT_OK(kiln_graph_add_initializer(g, "s_b24", KILN_I64, 1, d2, s_b24));
    KT_OK(kiln_graph_add_initializer(g, "s_m6", KILN_I64, 1, d2, s_m6));
    KT_OK(kiln_graph_add_initializer(g, "s_b46", KILN_I64, 1, d3, s_b46));
    KT_OK(kiln_graph_add_initializer(g, "s_46", KILN_I64, 1, d2, s_46));
    KT_OK(kiln_graph_add_initializer(g, "ax2", KILN_I64, 1, d1, ax2));
    KT_OK(kiln_graph_add_initializer(g, "ax0", KILN_I64, 1, d1, ax0));
    kiln_attr flat1 = kiln_attr_int("axis", 1);
#define NODE1(op, name, x, y, na, at)                                                          \
    do {                                                                                       \
        const char *i_[] = {x}, *o_[] = {y};                                                   \
        KT_OK(kiln_graph_add_node(g, op, name, 1, i_, 1, o_, na, at));                         \
    } while (0)
#define NODE2(op, name, x0, x1, y)                                                             \
    do {                                                                                       \
        const char *i_[] = {x0, x1}, *o_[] = {y};                                              \
        KT_OK(kiln_graph_add_node(g, op, name, 2, i_, 1, o_, 0, NULL));                        \
    } while (0)
    NODE1("Relu", "relu", "X", "a", 0, NULL);
    NODE2("Reshape", "reshape_r", "a", "s_b24", "r");
    NODE1("Sigmoid", "sigmoid", "r", "o1", 0, NULL);
    NODE2("Squeeze", "squeeze", "a", "ax2", "q");
    NODE2("Unsqueeze", "unsqueeze", "q", "ax0", "u");
    NODE2("Reshape", "reshape_c", "u", "s_m6", "c");
    NODE1("Tanh", "tanh", "c", "o2", 0, NULL);
    NODE1("Flatten", "flatten_v", "a", "v", 1, &flat1);
    NODE2("Add", "add_p", "v", "W", "p");
    NODE2("Mul", "mul_o3", "p", "v", "o3");
    NODE2("Reshape", "reshape_o5", "p", "s_b46", "o5");
    NODE2("Reshape", "reshape_vi", "X", "s_b24", "vi");
    NODE2("Sub", "sub_o6", "vi", "r", "o6");
    NODE1("Flatten", "flatten_o7", "X", "o7", 1, &flat1);
    NODE2("Reshape", "reshape_vc", "W", "s_46", "vc");
    NODE1("Identity", "identity", "q", "id", 0, NULL);
    NODE2("Mul", "mul_o8", "id", "vc", "o8");
#undef NODE1
#undef NODE2
    static const char *const outs[NOUT] = {"o1", "o2", "o3", "o5", "o6", "o7", "o8", "a"};
    for (int k = 0; k < NOUT; k++) KT_OK(kiln_graph_add_output(g, outs[k]));
    return g;
}

/* The outputs in float64: out[k] holds B * 24 values for every output (all have 24 per batch row). */
static void reference(const float *x, int b, double out[NOUT][MAXB * C * K]) {
    for (int i = 0; i < b * C * K; i++) {
        double xv = x[i], a = xv > 0 ? xv : 0, w = W[i % (C * K)];
        double p = a + w;
        out[0][i] = 1.0 / (1.0 + exp(-a));
        out[1][i] = tanh(a);
        out[2][i] = p * a;
        out[3][i] = p;
        out[4][i] = xv - a;
        out[5][i] = xv;
        out[6][i] = a * w;
        out[7][i] = a;
    }
}

static int value_index(const kiln_module *m, const char *name) {
    for (int v = 0; v < m->graph->n_values; v++)
        if (m->graph->values[v].name && !strcmp(m->graph->values[v].name, name)) return v;
    return -1;
}

static int64_t off_of(const kiln_module *m, const char *name) {
    int v = value_index(m, name);
    return v >= 0 ? m->offset[v] : -2;
}

static kiln_module *compile(kiln_graph *g, int optimize) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.optimize = optimize;
    cfg.min_block_size = 1;
    kiln_input_profile pr = {.name = "X", .rank = 4, .min = {1, C, 1, K}, .opt = {3, C, 1, K}, .max = {MAXB, C, 1, K}};
    cfg.profiles = &pr;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    return m;
}

/* The plan: which values share their root's offset, and which keep their own. */
static void check_plan(const kiln_module *m, int optimize, const char *what) {
    int64_t a = off_of(m, "a"), p = off_of(m, "p"), x = off_of(m, "X");
    KT_CHECK(a >= 0 && p >= 0 && x >= 0, "%s: a, p, X are in the arena (%lld %lld %lld)", what, (long long)a, (long long)p,
             (long long)x);
    static const char *const of_a[] = {"r", "q", "u", "c", "v"};
    for (int i = 0; i < 5; i++)
        KT_CHECK(off_of(m, of_a[i]) == a, "%s: view '%s' at %lld, its root 'a' at %lld", what, of_a[i],
                 (long long)off_of(m, of_a[i]), (long long)a);
    KT_CHECK(off_of(m, "o5") == p, "%s: the output view 'o5' aliases 'p'", what);
    KT_CHECK(off_of(m, "vi") == x, "%s: the view 'vi' aliases the graph input", what);
    KT_CHECK(off_of(m, "o7") >= 0 && off_of(m, "o7") != x, "%s: the graph output 'o7' of the graph input is a copy", what);
    if (!optimize) {
        KT_CHECK(off_of(m, "id") == a, "%s: the Identity aliases 'a'", what);
        KT_CHECK(off_of(m, "vc") >= 0, "%s: the view of a constant is a copy in the arena", what);
    }
    /* no other value overlaps a root while any alias of it lives: the outputs are distinct */
    static const char *const outs[] = {"o1", "o2", "o3", "o6", "o7", "o8"};
    for (int i = 0; i < 6; i++)
        KT_CHECK(off_of(m, outs[i]) != a && off_of(m, outs[i]) != p, "%s: output '%s' does not reuse a live root", what,
                 outs[i]);
    int views = 0;
    for (int s = 0; s < m->part.n_steps; s++) views += m->part.steps[s].view;
    int want = optimize ? 7 : 8; /* r q u c v o5 vi (+ id without the passes, which drop Identity) */
    KT_CHECK(views == want, "%s: %d view steps, expected %d", what, views, want);
    char *text = NULL;
    KT_OK(kiln_module_report(m, false, &text));
    char line[64];
    snprintf(line, sizeof line, "%d views", want);
    KT_CHECK(text && strstr(text, line) && strstr(text, "view (aliases 'a': no work)"), "%s: the report names the views:\n%s",
             what, text ? text : "");
    kiln_free(text);
    KT_OK(kiln_module_report(m, true, &text));
    KT_CHECK(text && strstr(text, "\"view\": true") && strstr(text, "\"view\": false"), "%s: JSON report marks views", what);
    kiln_free(text);
}

/* Runs the session at batch b and compares every output with the float64 reference. */
static void run_check(kiln_session *s, int b, const char *what) {
    float x[MAXB * C * K];
    kt_fill_uniform(x, b * C * K, -2, 2);
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {b, C, 1, K}, .device = KILN_DEVICE_CPU};
    kiln_tensor out[NOUT];
    memset(out, 0, sizeof out);
    kiln_status st = kiln_session_run(s, &in, 1, out, NOUT);
    KT_CHECK(st == KILN_OK, "%s, batch %d: %s", what, b, kiln_last_error());
    if (st != KILN_OK) return;
    static double ref[NOUT][MAXB * C * K];
    reference(x, b, ref);
    for (int k = 0; k < NOUT; k++) {
        int64_t n = 1;
        for (int d = 0; d < out[k].rank; d++) n *= out[k].dims[d];
        KT_CHECK(n == b * C * K && out[k].dtype == KILN_F32 && out[k].data, "%s, batch %d: output %d has %lld values", what, b,
                 k, (long long)n);
        if (n != b * C * K || !out[k].data) continue;
        double r = kt_max_tol_ratio(out[k].data, ref[k], n, 1e-5, 1e-6);
        KT_CHECK(r <= 1, "%s, batch %d: output %d off by %.3g tolerances", what, b, k, r);
    }
}

static void run_all(const kiln_module *m, const char *what) {
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    if (!s) return;
    static const int batches[] = {3, 1, 5, 2, 5};
    char w[128];
    for (int i = 0; i < 5; i++) {
        snprintf(w, sizeof w, "%s eager", what);
        run_check(s, batches[i], w);
    }
    KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE));
    for (int i = 0; i < 5; i++) {
        snprintf(w, sizeof w, "%s recorded", what);
        run_check(s, batches[i], w);
    }
    kiln_counters c;
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.replays > 0, "%s: runs were replayed (%lld)", what, (long long)c.replays);
    /* the profile says which steps are views and times them at 0 */
    float x[3 * C * K];
    kt_fill_uniform(x, 3 * C * K, -1, 1);
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {3, C, 1, K}, .device = KILN_DEVICE_CPU};
    char *prof = NULL;
    KT_OK(kiln_session_profile(s, &in, 1, false, &prof));
    KT_CHECK(prof && strstr(prof, "aliases its input: no launch"), "%s: the profile shows views:\n%s", what, prof ? prof : "");
    kiln_free(prof);
    kiln_session_free(s);
}

/* A non-view step whose output shares its input's offset is refused by the loader. */
static void check_loader_refuses_bad_alias(kiln_module *m, const char *dir) {
    int r = value_index(m, "r"), o1 = value_index(m, "o1");
    if (r < 0 || o1 < 0) return;
    char path[512];
    snprintf(path, sizeof path, "%s/bad_alias.kiln", dir);
    int64_t keep = m->offset[o1];
    m->offset[o1] = m->offset[r]; /* Sigmoid writing over its own input */
    KT_OK(kiln_module_save(m, path));
    m->offset[o1] = keep;
    kiln_module *bad = NULL;
    KT_FAILS(kiln_module_load(path, &bad), KILN_ERR_CORRUPT, "may alias its input");
    KT_CHECK(bad == NULL, "no module from a corrupt plan");
    kiln_module_free(bad);
    unlink(path);
}

/* A Transpose that moves only dims of size 1 is a view: X [B, 3, 4], t = Transpose(Relu(X),
 * [1, 0, 2]) and u = Transpose(Relu(X), [0, 2, 1]), o = Sigmoid(t), w = Tanh(u). Built for
 * batch 1 only, t aliases Relu's output (B moves, and B is 1) and u does not (3 and 4 swap);
 * built for batches 1..4, neither does. Outputs against float64 math at every batch of the
 * profile, eager and recorded, and after an engine file round trip. */
static void test_unit_transpose(const char *dir) {
    enum { S = 3, E = 4 };
    for (int maxb = 1; maxb <= 4; maxb += 3) {
        kiln_graph *g = NULL;
        KT_OK(kiln_graph_create(&g));
        int64_t xd[3] = {-1, S, E};
        const char *xn[3] = {"batch", NULL, NULL};
        KT_OK(kiln_graph_add_input(g, "X", KILN_F32, 3, xd, xn));
        static const int64_t p102[3] = {1, 0, 2}, p021[3] = {0, 2, 1};
        kiln_attr at = kiln_attr_ints("perm", 3, p102), au = kiln_attr_ints("perm", 3, p021);
        const char *ix[] = {"X"}, *oa[] = {"a"}, *ia[] = {"a"}, *ot[] = {"t"}, *ou[] = {"u"}, *it[] = {"t"}, *iu[] = {"u"},
                   *oo[] = {"o"}, *ow[] = {"w"};
        KT_OK(kiln_graph_add_node(g, "Relu", "relu", 1, ix, 1, oa, 0, NULL));
        KT_OK(kiln_graph_add_node(g, "Transpose", "swap_b", 1, ia, 1, ot, 1, &at));
        KT_OK(kiln_graph_add_node(g, "Transpose", "swap_se", 1, ia, 1, ou, 1, &au));
        KT_OK(kiln_graph_add_node(g, "Sigmoid", "sigmoid", 1, it, 1, oo, 0, NULL));
        KT_OK(kiln_graph_add_node(g, "Tanh", "tanh", 1, iu, 1, ow, 0, NULL));
        KT_OK(kiln_graph_add_output(g, "o"));
        KT_OK(kiln_graph_add_output(g, "w"));
        kiln_build_config cfg;
        kiln_build_config_init(&cfg);
        cfg.device = KILN_DEVICE_CPU;
        cfg.min_block_size = 1;
        kiln_input_profile pr = {.name = "X", .rank = 3, .min = {1, S, E}, .opt = {1, S, E}, .max = {maxb, S, E}};
        cfg.profiles = &pr;
        cfg.num_profiles = 1;
        kiln_module *m = NULL;
        KT_OK(kiln_compile(g, &cfg, &m));
        kiln_graph_free(g);
        char path[512];
        snprintf(path, sizeof path, "%s/unit_transpose.kiln", dir);
        kiln_module *l = NULL;
        if (m) {
            KT_OK(kiln_module_save(m, path));
            KT_OK(kiln_module_load(path, &l));
            unlink(path);
        }
        for (int which = 0; which < 2; which++) {
            const kiln_module *mm = which ? l : m;
            if (!mm) continue;
            const char *what = which ? "loaded" : "built";
            int64_t a = off_of(mm, "a");
            KT_CHECK((off_of(mm, "t") == a) == (maxb == 1) && off_of(mm, "u") != a,
                     "%s for batches 1..%d: Transpose [1,0,2] %s its input, [0,2,1] does not (offsets a %lld t %lld u %lld)",
                     what, maxb, maxb == 1 ? "aliases" : "does not alias", (long long)a, (long long)off_of(mm, "t"),
                     (long long)off_of(mm, "u"));
            kiln_session *s = NULL;
            KT_OK(kiln_session_create(mm, &s));
            for (int rec = 0; s && rec < 2; rec++) {
                KT_OK(kiln_session_set_cudagraphs_mode(s, rec ? KILN_CUDAGRAPHS_WHOLE : KILN_CUDAGRAPHS_OFF));
                for (int b = 1; b <= maxb; b++) {
                    float x[4 * S * E];
                    kt_fill_uniform(x, b * S * E, -2, 2);
                    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 3, .dims = {b, S, E}, .device = KILN_DEVICE_CPU};
                    kiln_tensor out[2];
                    memset(out, 0, sizeof out);
                    kiln_status st = kiln_session_run(s, &in, 1, out, 2);
                    KT_CHECK(st == KILN_OK, "%s batch %d: %s", what, b, kiln_last_error());
                    if (st != KILN_OK) continue;
                    double ro[4 * S * E], rw[4 * S * E];
                    for (int bi = 0; bi < b; bi++)
                        for (int i = 0; i < S; i++)
                            for (int j = 0; j < E; j++) {
                                double xv = x[(bi * S + i) * E + j], av = xv > 0 ? xv : 0;
                                ro[(i * b + bi) * E + j] = 1.0 / (1.0 + exp(-av)); /* t = [S, B, E] */
                                rw[(bi * E + j) * S + i] = tanh(av);               /* u = [B, E, S] */
                            }
                    KT_CHECK(out[0].rank == 3 && out[0].dims[0] == S && out[0].dims[1] == b && out[1].dims[1] == E,
                             "%s batch %d: output shapes", what, b);
                    KT_CHECK(kt_max_tol_ratio(out[0].data, ro, b * S * E, 1e-5, 1e-6) <= 1 &&
                                 kt_max_tol_ratio(out[1].data, rw, b * S * E, 1e-5, 1e-6) <= 1,
                             "%s batch %d (%s): outputs match float64 math", what, b, rec ? "recorded" : "eager");
                }
            }
            kiln_session_free(s);
        }
        kiln_module_free(l);
        kiln_module_free(m);
    }
}

int main(void) {
    kt_seed(11);
    kt_fill_uniform(W, C * K, -1, 1);
    char dir[] = "/tmp/kiln_views_XXXXXX";
    KT_CHECK(mkdtemp(dir) != NULL, "a temporary directory");
    for (int optimize = 1; optimize >= 0; optimize--) {
        const char *what = optimize ? "optimized" : "unoptimized";
        kiln_graph *g = make_graph();
        kiln_module *m = compile(g, optimize);
        kiln_graph_free(g);
        if (!m) continue;
        check_plan(m, optimize, what);
        run_all(m, what);
        /* an engine file keeps the plan, views included, and runs the same */
        char path[512];
        snprintf(path, sizeof path, "%s/views_%d.kiln", dir, optimize);
        KT_OK(kiln_module_save(m, path));
        kiln_module *l = NULL;
        KT_OK(kiln_module_load(path, &l));
        if (l) {
            char w[64];
            snprintf(w, sizeof w, "%s, loaded", what);
            check_plan(l, optimize, w);
            run_all(l, w);
        }
        kiln_module_free(l);
        unlink(path);
        if (optimize) check_loader_refuses_bad_alias(m, dir);
        kiln_module_free(m);
    }
    test_unit_transpose(dir);
    rmdir(dir);
    return kt_finish();
}
