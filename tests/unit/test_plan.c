/* Engine files: save -> load -> run gives bitwise the outputs of the original module; the loaded
 * module is the same plan (graph, partition, kernels, tactics, memory plan, profiles); every way a
 * file can be wrong is refused with its own message (wrong magic, newer format, truncation,
 * checksum, another device or libraries, a changed kernel set); a failed save leaves no file; and
 * random damage with the checksum bypassed never crashes the loader. Ends with load vs build time
 * of a larger model. */
#include "testlib.h"

#include "backend/cpu/cpu.h"
#include "plan/plan.h"
#include "resnet.h"
#include "runtime/runtime.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) { free(p); p = NULL; }
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* Re-computes the trailer's CRC after an edit, as a deliberate forger would. */
static void fix_crc(uint8_t *f, size_t n) {
    kn_put_u32(f + n - KN_PLAN_TRAILER_BYTES, kn_crc32(0, f, n - KN_PLAN_TRAILER_BYTES));
}

/* needle is a string literal (it may hold NULs): its length is sizeof - 1 */
#define find_bytes(hay, n, lit) find_bytes_n((hay), (n), (lit), sizeof(lit) - 1)
static size_t find_bytes_n(const uint8_t *hay, size_t n, const char *needle, size_t k) {
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(hay + i, needle, k)) return i;
    return (size_t)-1;
}

/* ---- the model ------------------------------------------------------------------------------------ */

#define C 16

/* x[batch, 16] -> add0 (+b) -> relu0 (forced fallback) -> add1 (+w) -> relu1 -> add2 (+x) = y;
 * also outputs a1, and k = ki + kj computed on the host (integer shape-style arithmetic).
 * relu1 carries attributes of every type (ignored by Relu) to test their round trip; `unused`
 * is an initializer no node reads. */
static kiln_graph *make_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t dims[2] = {-1, C};
    const char *names[2] = {"batch", NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 2, dims, names));
    float b[C], w[C], unused[3 * C];
    kt_fill_uniform(b, C, -1, 1);
    kt_fill_uniform(w, C, -1, 1);
    kt_fill_uniform(unused, 3 * C, -1, 1);
    int64_t cd[1] = {C}, ud[2] = {3, C}, kd[1] = {3};
    KT_OK(kiln_graph_add_initializer(g, "b", KILN_F32, 1, cd, b));
    KT_OK(kiln_graph_add_initializer(g, "w", KILN_F32, 1, cd, w));
    KT_OK(kiln_graph_add_initializer(g, "unused", KILN_F32, 2, ud, unused));
    int64_t ki[3] = {1, 2, 3}, kj[3] = {40, 50, 60};
    KT_OK(kiln_graph_add_initializer(g, "ki", KILN_I64, 1, kd, ki));
    KT_OK(kiln_graph_add_initializer(g, "kj", KILN_I64, 1, kd, kj));

    const char *i0[] = {"x", "b"}, *o0[] = {"a0"};
    KT_OK(kiln_graph_add_node(g, "Add", "add0", 2, i0, 1, o0, 0, NULL));
    const char *i1[] = {"a0"}, *o1[] = {"r0"};
    KT_OK(kiln_graph_add_node(g, "Relu", "relu0", 1, i1, 1, o1, 0, NULL));
    const char *i2[] = {"r0", "w"}, *o2[] = {"a1"};
    KT_OK(kiln_graph_add_node(g, "Add", "add1", 2, i2, 1, o2, 0, NULL));
    int64_t ints[4] = {7, -1, 1LL << 40, 0};
    float floats[2] = {0.5f, -3.25f};
    float tdata[6] = {1, 2, 3, 4, 5, 6};
    kiln_tensor tt = {.data = tdata, .dtype = KILN_F32, .rank = 2, .dims = {2, 3}, .device = KILN_DEVICE_CPU};
    kiln_attr attrs[6] = {kiln_attr_int("an_int", -42), kiln_attr_float("a_float", 1.5f),
                          kiln_attr_string("a_string", "hello engine"), kiln_attr_ints("some_ints", 4, ints),
                          kiln_attr_floats("some_floats", 2, floats), {.name = "a_tensor", .type = KILN_ATTR_TENSOR, .tensor = &tt}};
    const char *i3[] = {"a1"}, *o3[] = {"r1"};
    KT_OK(kiln_graph_add_node(g, "Relu", "relu1", 1, i3, 1, o3, 6, attrs));
    const char *i4[] = {"r1", "x"}, *o4[] = {"y"};
    KT_OK(kiln_graph_add_node(g, "Add", "add2", 2, i4, 1, o4, 0, NULL));
    const char *i5[] = {"ki", "kj"}, *o5[] = {"k"};
    KT_OK(kiln_graph_add_node(g, "Add", "kadd", 2, i5, 1, o5, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    KT_OK(kiln_graph_add_output(g, "a1"));
    KT_OK(kiln_graph_add_output(g, "k"));
    return g;
}

static kiln_module *compile(kiln_graph *g) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.min_block_size = 1;
    const char *fb[] = {"relu0"};
    cfg.fallback_ops = fb;
    cfg.num_fallback_ops = 1;
    kiln_input_profile p = {.name = "x", .rank = 2, .min = {1, C}, .opt = {4, C}, .max = {16, C}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    return m;
}

/* ---- structural equality of two modules ------------------------------------------------------------ */

static int same_host_tensor(const kn_host_tensor *a, const kn_host_tensor *b) {
    if (!a || !b) return a == b;
    if (a->dtype != b->dtype || a->rank != b->rank || memcmp(a->dims, b->dims, (size_t)a->rank * sizeof a->dims[0])) return 0;
    return !memcmp(a->data, b->data, (size_t)kn_host_numel(a) * kiln_dtype_size(a->dtype));
}

static int same_attr(const kn_attr *a, const kn_attr *b) {
    if (strcmp(a->name, b->name) || a->type != b->type) return 0;
    switch (a->type) {
    case KILN_ATTR_INT: return a->i == b->i;
    case KILN_ATTR_FLOAT: return !memcmp(&a->f, &b->f, sizeof a->f);
    case KILN_ATTR_STRING: return !strcmp(a->s, b->s);
    case KILN_ATTR_INTS: return a->count == b->count && !memcmp(a->ints, b->ints, (size_t)a->count * 8);
    case KILN_ATTR_FLOATS: return a->count == b->count && !memcmp(a->floats, b->floats, (size_t)a->count * 4);
    case KILN_ATTR_TENSOR: return same_host_tensor(a->tensor, b->tensor);
    }
    return 0;
}

static int same_io(const kiln_io_info *a, const kiln_io_info *b) {
    if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->rank != b->rank) return 0;
    size_t n = (size_t)a->rank * sizeof(int64_t);
    return !memcmp(a->min, b->min, n) && !memcmp(a->opt, b->opt, n) && !memcmp(a->max, b->max, n);
}

static void check_same_module(const kiln_module *a, const kiln_module *b, int want_dropped) {
    const kn_graph *ga = a->graph, *gb = b->graph;
    KT_CHECK(a->backend == b->backend && a->device == b->device && a->device_index == b->device_index, "backend/device");
    KT_CHECK(a->precision == b->precision && a->min_block_size == b->min_block_size &&
                 a->require_full_compilation == b->require_full_compilation &&
                 a->avoid_runtime_compilation == b->avoid_runtime_compilation && a->workspace_limit == b->workspace_limit &&
                 a->pass_through_build_failures == b->pass_through_build_failures, "build config");
    KT_CHECK(a->n_fallback_ops == b->n_fallback_ops, "fallback ops %d vs %d", a->n_fallback_ops, b->n_fallback_ops);
    for (int i = 0; i < a->n_fallback_ops && i < b->n_fallback_ops; i++)
        KT_CHECK(!strcmp(a->fallback_ops[i], b->fallback_ops[i]), "fallback op %d", i);
    KT_CHECK(ga->opset == gb->opset && ga->n_syms == gb->n_syms, "opset/symbols");
    for (int i = 0; i < ga->n_syms && i < gb->n_syms; i++)
        KT_CHECK(!strcmp(ga->syms[i].name, gb->syms[i].name) && ga->syms[i].min == gb->syms[i].min &&
                     ga->syms[i].max == gb->syms[i].max, "symbol %d", i);
    KT_CHECK(ga->n_values == gb->n_values, "values %d vs %d", ga->n_values, gb->n_values);
    int dropped = 0;
    for (int v = 0; v < ga->n_values && v < gb->n_values; v++) {
        const kn_value *x = &ga->values[v], *y = &gb->values[v];
        int same = !strcmp(x->name, y->name) && x->dtype == y->dtype && x->rank == y->rank && x->flags == y->flags &&
                   x->producer == y->producer;
        for (int d = 0; same && d < x->rank; d++) same = x->dims[d].v == y->dims[d].v && x->dims[d].sym == y->dims[d].sym;
        KT_CHECK(same, "value %d '%s'", v, x->name);
        if (x->constant && !y->constant) dropped++;
        else KT_CHECK(same_host_tensor(x->constant, y->constant), "constant '%s' round-trips bitwise", x->name);
        KT_CHECK(a->offset[v] == b->offset[v] && a->bytes[v] == b->bytes[v], "plan of '%s'", x->name);
    }
    KT_CHECK(want_dropped < 0 || dropped == want_dropped, "exactly the unused initializers are left out of the file (%d dropped, %d expected)",
             dropped, want_dropped);
    KT_CHECK(ga->n_nodes == gb->n_nodes, "nodes %d vs %d", ga->n_nodes, gb->n_nodes);
    for (int i = 0; i < ga->n_nodes && i < gb->n_nodes; i++) {
        const kn_node *x = &ga->nodes[i], *y = &gb->nodes[i];
        int same = x->op == y->op && !strcmp(x->name, y->name) && x->n_in == y->n_in && x->n_out == y->n_out &&
                   x->fallback == y->fallback && x->n_attrs == y->n_attrs &&
                   !memcmp(x->in, y->in, (size_t)x->n_in * sizeof(int)) && !memcmp(x->out, y->out, (size_t)x->n_out * sizeof(int));
        for (int k = 0; same && k < x->n_attrs; k++) same = same_attr(&x->attrs[k], &y->attrs[k]);
        KT_CHECK(same, "node %d '%s'", i, x->name);
        KT_CHECK(a->host_node[i] == b->host_node[i], "host mark of node '%s'", x->name);
    }
    KT_CHECK(ga->n_inputs == gb->n_inputs && !memcmp(ga->inputs, gb->inputs, (size_t)ga->n_inputs * sizeof(int)), "graph inputs");
    KT_CHECK(ga->n_outputs == gb->n_outputs && !memcmp(ga->outputs, gb->outputs, (size_t)ga->n_outputs * sizeof(int)), "graph outputs");
    KT_CHECK(a->n_inputs == b->n_inputs && a->n_outputs == b->n_outputs, "io counts");
    for (int k = 0; k < a->n_inputs && k < b->n_inputs; k++) KT_CHECK(same_io(&a->inputs[k], &b->inputs[k]), "input info %d", k);
    for (int k = 0; k < a->n_outputs && k < b->n_outputs; k++) KT_CHECK(same_io(&a->outputs[k], &b->outputs[k]), "output info %d", k);
    KT_CHECK(a->part.n_segments == b->part.n_segments && a->part.n_steps == b->part.n_steps, "partition size");
    for (int s = 0; s < a->part.n_segments && s < b->part.n_segments; s++) {
        const kn_segment *x = &a->part.segments[s], *y = &b->part.segments[s];
        KT_CHECK(x->kind == y->kind && x->first == y->first && x->count == y->count && x->reason == y->reason &&
                     x->capturable == y->capturable && !strcmp(x->detail, y->detail), "segment %d", s);
    }
    for (int s = 0; s < a->part.n_steps && s < b->part.n_steps; s++) {
        const kn_step *x = &a->part.steps[s], *y = &b->part.steps[s];
        KT_CHECK(x->node == y->node && x->segment == y->segment && x->kernel == y->kernel && x->tactic == y->tactic &&
                     x->reason == y->reason && x->tactic_ms == y->tactic_ms && !strcmp(x->tactic_key, y->tactic_key),
                 "step %d", s);
    }
    KT_CHECK(a->arena_size == b->arena_size && a->peak_live == b->peak_live, "arena %zu/%zu vs %zu/%zu", a->arena_size,
             a->peak_live, b->arena_size, b->peak_live);
}

/* ---- running -------------------------------------------------------------------------------------------- */

/* Runs both modules on the same random input and compares every output bitwise. */
static void run_both(kiln_session *sa, kiln_session *sb, int64_t batch) {
    float x[16 * C], ya[16 * C], yb[16 * C], a1a[16 * C], a1b[16 * C];
    int64_t ka[3] = {0}, kb[3] = {0};
    kt_fill_uniform(x, batch * C, -2, 2);
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 2, .dims = {batch, C}, .device = KILN_DEVICE_CPU};
    kiln_tensor oa[3] = {{.data = ya, .device = KILN_DEVICE_CPU}, {.data = a1a, .device = KILN_DEVICE_CPU}, {.data = ka, .device = KILN_DEVICE_CPU}};
    kiln_tensor ob[3] = {{.data = yb, .device = KILN_DEVICE_CPU}, {.data = a1b, .device = KILN_DEVICE_CPU}, {.data = kb, .device = KILN_DEVICE_CPU}};
    KT_OK(kiln_session_run(sa, &in, 1, oa, 3));
    KT_OK(kiln_session_run(sb, &in, 1, ob, 3));
    KT_CHECK(ob[0].rank == 2 && ob[0].dims[0] == batch && ob[0].dims[1] == C, "loaded output dims at batch %lld", (long long)batch);
    KT_CHECK(!memcmp(ya, yb, (size_t)(batch * C) * sizeof(float)), "y bitwise equal at batch %lld", (long long)batch);
    KT_CHECK(!memcmp(a1a, a1b, (size_t)(batch * C) * sizeof(float)), "a1 bitwise equal at batch %lld", (long long)batch);
    KT_CHECK(kb[0] == 41 && kb[1] == 52 && kb[2] == 63 && !memcmp(ka, kb, sizeof ka), "host-computed output k");
    /* and against plain C (the modules could agree and both be wrong) */
    const kn_graph *g = sb->m->graph;
    const float *b = g->values[kn_graph_find_value(g, "b")].constant->data;
    const float *w = g->values[kn_graph_find_value(g, "w")].constant->data;
    int bad = 0;
    for (int64_t i = 0; i < batch; i++)
        for (int c = 0; c < C; c++) {
            float a0 = x[i * C + c] + b[c], r0 = a0 > 0 ? a0 : 0, a1 = r0 + w[c], r1 = a1 > 0 ? a1 : 0, y = r1 + x[i * C + c];
            bad += yb[i * C + c] != y || a1b[i * C + c] != a1;
        }
    KT_CHECK(bad == 0, "%d outputs differ from the plain C reference at batch %lld", bad, (long long)batch);
}

static void test_round_trip(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g);
    if (!m) { kiln_graph_free(g); return; }
    KT_CHECK(kiln_module_num_segments(m) == 3 && kiln_module_num_engine_blocks(m) == 2,
             "the forced fallback makes 3 segments, 2 engine blocks (got %d, %d)", kiln_module_num_segments(m),
             kiln_module_num_engine_blocks(m));
    const char *path = tmp_path("model.kiln");
    KT_OK(kiln_module_save(m, path));
    kiln_module *l = NULL;
    KT_OK(kiln_module_load(path, &l));
    if (l) {
        check_same_module(m, l, 1);
        kiln_session *sa = NULL, *sb = NULL;
        KT_OK(kiln_session_create(m, &sa));
        KT_OK(kiln_session_create(l, &sb));
        int64_t batches[] = {1, 4, 16, 7, 1};
        for (int i = 0; i < 5; i++) run_both(sa, sb, batches[i]);
        /* the loaded module also records and replays (whole module across the graph break) */
        KT_OK(kiln_session_begin_cudagraphs(sb));
        for (int i = 0; i < 5; i++) run_both(sa, sb, batches[i]);
        kiln_counters c;
        KT_OK(kiln_session_counters(sb, &c));
        KT_CHECK(c.captures >= 3 && c.replays >= 4, "loaded module: %llu captures, %llu replays", (unsigned long long)c.captures,
                 (unsigned long long)c.replays);
        KT_OK(kiln_session_end_cudagraphs(sb));
        kiln_session_free(sa);
        kiln_session_free(sb);
        /* a second save of the loaded module makes the same bytes (nothing is lost or invented) */
        void *d1 = NULL, *d2 = NULL;
        size_t n1 = 0, n2 = 0;
        KT_OK(kn_plan_save_memory(m, &d1, &n1));
        KT_OK(kn_plan_save_memory(l, &d2, &n2));
        KT_CHECK(n1 == n2 && d1 && d2 && !memcmp(d1, d2, n1), "re-saving the loaded module gives the same %zu bytes", n1);
        size_t nf = 0;
        uint8_t *f = read_file(path, &nf);
        KT_CHECK(f && nf == n1 && !memcmp(f, d1, n1), "the file holds the in-memory image");
        free(f);
        kn_free(d1);
        kn_free(d2);
        char *report = NULL;
        KT_OK(kiln_module_report(l, false, &report));
        KT_CHECK(report && strstr(report, l->part.steps[0].kernel->name), "the loaded module reports its kernels");
        kiln_free(report);
    }
    kiln_module_free(l);
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* A model of shape arithmetic and layout ops: Shape -> Gather -> Concat with a Constant (a tensor
 * attribute) computes a Reshape target on the host; Transpose (ints attribute), Softmax,
 * ReduceMean with axes as an input, Mul forced to fall back by op type, Sigmoid, Concat. */
static kiln_graph *make_shape_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t dims[3] = {-1, 4, 6};
    const char *names[3] = {"batch", NULL, NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 3, dims, names));
    float w[4];
    kt_fill_uniform(w, 4, 0.5f, 2);
    int64_t wd[1] = {4}, ad[1] = {1}, axes[1] = {2};
    KT_OK(kiln_graph_add_initializer(g, "w", KILN_F32, 1, wd, w));
    KT_OK(kiln_graph_add_initializer(g, "axes", KILN_I64, 1, ad, axes));
    int64_t zero = 0, n24 = 24;
    kiln_tensor t0 = {.data = &zero, .dtype = KILN_I64, .rank = 1, .dims = {1}, .device = KILN_DEVICE_CPU};
    kiln_tensor t24 = {.data = &n24, .dtype = KILN_I64, .rank = 1, .dims = {1}, .device = KILN_DEVICE_CPU};
    kiln_attr v0 = {.name = "value", .type = KILN_ATTR_TENSOR, .tensor = &t0};
    kiln_attr v24 = {.name = "value", .type = KILN_ATTR_TENSOR, .tensor = &t24};
    kiln_attr ax0 = kiln_attr_int("axis", 0), ax1 = kiln_attr_int("axis", 1), axm1 = kiln_attr_int("axis", -1);
    int64_t perm[3] = {0, 2, 1};
    kiln_attr pa = kiln_attr_ints("perm", 3, perm), kd = kiln_attr_int("keepdims", 0);
#define NODE(op, name, ni, ins, na, attrs, out)                                                              \
    do {                                                                                                     \
        const char *o_[] = {out};                                                                            \
        KT_OK(kiln_graph_add_node(g, op, name, ni, ins, 1, o_, na, attrs));                                 \
    } while (0)
    const char *i_shape[] = {"x"}, *i_gather[] = {"shape", "idx"}, *i_cat[] = {"batch_dim", "c24"};
    const char *i_reshape[] = {"x", "newshape"}, *i_relu[] = {"flat"}, *i_tr[] = {"x"}, *i_sm[] = {"xt"};
    const char *i_mul[] = {"sm", "w"}, *i_red[] = {"scaled", "axes"}, *i_sig[] = {"mean"}, *i_cat2[] = {"sig", "sig"};
    NODE("Shape", "shape_of_x", 1, i_shape, 0, NULL, "shape");
    NODE("Constant", "c_idx", 0, NULL, 1, &v0, "idx");
    NODE("Gather", "batch_of_x", 2, i_gather, 1, &ax0, "batch_dim");
    NODE("Constant", "c_24", 0, NULL, 1, &v24, "c24");
    NODE("Concat", "target_shape", 2, i_cat, 1, &ax0, "newshape");
    NODE("Reshape", "flatten", 2, i_reshape, 0, NULL, "flat");
    NODE("Relu", "relu", 1, i_relu, 0, NULL, "flat_relu");
    NODE("Transpose", "transpose", 1, i_tr, 1, &pa, "xt");
    NODE("Softmax", "softmax", 1, i_sm, 1, &axm1, "sm");
    NODE("Mul", "scale", 2, i_mul, 0, NULL, "scaled");
    NODE("ReduceMean", "mean", 2, i_red, 1, &kd, "mean");
    NODE("Sigmoid", "sigmoid", 1, i_sig, 0, NULL, "sig");
    NODE("Concat", "twice", 2, i_cat2, 1, &ax1, "both");
    float pw[24 * 5];
    kt_fill_uniform(pw, 24 * 5, -1, 1);
    int64_t pwd[2] = {24, 5};
    KT_OK(kiln_graph_add_initializer(g, "proj_w", KILN_F32, 2, pwd, pw));
    const char *i_mm[] = {"flat_relu", "proj_w"};
    NODE("MatMul", "project", 2, i_mm, 0, NULL, "proj");
#undef NODE
    KT_OK(kiln_graph_add_output(g, "flat_relu"));
    KT_OK(kiln_graph_add_output(g, "both"));
    KT_OK(kiln_graph_add_output(g, "proj"));
    return g;
}

static kiln_module *compile_shapes(kiln_graph *g) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.min_block_size = 2;
    const char *fb[] = {"Mul"};
    cfg.fallback_ops = fb;
    cfg.num_fallback_ops = 1;
    kiln_input_profile p = {.name = "x", .rank = 3, .min = {1, 4, 6}, .opt = {3, 4, 6}, .max = {8, 4, 6}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    return m;
}

static void test_round_trip_shapes(void) {
    kiln_graph *g = make_shape_graph();
    kiln_module *m = compile_shapes(g);
    if (!m) { kiln_graph_free(g); return; }
    int host = 0;
    for (int i = 0; i < m->graph->n_nodes; i++) host += m->host_node[i];
    KT_CHECK(host >= 3 && kiln_module_num_segments(m) >= 3, "shape arithmetic on the host (%d nodes), a graph break (%d segments)",
             host, kiln_module_num_segments(m));
    const char *path = tmp_path("shapes.kiln");
    KT_OK(kiln_module_save(m, path));
    kiln_module *l = NULL;
    KT_OK(kiln_module_load(path, &l));
    if (l) {
        check_same_module(m, l, 0);
        kiln_session *sa = NULL, *sb = NULL;
        KT_OK(kiln_session_create(m, &sa));
        KT_OK(kiln_session_create(l, &sb));
        KT_OK(kiln_session_set_cudagraphs_mode(sb, KILN_CUDAGRAPHS_PER_BLOCK));
        int64_t batches[] = {3, 1, 8, 5, 3};
        for (int r = 0; r < 5 && sa && sb; r++) {
            int64_t b = batches[r];
            float x[8 * 24], fa[8 * 24], fb2[8 * 24], ca[8 * 12], cb[8 * 12], pa[8 * 5], pb[8 * 5];
            kt_fill_uniform(x, b * 24, -3, 3);
            kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 3, .dims = {b, 4, 6}, .device = KILN_DEVICE_CPU};
            kiln_tensor oa[3] = {{.data = fa, .device = KILN_DEVICE_CPU}, {.data = ca, .device = KILN_DEVICE_CPU},
                                 {.data = pa, .device = KILN_DEVICE_CPU}};
            kiln_tensor ob[3] = {{.data = fb2, .device = KILN_DEVICE_CPU}, {.data = cb, .device = KILN_DEVICE_CPU},
                                 {.data = pb, .device = KILN_DEVICE_CPU}};
            KT_OK(kiln_session_run(sa, &in, 1, oa, 3));
            KT_OK(kiln_session_run(sb, &in, 1, ob, 3));
            KT_CHECK(ob[0].rank == 2 && ob[0].dims[0] == b && ob[0].dims[1] == 24 && ob[1].rank == 2 && ob[1].dims[1] == 12 &&
                         ob[2].rank == 2 && ob[2].dims[1] == 5,
                     "loaded output dims at batch %lld", (long long)b);
            KT_CHECK(!memcmp(fa, fb2, (size_t)(b * 24) * sizeof(float)) && !memcmp(ca, cb, (size_t)(b * 12) * sizeof(float)) &&
                         !memcmp(pa, pb, (size_t)(b * 5) * sizeof(float)),
                     "outputs bitwise equal at batch %lld", (long long)b);
            int bad = 0; /* the reshape and relu are easy to check by hand */
            for (int64_t i = 0; i < b * 24; i++) bad += fb2[i] != (x[i] > 0 ? x[i] : 0);
            KT_CHECK(bad == 0, "%d wrong flat_relu values at batch %lld", bad, (long long)b);
        }
        kiln_session_free(sa);
        kiln_session_free(sb);
    }
    kiln_module_free(l);
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* ResNet-18 (Conv, BatchNormalization, MaxPool, residual Add, GlobalAveragePool, Gemm, ...) with
 * the residual Adds forced out: the loaded module is the same plan and runs bitwise equal, eagerly and as one
 * recorded graph across the breaks. */
static void test_round_trip_resnet(void) {
    const int64_t spatial = 32;
    kiln_graph *g = NULL;
    if (kiln_resnet_build(18, spatial, 11, &g) != KILN_OK) {
        fprintf(stderr, "SKIP: ResNet-18 round trip: the builder fails (%s)\n", kiln_last_error());
        return;
    }
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    const char *fb[] = {"Add"};
    cfg.fallback_ops = fb;
    cfg.num_fallback_ops = 1;
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, spatial, spatial}, .opt = {2, 3, spatial, spatial},
                            .max = {3, 3, spatial, spatial}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    if (!m) { kiln_graph_free(g); return; }
    KT_CHECK(kiln_module_num_segments(m) >= 3, "the residual Adds forced out break the graph (%d segments)", kiln_module_num_segments(m));
    const char *path = tmp_path("resnet18.kiln");
    KT_OK(kiln_module_save(m, path));
    kiln_module *l = NULL;
    KT_OK(kiln_module_load(path, &l));
    if (l) {
        check_same_module(m, l, -1);
        kiln_session *sa = NULL, *sb = NULL;
        KT_OK(kiln_session_create(m, &sa));
        KT_OK(kiln_session_create(l, &sb));
        static float x[3 * 3 * 32 * 32], ya[3 * 1000], yb[3 * 1000];
        int64_t batches[] = {2, 3, 1, 2};
        for (int r = 0; r < 4 && sa && sb; r++) {
            int64_t b = batches[r];
            if (r == 2) KT_OK(kiln_session_set_cudagraphs_mode(sb, KILN_CUDAGRAPHS_WHOLE));
            kt_fill_uniform(x, b * 3 * spatial * spatial, -1, 1);
            kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 4, .dims = {b, 3, spatial, spatial}, .device = KILN_DEVICE_CPU};
            kiln_tensor oa = {.data = ya, .device = KILN_DEVICE_CPU}, ob = {.data = yb, .device = KILN_DEVICE_CPU};
            KT_OK(kiln_session_run(sa, &in, 1, &oa, 1));
            KT_OK(kiln_session_run(sb, &in, 1, &ob, 1));
            KT_CHECK(ob.rank == 2 && ob.dims[0] == b && ob.dims[1] == 1000, "logits dims at batch %lld", (long long)b);
            KT_CHECK(!memcmp(ya, yb, (size_t)(b * 1000) * sizeof(float)), "ResNet-18 logits bitwise equal at batch %lld", (long long)b);
            double mag = 0;
            for (int64_t i = 0; i < b * 1000; i++) mag += fabs(yb[i]);
            KT_CHECK(mag > 0 && mag == mag, "the logits are finite and not all zero (sum |y| = %g)", mag);
        }
        kiln_session_free(sa);
        kiln_session_free(sb);
    }
    kiln_module_free(l);
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* ---- refusals ------------------------------------------------------------------------------------------- */

static void expect_load_fails(const uint8_t *data, size_t n, kiln_status code, const char *needle, const char *what) {
    const char *p = tmp_path("bad.kiln");
    KT_CHECK(write_file(p, data, n), "write %s", p);
    kiln_module *m = (kiln_module *)0x1;
    kiln_status st = kiln_module_load(p, &m);
    KT_CHECK(st == code && strstr(kiln_last_error(), needle) && m == NULL, "%s: got %s '%s', want %s containing '%s'", what,
             kiln_status_name(st), kiln_last_error(), kiln_status_name(code), needle);
    kiln_module_free(st == KILN_OK ? m : NULL);
}

/* Engine images fuzz_engine found (checksum bypassed, as the fuzzer loads them): each loads or
 * is refused with a message; under ASan (make test-sanitize) any memory error fails the run.
 * fuzz_absent_output.kiln: a host-evaluated node with an absent optional output, whose buffer
 * shape inference freed before the node ran (a use after free). */
/* Tactic keys (format 2): what a step's tactic resolved to goes through a save and a load, shows
 * in the report, and a key with characters outside the allowed set is refused on load. The CPU
 * kernels keep no keys, so the test sets them on the module. */
static void test_tactic_keys(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g);
    if (!m) { kiln_graph_free(g); return; }
    static const char key[] = "cudnn1:f1:p0:r0:e12:k3=1,5=0";
    snprintf(m->part.steps[0].tactic_key, sizeof m->part.steps[0].tactic_key, "%s", key);
    m->avoid_runtime_compilation = 1; /* a build flag the file keeps (CONF bit 2) */
    m->workspace_limit = (size_t)48 << 20; /* and the workspace limit (CONF's last field) */
    void *d = NULL;
    size_t n = 0;
    KT_OK(kn_plan_save_memory(m, &d, &n));
    kiln_module *l = NULL;
    KT_OK(kn_plan_load_memory(d, n, 0, &l));
    if (l) {
        check_same_module(m, l, 1);
        KT_CHECK(l->avoid_runtime_compilation == 1, "avoid_runtime_compilation came back");
        KT_CHECK(l->workspace_limit == (size_t)48 << 20, "the workspace limit came back (%zu)", l->workspace_limit);
        KT_CHECK(!strcmp(l->part.steps[0].tactic_key, key) && !l->part.steps[1].tactic_key[0],
                 "the key came back ('%s'), the other steps have none", l->part.steps[0].tactic_key);
        char *report = NULL;
        KT_OK(kiln_module_report(l, true, &report));
        KT_CHECK(report && strstr(report, "\"tactic_key\": \"cudnn1:f1:p0:r0:e12:k3=1,5=0\""), "the JSON report shows the key");
        kiln_free(report);
        kiln_session *s = NULL; /* the CPU kernels ignore the key: the module still runs */
        KT_OK(kiln_session_create(l, &s));
        kiln_session *sm = NULL;
        KT_OK(kiln_session_create(m, &sm));
        if (s && sm) run_both(sm, s, 3);
        kiln_session_free(s);
        kiln_session_free(sm);
    }
    kiln_module_free(l);
    kn_free(d);
    static const char *const bad[] = {"has space", "quote\"d", "-"};
    for (int i = 0; i < 3; i++) {
        snprintf(m->part.steps[0].tactic_key, sizeof m->part.steps[0].tactic_key, "%s", bad[i]);
        d = NULL;
        KT_OK(kn_plan_save_memory(m, &d, &n));
        l = NULL;
        kiln_status st = kn_plan_load_memory(d, n, 0, &l);
        KT_CHECK(st == KILN_ERR_CORRUPT && !l && strstr(kiln_last_error(), "tactic key"),
                 "key '%s' refused on load: %s (%s)", bad[i], kiln_status_name(st), kiln_last_error());
        kiln_module_free(l);
        kn_free(d);
    }
    kiln_module_free(m);
    kiln_graph_free(g);
}

static void test_fuzz_regressions(void) {
#ifdef KILN_PLAN_TEST_DATA
    static const char *const files[] = {"fuzz_absent_output.kiln"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", KILN_PLAN_TEST_DATA, files[i]);
        FILE *f = fopen(path, "rb");
        KT_CHECK(f != NULL, "open %s", path);
        if (!f) continue;
        uint8_t buf[1 << 16];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        KT_CHECK(n > 0 && n < sizeof buf, "%s: %zu bytes", files[i], n);
        kiln_module *m = NULL;
        kiln_status st = kn_plan_load_memory(buf, n, KN_PLAN_LOAD_SKIP_CRC, &m);
        KT_CHECK(st == KILN_OK ? m != NULL : m == NULL && kiln_last_error()[0] != 0, "%s: %s with a message (%s)",
                 files[i], kiln_status_name(st), kiln_last_error());
        kiln_module_free(m);
    }
#else
    printf("SKIP: KILN_PLAN_TEST_DATA is not defined: the fuzz regression images did not run\n");
#endif
}

static void test_refusals(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g);
    void *img = NULL;
    size_t n = 0;
    KT_OK(kn_plan_save_memory(m, &img, &n));
    if (!img) { kiln_module_free(m); kiln_graph_free(g); return; }
    uint8_t *f = malloc(n + 64);
    KT_CHECK(n % 64 == KN_PLAN_TRAILER_BYTES && n > 256, "file size %zu: weights end on 64 bytes, then the trailer", n);

    /* a byte flipped in the middle */
    memcpy(f, img, n);
    f[n / 2] ^= 0x10;
    expect_load_fails(f, n, KILN_ERR_CORRUPT, "checksum mismatch: the file is corrupt", "flipped byte");
    memcpy(f, img, n);
    f[70] ^= 0x01; /* in the first section's header */
    expect_load_fails(f, n, KILN_ERR_CORRUPT, "checksum mismatch", "flipped metadata byte");

    /* truncated at several points */
    size_t cuts[] = {0, 3, 8, 11, 40, 63, 64, 65, 200, n / 2, n - 17, n - 16, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", cuts[i]);
        expect_load_fails(img, cuts[i], KILN_ERR_CORRUPT, "truncated", what);
    }
    /* bytes appended */
    memcpy(f, img, n);
    memset(f + n, 0, 64);
    expect_load_fails(f, n + 64, KILN_ERR_CORRUPT, "follow the end", "appended bytes");

    /* wrong magic */
    memcpy(f, img, n);
    memcpy(f, "GGUF\3\0\0\0", 8);
    expect_load_fails(f, n, KILN_ERR_PARSE, "not a kiln engine file", "wrong magic");
    expect_load_fails((const uint8_t *)"hello", 5, KILN_ERR_PARSE, "not a kiln engine file", "text file");

    /* a newer format version, checksum made to match */
    memcpy(f, img, n);
    kn_put_u32(f + KN_HDR_VERSION, KN_PLAN_VERSION + 1);
    fix_crc(f, n);
    expect_load_fails(f, n, KILN_ERR_VERSION, "newer", "newer format version");
    memcpy(f, img, n);
    kn_put_u32(f + KN_HDR_VERSION, 0);
    fix_crc(f, n);
    expect_load_fails(f, n, KILN_ERR_CORRUPT, "version 0", "format version 0");

    /* another device: the stored line "cpu" becomes "gpu", checksum made to match */
    memcpy(f, img, n);
    size_t at = find_bytes(f, n, "\3\0\0\0cpu\3\0\0\0cpu"); /* backend name, then the device line */
    KT_CHECK(at != (size_t)-1, "the device line is in the file");
    if (at != (size_t)-1) {
        memcpy(f + at + 11, "gpu", 3);
        fix_crc(f, n);
        expect_load_fails(f, n, KILN_ERR_VERSION, "built for device 'gpu' but this device is 'cpu'", "device mismatch");
    }

    /* a kernel the present kiln does not choose for the node (the kernel set changed) */
    memcpy(f, img, n);
    const char *kname = m->part.steps[1].kernel->name; /* relu0's kernel */
    at = find_bytes_n(f, n, kname, strlen(kname));
    KT_CHECK(at != (size_t)-1, "the kernel name '%s' is in the file", kname);
    if (at != (size_t)-1) {
        f[at + strlen(kname) - 1] ^= 0x20; /* "cpu.unary" -> "cpu.unarY" */
        fix_crc(f, n);
        expect_load_fails(f, n, KILN_ERR_VERSION, "the kernel set changed; rebuild", "kernel name");
    }

    /* an op this kiln does not know */
    memcpy(f, img, n);
    at = find_bytes(f, n, "\4\0\0\0Relu");
    if (at != (size_t)-1) {
        memcpy(f + at + 4, "Relz", 4);
        fix_crc(f, n);
        expect_load_fails(f, n, KILN_ERR_VERSION, "op 'Relz'", "unknown op");
    }

    /* a required section this kiln does not know: written by a newer kiln */
    memcpy(f, img, n);
    memcpy(f + KN_PLAN_HEADER_BYTES, "INFX", 4);
    fix_crc(f, n);
    expect_load_fails(f, n, KILN_ERR_VERSION, "section 'INFX'", "unknown section");

    /* a missing file */
    kiln_module *none = NULL;
    KT_FAILS(kiln_module_load(tmp_path("no-such.kiln"), &none), KILN_ERR_NOT_FOUND, "no-such.kiln");
    KT_FAILS(kiln_module_load(NULL, &none), KILN_ERR_INVALID_ARGUMENT, "path");

    free(f);
    kn_free(img);
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* The file checksum is CRC-32 (IEEE): the standard check value, chaining, and a bytewise
 * reference at every alignment and tail length. */
static uint32_t crc_bytewise(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xedb88320u ^ (crc >> 1) : crc >> 1;
    }
    return ~crc;
}

static void test_crc(void) {
    KT_CHECK(kn_crc32(0, "123456789", 9) == 0xcbf43926u, "CRC-32 check value: %08x", kn_crc32(0, "123456789", 9));
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)kt_rand_u64();
    int bad = 0;
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 7) {
            bad += kn_crc32(0, buf + off, n) != crc_bytewise(0, buf + off, n);
            bad += kn_crc32(kn_crc32(0, buf + off, n / 3), buf + off + n / 3, n - n / 3) != crc_bytewise(0, buf + off, n);
        }
    KT_CHECK(bad == 0, "%d CRC mismatches against the bytewise definition", bad);
}

static void test_device_lines(void) {
    char d[256], l[256];
    kn_plan_split_describe("NVIDIA H100 80GB HBM3 sm_90 | cuda 12040 cudnn 90100", d, sizeof d, l, sizeof l);
    KT_CHECK(!strcmp(d, "NVIDIA H100 80GB HBM3 sm_90") && !strcmp(l, "cuda 12040 cudnn 90100"), "split at ' | ': '%s' / '%s'", d, l);
    kn_plan_split_describe("NVIDIA H100 sm_90 cudnn 91900 cublasLt 120800", d, sizeof d, l, sizeof l);
    KT_CHECK(!strcmp(d, "NVIDIA H100 sm_90") && !strcmp(l, "cudnn 91900 cublasLt 120800"), "split at a library: '%s' / '%s'", d, l);
    kn_plan_split_describe("cpu", d, sizeof d, l, sizeof l);
    KT_CHECK(!strcmp(d, "cpu") && !l[0], "no libraries: '%s' / '%s'", d, l);

    const char *h100 = "NVIDIA H100 80GB HBM3 sm_90 | cuda 12040 cudnn 90100";
    KT_OK(kn_plan_check_device(h100, h100, 1));
    KT_FAILS(kn_plan_check_device(h100, "NVIDIA A100-SXM4-40GB sm_80 | cuda 12040 cudnn 90100", 1), KILN_ERR_VERSION,
             "built for device 'NVIDIA H100 80GB HBM3 sm_90' but this device is 'NVIDIA A100-SXM4-40GB sm_80'");
    KT_FAILS(kn_plan_check_device(h100, "NVIDIA H100 80GB HBM3 sm_90 | cuda 12040 cudnn 90300", 1), KILN_ERR_VERSION,
             "chosen with libraries 'cuda 12040 cudnn 90100' but this machine has 'cuda 12040 cudnn 90300'");
    KT_FAILS(kn_plan_check_device(h100, "NVIDIA H100 80GB HBM3 sm_90 | cuda 12040 cudnn 90300", 1), KILN_ERR_VERSION,
             "rebuild");
    /* no stored tactics depend on the libraries: a newer library is fine */
    KT_OK(kn_plan_check_device(h100, "NVIDIA H100 80GB HBM3 sm_90 | cuda 12040 cudnn 90300", 0));
    KT_FAILS(kn_plan_check_device(h100, "NVIDIA A100-SXM4-40GB sm_80 | cuda 12040 cudnn 90100", 0), KILN_ERR_VERSION, "sm_80");
}

/* ---- saving never leaves a half file ------------------------------------------------------------------ */

static int count_tmp_files(void) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return n;
}

static void test_failed_save(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g);
    KT_FAILS(kiln_module_save(m, tmp_path("no-such-dir/model.kiln")), KILN_ERR_IO, "no-such-dir/model.kiln");
    KT_FAILS(kiln_module_save(NULL, tmp_path("x.kiln")), KILN_ERR_INVALID_ARGUMENT, "module");

    /* an older, good file stays intact when a save over it fails half-way (file size limit) */
    const char *path = tmp_path("keep.kiln");
    KT_OK(kiln_module_save(m, path));
    size_t n0 = 0;
    uint8_t *before = read_file(path, &n0);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 100; /* the header fits, the metadata does not */
    signal(SIGXFSZ, SIG_IGN);
    KT_CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    KT_FAILS(kiln_module_save(m, path), KILN_ERR_IO, "saving");
    setrlimit(RLIMIT_FSIZE, &old);
    size_t n1 = 0;
    uint8_t *after = read_file(path, &n1);
    KT_CHECK(before && after && n0 == n1 && !memcmp(before, after, n0), "the older file is untouched");
    KT_CHECK(count_tmp_files() == 0, "no temporary file is left behind");
    kiln_module *l = NULL;
    KT_OK(kiln_module_load(path, &l));
    kiln_module_free(l);
    free(before);
    free(after);
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* ---- random damage with the checksum bypassed: the parser must refuse or load, never crash ----------
 * KILN_TEST_MUTATIONS=N runs N trials per model; KILN_TEST_PLAN_SEEDS=DIR writes the undamaged
 * images there (seeds for a fuzzer). */

static void test_mutations(const char *label, kiln_graph *(*make)(void), kiln_module *(*build)(kiln_graph *)) {
    kiln_graph *g = make();
    kiln_module *m = build(g);
    void *img = NULL;
    size_t n = 0;
    KT_OK(kn_plan_save_memory(m, &img, &n));
    if (!img) { kiln_module_free(m); kiln_graph_free(g); return; }
    const char *seeds = getenv("KILN_TEST_PLAN_SEEDS"); /* a folder: the images become fuzzing seeds */
    if (seeds) {
        char sp[600];
        snprintf(sp, sizeof sp, "%s/%s.kiln", seeds, label);
        for (char *c = sp + strlen(seeds) + 1; *c; c++)
            if (*c == ' ') *c = '_';
        KT_CHECK(write_file(sp, img, n), "write the seed %s", sp);
    }
    size_t meta_end = (size_t)(kn_get_u64((uint8_t *)img + KN_HDR_META_OFFSET) + kn_get_u64((uint8_t *)img + KN_HDR_META_BYTES));
    uint8_t *f = malloc(n);
    int loaded = 0, refused = 0, ran = 0, trials = 3000;
    const char *more = getenv("KILN_TEST_MUTATIONS"); /* a longer soak: KILN_TEST_MUTATIONS=200000 */
    if (more && atoi(more) > 0) trials = atoi(more);
    for (int t = 0; t < trials; t++) {
        memcpy(f, img, n);
        int edits = 1 + (int)(kt_rand_u64() % 4);
        for (int e = 0; e < edits; e++) {
            /* mostly the metadata; sometimes the header (bytes 8..63, past the magic) */
            size_t at = kt_rand_u64() % 8 ? KN_PLAN_HEADER_BYTES + (size_t)(kt_rand_u64() % (meta_end - KN_PLAN_HEADER_BYTES))
                                          : 8 + (size_t)(kt_rand_u64() % (KN_PLAN_HEADER_BYTES - 8));
            switch (kt_rand_u64() % 6) {
            case 0: f[at] ^= (uint8_t)(1u << (kt_rand_u64() % 8)); break;
            case 1: f[at] = (uint8_t)kt_rand_u64(); break;
            case 2: f[at] = 0xff; break;
            case 3: f[at]++; break; /* counts and lengths off by one */
            case 4: f[at]--; break;
            default: f[at] = 0; break;
            }
        }
        kiln_module *l = NULL;
        kiln_status st = kn_plan_load_memory(f, n, KN_PLAN_LOAD_SKIP_CRC, &l);
        if (st != KILN_OK) {
            refused++;
            KT_CHECK(l == NULL && kiln_last_error()[0], "a refusal leaves no module and says why");
            continue;
        }
        loaded++;
        /* a file that still loads must also run (or refuse to run) without crashing */
        kiln_session *s = NULL;
        kiln_io_info ii;
        if (kiln_module_num_inputs(l) == 1 && kiln_module_input_info(l, 0, &ii) == KILN_OK && ii.dtype == KILN_F32 &&
            kn_numel(ii.rank, ii.opt) <= 4096 && kiln_module_num_outputs(l) <= 3 && kiln_session_create(l, &s) == KILN_OK) {
            float x[4096];
            kt_fill_uniform(x, kn_numel(ii.rank, ii.opt), -1, 1);
            kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = ii.rank, .device = KILN_DEVICE_CPU};
            memcpy(in.dims, ii.opt, sizeof in.dims);
            kiln_tensor out[3] = {{0}};
            if (kiln_session_run(s, &in, 1, out, kiln_module_num_outputs(l)) == KILN_OK) ran++;
            kiln_session_free(s);
        }
        kiln_module_free(l);
    }
    fprintf(stderr, "mutations of the %s model: %d trials, %d refused, %d still loaded (%d of those ran)\n", label, trials,
            refused, loaded, ran);
    KT_CHECK(refused > trials / 2, "most damage is refused (%d of %d)", refused, trials);
    free(f);
    kn_free(img);
    kiln_module_free(m);
    kiln_graph_free(g);
}

/* ---- load time vs build time of a larger model ---------------------------------------------------------- */

static int have_cpu_op(kn_op op) {
    const kn_op_def *d = kn_op_get(op);
    const kn_kernel *k = kn_cpu_kernel(op);
    return d && d->infer && k && k->run;
}

/* A larger model: ResNet-18 (tools/kiln/resnet.c) when its ops compile, else an MLP via MatMul,
 * else (before MatMul lands) a chain of broadcast Adds carrying the same weight volume. */
typedef struct big_model {
    kiln_graph *g;
    kiln_input_profile p;
    int64_t run_dims[KILN_MAX_RANK];
    char what[128];
    double build_ms; /* kiln_compile alone */
} big_model;

static kiln_module *compile_big(big_model *bm) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.profiles = &bm->p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    double t0 = kn_now_ms();
    if (kiln_compile(bm->g, &cfg, &m) != KILN_OK) return NULL;
    bm->build_ms = kn_now_ms() - t0;
    return m;
}

static kiln_module *make_resnet(big_model *bm) {
    const int64_t spatial = 64;
    if (kiln_resnet_build(18, spatial, 7, &bm->g) != KILN_OK) {
        fprintf(stderr, "load time: ResNet-18 not available yet (%s)\n", kiln_last_error());
        return NULL;
    }
    bm->p = (kiln_input_profile){.name = "x", .rank = 4, .min = {1, 3, spatial, spatial}, .opt = {2, 3, spatial, spatial},
                                 .max = {4, 3, spatial, spatial}};
    int64_t d[4] = {2, 3, spatial, spatial};
    memcpy(bm->run_dims, d, sizeof d);
    snprintf(bm->what, sizeof bm->what, "ResNet-18 at %lldx%lld, batch 1..4", (long long)spatial, (long long)spatial);
    kiln_module *m = compile_big(bm);
    if (!m) {
        fprintf(stderr, "load time: ResNet-18 does not compile yet (%s)\n", kiln_last_error());
        kiln_graph_free(bm->g);
        bm->g = NULL;
    }
    return m;
}

static kiln_module *make_chain(big_model *bm) {
    const int width = 1024, layers = 16;
    int mlp = have_cpu_op(KN_OP_MatMul);
    const int64_t feat = mlp ? width : (int64_t)width * width; /* the Add chain: x is [batch, width*width] */
    KT_OK(kiln_graph_create(&bm->g));
    kiln_graph *g = bm->g;
    int64_t dims[2] = {-1, feat};
    const char *names[2] = {"batch", NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 2, dims, names));
    float *w = malloc((size_t)width * width * sizeof(float));
    char prev[32] = "x", cur[32], wname[32], bname[32], mname[32];
    for (int l = 0; l < layers; l++) {
        snprintf(wname, sizeof wname, "w%d", l);
        snprintf(bname, sizeof bname, "b%d", l);
        kt_fill_uniform(w, (int64_t)width * width, -0.03f, 0.03f);
        int64_t wd[2] = {width, width}, bd[1] = {width};
        if (mlp) { /* y = relu(x @ W + b) */
            KT_OK(kiln_graph_add_initializer(g, wname, KILN_F32, 2, wd, w));
            KT_OK(kiln_graph_add_initializer(g, bname, KILN_F32, 1, bd, w));
            snprintf(mname, sizeof mname, "mm%d", l);
            const char *in[] = {prev, wname}, *out[] = {mname};
            KT_OK(kiln_graph_add_node(g, "MatMul", mname, 2, in, 1, out, 0, NULL));
            snprintf(cur, sizeof cur, "a%d", l);
            const char *in2[] = {mname, bname}, *out2[] = {cur};
            KT_OK(kiln_graph_add_node(g, "Add", cur, 2, in2, 1, out2, 0, NULL));
        } else {
            int64_t pd[2] = {1, feat};
            KT_OK(kiln_graph_add_initializer(g, wname, KILN_F32, 2, pd, w));
            snprintf(cur, sizeof cur, "a%d", l);
            const char *in[] = {prev, wname}, *out[] = {cur};
            KT_OK(kiln_graph_add_node(g, "Add", cur, 2, in, 1, out, 0, NULL));
        }
        snprintf(mname, sizeof mname, "r%d", l);
        const char *in3[] = {cur}, *out3[] = {mname};
        KT_OK(kiln_graph_add_node(g, "Relu", mname, 1, in3, 1, out3, 0, NULL));
        snprintf(prev, sizeof prev, "%s", mname);
    }
    free(w);
    KT_OK(kiln_graph_add_output(g, prev));
    bm->p = (kiln_input_profile){.name = "x", .rank = 2, .min = {1, feat}, .opt = {2, feat}, .max = {mlp ? 32 : 4, feat}};
    bm->run_dims[0] = 2;
    bm->run_dims[1] = feat;
    snprintf(bm->what, sizeof bm->what, "%s, %d layers of %dx%d f32", mlp ? "MLP via MatMul" : "Add chain (no MatMul yet)",
             layers, width, width);
    kiln_module *m = compile_big(bm);
    KT_CHECK(m != NULL, "compile the %s: %s", bm->what, kiln_last_error());
    return m;
}

static void test_load_time(void) {
    big_model bm = {0};
    kiln_module *m = make_resnet(&bm);
    if (!m) m = make_chain(&bm);
    if (!m) { kiln_graph_free(bm.g); return; }
    double t0;
    const char *path = tmp_path("big.kiln");
    t0 = kn_now_ms();
    KT_OK(kiln_module_save(m, path));
    double save_ms = kn_now_ms() - t0;
    struct stat sb;
    stat(path, &sb);
    kiln_module *l = NULL;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        t0 = kn_now_ms();
        KT_OK(kiln_module_load(path, &l));
        double ms = kn_now_ms() - t0;
        if (ms < best) best = ms;
        if (r < 2) { kiln_module_free(l); l = NULL; }
    }
    fprintf(stderr, "load vs build (%s, file %.1f MiB, CPU backend): build %.1f ms (kiln_compile), save %.1f ms, load %.1f ms (best of 3)\n",
            bm.what, (double)sb.st_size / 1048576.0, bm.build_ms, save_ms, best);
    if (l) { /* one run of each, compared bitwise */
        kiln_io_info oi;
        KT_OK(kiln_module_output_info(m, 0, &oi));
        int64_t n_in = kn_numel(bm.p.rank, bm.run_dims), n_out = kn_numel(oi.rank, oi.max);
        float *x = malloc((size_t)n_in * sizeof(float));
        float *ya = malloc((size_t)n_out * sizeof(float)), *yb = malloc((size_t)n_out * sizeof(float));
        kt_fill_uniform(x, n_in, -1, 1);
        kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = bm.p.rank, .device = KILN_DEVICE_CPU};
        memcpy(in.dims, bm.run_dims, sizeof in.dims);
        kiln_tensor oa = {.data = ya, .device = KILN_DEVICE_CPU}, ob = {.data = yb, .device = KILN_DEVICE_CPU};
        kiln_session *sa = NULL, *sb2 = NULL;
        KT_OK(kiln_session_create(m, &sa));
        KT_OK(kiln_session_create(l, &sb2));
        if (sa && sb2) {
            KT_OK(kiln_session_run(sa, &in, 1, &oa, 1));
            KT_OK(kiln_session_run(sb2, &in, 1, &ob, 1));
            int64_t n = kn_numel(ob.rank, ob.dims);
            KT_CHECK(oa.rank == ob.rank && !memcmp(ya, yb, (size_t)n * sizeof(float)),
                     "the larger model's outputs are bitwise equal after loading");
        }
        kiln_session_free(sa);
        kiln_session_free(sb2);
        free(x); free(ya); free(yb);
    }
    kiln_module_free(l);
    kiln_module_free(m);
    kiln_graph_free(bm.g);
    unlink(path);
}

int main(void) {
    kt_seed(20240607);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kiln_test_plan_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_crc();
    test_device_lines();
    test_round_trip();
    test_round_trip_shapes();
    test_round_trip_resnet();
    test_refusals();
    test_fuzz_regressions();
    test_tactic_keys();
    test_failed_save();
    test_mutations("elementwise", make_graph, compile);
    test_mutations("shape arithmetic", make_shape_graph, compile_shapes);
    test_load_time();
    /* clean up the folder */
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') unlink(tmp_path(e->d_name));
    if (d) closedir(d);
    rmdir(tmpdir);
    return kt_finish();
}
