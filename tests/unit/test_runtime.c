/* The runtime on the CPU backend: sessions, profiles, I/O rules and the graph manager (modes,
 * cache keyed by shapes, LRU bound, warm-up, scoped enable), checked against plain C math. */
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

/* y = relu(x) + x, with a dynamic batch */
static kiln_graph *make_graph(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t dims[2] = {-1, 8};
    const char *names[2] = {"batch", NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 2, dims, names));
    const char *in1[] = {"x"}, *out1[] = {"r"};
    KT_OK(kiln_graph_add_node(g, "Relu", "relu", 1, in1, 1, out1, 0, NULL));
    const char *in2[] = {"r", "x"}, *out2[] = {"y"};
    KT_OK(kiln_graph_add_node(g, "Add", "add", 2, in2, 1, out2, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

static kiln_module *compile(kiln_graph *g, int min_block) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.min_block_size = min_block;
    kiln_input_profile p = {.name = "x", .rank = 2, .min = {1, 8}, .opt = {4, 8}, .max = {16, 8}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    return m;
}

static int run_and_check(kiln_session *s, int64_t batch) {
    float x[16 * 8], y[16 * 8];
    for (int i = 0; i < batch * 8; i++) x[i] = kt_uniform(-1, 1);
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 2, .dims = {batch, 8}, .device = KILN_DEVICE_CPU};
    kiln_tensor out = {.data = y, .device = KILN_DEVICE_CPU};
    kiln_status st = kiln_session_run(s, &in, 1, &out, 1);
    KT_CHECK(st == KILN_OK, "run at batch %lld: %s", (long long)batch, kiln_last_error());
    if (st != KILN_OK) return 0;
    KT_CHECK(out.rank == 2 && out.dims[0] == batch && out.dims[1] == 8, "output dims");
    int bad = 0;
    for (int i = 0; i < batch * 8; i++) bad += y[i] != (x[i] > 0 ? x[i] : 0) + x[i];
    KT_CHECK(bad == 0, "%d wrong outputs at batch %lld", bad, (long long)batch);
    return 1;
}

static void test_modes_and_cache(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g, 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    kiln_counters c;

    /* graphs off: plain runs */
    KT_CHECK(kiln_session_cudagraphs_mode(s) == KILN_CUDAGRAPHS_OFF, "default mode is off");
    run_and_check(s, 3);
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.runs == 1 && c.captures == 0 && c.replays == 0, "off: runs %llu captures %llu", (unsigned long long)c.runs, (unsigned long long)c.captures);

    /* the global switch turns on per-block graphs */
    kiln_set_cudagraphs_mode(true);
    KT_CHECK(kiln_get_cudagraphs_mode(), "global switch reads back");
    KT_CHECK(kiln_session_cudagraphs_mode(s) == KILN_CUDAGRAPHS_PER_BLOCK, "global on = per block");
    int64_t seq[] = {16, 8, 4, 8, 16};
    for (int i = 0; i < 5; i++) run_and_check(s, seq[i]);
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.captures == 3, "shapes 16,8,4,8,16 record 3 graphs, got %llu", (unsigned long long)c.captures);
    KT_CHECK(c.replays == 5 && c.cache_hits == 2, "replays %llu cache hits %llu", (unsigned long long)c.replays, (unsigned long long)c.cache_hits);
    KT_CHECK(c.warmups == 1, "one warm-up before the session's first capture, got %llu", (unsigned long long)c.warmups);
    kiln_set_cudagraphs_mode(false);

    /* LRU bound: 2 shapes at most */
    KT_OK(kiln_session_set_graph_cache_size(s, 2));
    KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE));
    KT_OK(kiln_session_counters(s, &c));
    uint64_t ev0 = c.evictions, cap0 = c.captures;
    int64_t seq2[] = {1, 2, 3, 1, 2, 3};
    for (int i = 0; i < 6; i++) run_and_check(s, seq2[i]);
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.captures - cap0 == 6, "with room for 2, cycling 3 shapes records every time (%llu)", (unsigned long long)(c.captures - cap0));
    KT_CHECK(c.evictions > ev0, "evictions counted");
    KT_FAILS(kiln_session_set_graph_cache_size(s, 0), KILN_ERR_INVALID_ARGUMENT, "at least 1");

    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
}

static void test_scoped_enable(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g, 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    KT_CHECK(kiln_module_num_segments(m) == 1, "no graph breaks: 1 segment (got %d)", kiln_module_num_segments(m));
    KT_OK(kiln_session_begin_cudagraphs(s));
    KT_CHECK(kiln_session_cudagraphs_mode(s) == KILN_CUDAGRAPHS_PER_BLOCK, "scope without breaks: per block");
    run_and_check(s, 5);
    run_and_check(s, 5);
    KT_OK(kiln_session_end_cudagraphs(s));
    KT_CHECK(kiln_session_cudagraphs_mode(s) == KILN_CUDAGRAPHS_OFF, "scope end restores off");
    KT_FAILS(kiln_session_end_cudagraphs(s), KILN_ERR_INVALID_ARGUMENT, "without a matching begin");
    kiln_counters c;
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.captures == 1 && c.replays == 2 && c.cache_hits == 1, "scope: captures %llu replays %llu",
             (unsigned long long)c.captures, (unsigned long long)c.replays);
    run_and_check(s, 5); /* graphs were freed with the scope: off runs eagerly and correctly */
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
}

static void test_bad_input(void) {
    kiln_graph *g = make_graph();
    kiln_module *m = compile(g, 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    float x[32 * 8] = {0}, y[32 * 8];
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 2, .dims = {32, 8}, .device = KILN_DEVICE_CPU};
    kiln_tensor out = {.data = y, .device = KILN_DEVICE_CPU};
    KT_FAILS(kiln_session_run(s, &in, 1, &out, 1), KILN_ERR_SHAPE, "input 'x': dim 0 is 32, the profile allows [1, 16]");
    in.dims[0] = 2;
    in.dims[1] = 7;
    KT_FAILS(kiln_session_run(s, &in, 1, &out, 1), KILN_ERR_SHAPE, "fixes it to 8");
    in.dims[1] = 8;
    in.dtype = KILN_F16;
    KT_FAILS(kiln_session_run(s, &in, 1, &out, 1), KILN_ERR_DTYPE, "element type f16");
    in.dtype = KILN_F32;
    in.rank = 3;
    KT_FAILS(kiln_session_run(s, &in, 1, &out, 1), KILN_ERR_SHAPE, "has 3 dims");
    in.rank = 2;
    KT_FAILS(kiln_session_run(s, &in, 0, &out, 1), KILN_ERR_INVALID_ARGUMENT, "1 input, 0 given");
    in.data = NULL;
    KT_FAILS(kiln_session_run(s, &in, 1, &out, 1), KILN_ERR_INVALID_ARGUMENT, "no data");
    KT_FAILS(kiln_session_run(NULL, &in, 1, &out, 1), KILN_ERR_INVALID_ARGUMENT, "session");
    run_and_check(s, 2); /* the session stays usable */

    /* runtime-owned output buffer and zero-copy input slot */
    void *slot = NULL;
    KT_OK(kiln_session_input_slot(s, 0, &slot));
    KT_CHECK(slot != NULL, "input slot");
    float *xs = slot;
    for (int i = 0; i < 16; i++) xs[i] = (float)i - 8;
    kiln_tensor in2 = {.data = slot, .dtype = KILN_F32, .rank = 2, .dims = {2, 8}, .device = KILN_DEVICE_CPU};
    kiln_tensor out2 = {0};
    KT_OK(kiln_session_run(s, &in2, 1, &out2, 1));
    KT_CHECK(out2.data != NULL && out2.dims[0] == 2, "runtime-owned output");
    if (out2.data) KT_CHECK(((float *)out2.data)[15] == 14.0f && ((float *)out2.data)[0] == -8.0f, "values through the slot");
    kiln_session_free(s);
    kiln_module_free(m);
    kiln_graph_free(g);
}

static void test_profile_errors(void) {
    kiln_graph *g = make_graph();
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    kiln_module *m = NULL;
    KT_FAILS(kiln_compile(g, &cfg, &m), KILN_ERR_SHAPE, "input 'x' has a dynamic dim 0 ('batch')");
    kiln_input_profile p = {.name = "x", .rank = 2, .min = {4, 8}, .opt = {2, 8}, .max = {16, 8}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    KT_FAILS(kiln_compile(g, &cfg, &m), KILN_ERR_SHAPE, "min <= opt <= max");
    p.opt[0] = 4;
    p.min[1] = 7;
    KT_FAILS(kiln_compile(g, &cfg, &m), KILN_ERR_SHAPE, "fixes it to 8");
    p.min[1] = 8;
    p.name = "nope";
    KT_FAILS(kiln_compile(g, &cfg, &m), KILN_ERR_NOT_FOUND, "no such input (inputs: 'x')");
    KT_CHECK(m == NULL, "no module on failure");
    kiln_graph_free(g);
}

/* An arena larger than the machine's memory: session creation fails cleanly, and the module
 * still serves a session with a sane profile afterwards. */
static void test_huge_arena(void) {
    /* y = relu(x) + x over [a, b] with both dims dynamic: at a = 2^31-1, b = 2^16 each value is
     * 512 TiB, beyond the address space of x86-64 user processes, so even a machine that
     * overcommits memory refuses the arena */
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t dims[2] = {-1, -1};
    const char *names[2] = {"a", "b"};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 2, dims, names));
    const char *in1[] = {"x"}, *out1[] = {"r"}, *in2[] = {"r", "x"}, *out2[] = {"y"};
    KT_OK(kiln_graph_add_node(g, "Relu", "relu", 1, in1, 1, out1, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Add", "add", 2, in2, 1, out2, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.min_block_size = 1;
    kiln_input_profile p = {.name = "x", .rank = 2, .min = {1, 8}, .opt = {4, 8}, .max = {INT32_MAX, 65536}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    kiln_session *s = NULL;
    if (m) {
        KT_FAILS(kiln_session_create(m, &s), KILN_ERR_OUT_OF_MEMORY, "arena");
        KT_CHECK(s == NULL, "no session on failure");
    }
    kiln_module_free(m);
    p.max[0] = (int64_t)INT32_MAX + 1;
    KT_FAILS(kiln_compile(g, &cfg, &m), KILN_ERR_SHAPE, "is larger than");
    p.max[0] = INT32_MAX;
    p.max[1] = INT32_MAX;
    KT_FAILS(kiln_compile(g, &cfg, &m), KILN_ERR_SHAPE, "more than 2^48");
    p.max[0] = 16;
    p.max[1] = 8;
    kiln_module *ok = NULL;
    KT_OK(kiln_compile(g, &cfg, &ok));
    KT_OK(kiln_session_create(ok, &s));
    if (s) run_and_check(s, 2);
    kiln_session_free(s);
    kiln_module_free(ok);
    kiln_graph_free(g);
}

int main(void) {
    kt_seed(1);
    test_modes_and_cache();
    test_scoped_enable();
    test_bad_input();
    test_profile_errors();
    test_huge_arena();
    return kt_finish();
}
