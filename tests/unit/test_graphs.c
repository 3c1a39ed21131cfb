/* The graph manager on every backend present (the CPU recorder always; CUDA graphs when a GPU
 * is usable): outputs bitwise identical with graphs off, per block and whole module, for
 * ResNet-18 and the seed's graph-break model; shape sequence 16, 8, 4, 8, 16 records 3 graphs and
 * replays the rest; the LRU bound; two sessions on two threads. Environment: KILN_TEST_LRU_LOG
 * (kiln's log over the LRU check); for racecheck runs KILN_TEST_NO_TIMING (no tactic timing),
 * KILN_TEST_NO_RTC (no cuDNN engines compiled per shape), KILN_TEST_SPATIAL (image size) and
 * KILN_TEST_MODELS=seed (only the graph-break model: racecheck spends hours in cuDNN's ResNet
 * kernels, which are not kiln's; test_cuda_ops and test_cuda_backend race-check kiln's own). */
#include "testlib.h"
#include "resnet.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* the largest |a - b|: the messages of the bitwise checks say how far apart the outputs are */
static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = a[i] > b[i] ? (double)a[i] - b[i] : (double)b[i] - a[i];
        if (d > m || d != d) m = d;
    }
    return m;
}

typedef struct model_case {
    const char *name;
    kiln_graph *g;
    const char *input;
    int rank;
    int64_t dims[4]; /* dims[0] is the batch */
    int64_t out_per_item;
} model_case;

/* relu((x + 2) * 0.5), the seed's SampleModel */
static kiln_graph *seed_model(int64_t spatial) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t d[4] = {-1, 3, spatial, spatial};
    const char *dn[4] = {"batch", NULL, NULL, NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 4, d, dn));
    float two = 2.0f, half = 0.5f;
    KT_OK(kiln_graph_add_initializer(g, "two", KILN_F32, 0, NULL, &two));
    KT_OK(kiln_graph_add_initializer(g, "half", KILN_F32, 0, NULL, &half));
    const char *a_in[] = {"x", "two"}, *a_out[] = {"a"};
    const char *m_in[] = {"a", "half"}, *m_out[] = {"m"};
    const char *r_in[] = {"m"}, *r_out[] = {"y"};
    KT_OK(kiln_graph_add_node(g, "Add", "add", 2, a_in, 1, a_out, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Mul", "mul", 2, m_in, 1, m_out, 0, NULL));
    KT_OK(kiln_graph_add_node(g, "Relu", "relu", 1, r_in, 1, r_out, 0, NULL));
    KT_OK(kiln_graph_add_output(g, "y"));
    return g;
}

static kiln_module *build(kiln_graph *g, kiln_device dev, int64_t spatial, int forced_mul) {
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = dev;
    /* KILN_TEST_NO_TIMING=1: tactic 0 everywhere, for runs under compute-sanitizer's racecheck,
     * where timing every cuDNN tactic alone takes longer than the rest of the test */
    const char *nt = getenv("KILN_TEST_NO_TIMING");
    if (nt && *nt && *nt != '0') cfg.time_tactics = false;
    const char *nr = getenv("KILN_TEST_NO_RTC"); /* and no cuDNN engines compiled per shape */
    if (nr && *nr && *nr != '0') cfg.avoid_runtime_compilation = true;
    const char *ops[] = {"Mul"};
    if (forced_mul) {
        cfg.fallback_ops = ops;
        cfg.num_fallback_ops = 1;
        cfg.min_block_size = 1;
    }
    kiln_input_profile p = {.name = "x", .rank = 4, .min = {1, 3, spatial, spatial},
                            .opt = {8, 3, spatial, spatial}, .max = {16, 3, spatial, spatial}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    return m;
}

static void fill_input(float *x, int64_t n, uint64_t seed) {
    kt_seed(seed);
    kt_fill_uniform(x, n, -1, 1);
}

static kiln_status run_once(kiln_session *s, int64_t batch, int64_t spatial, const float *x, float *y) {
    kiln_tensor in = {.data = (void *)x, .dtype = KILN_F32, .rank = 4, .dims = {batch, 3, spatial, spatial},
                      .device = KILN_DEVICE_CPU};
    kiln_tensor out = {.data = y, .device = KILN_DEVICE_CPU};
    return kiln_session_run(s, &in, 1, &out, 1);
}

/* Runs the shape sequence in one mode; returns all outputs concatenated. */
static float *run_sequence(kiln_module *m, kiln_cudagraphs_mode mode, const int64_t *seq, int n,
                           int64_t spatial, int64_t out_per_item, const float *x, kiln_counters *c) {
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    if (!s) return NULL;
    KT_OK(kiln_session_set_cudagraphs_mode(s, mode));
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += seq[i] * out_per_item;
    float *y = calloc((size_t)total, sizeof *y);
    int64_t off = 0;
    for (int i = 0; i < n && y; i++) {
        KT_OK(run_once(s, seq[i], spatial, x, y + off));
        off += seq[i] * out_per_item;
    }
    KT_OK(kiln_session_counters(s, c));
    kiln_session_free(s);
    return y;
}

static void check_modes(const char *what, kiln_module *m, int64_t spatial, int64_t out_per_item, int per_block_graphs) {
    static const int64_t seq[5] = {16, 8, 4, 8, 16};
    float *x = malloc((size_t)(16 * 3 * spatial * spatial) * sizeof *x);
    fill_input(x, 16 * 3 * spatial * spatial, 7);
    int64_t total = 52 * out_per_item;
    kiln_counters c[3];
    float *y[3];
    for (int mode = 0; mode < 3; mode++)
        y[mode] = run_sequence(m, (kiln_cudagraphs_mode)mode, seq, 5, spatial, out_per_item, x, &c[mode]);
    if (!y[0] || !y[1] || !y[2]) goto done;
    KT_CHECK(memcmp(y[0], y[1], (size_t)total * sizeof(float)) == 0, "%s: per-block graphs differ from eager by up to %g", what,
             max_diff(y[0], y[1], total));
    KT_CHECK(memcmp(y[0], y[2], (size_t)total * sizeof(float)) == 0, "%s: whole-module graph differs from eager by up to %g", what,
             max_diff(y[0], y[2], total));
    KT_CHECK(c[0].captures == 0 && c[0].replays == 0, "%s: graphs off records nothing", what);
    KT_CHECK(c[2].captures == 3, "%s whole: 16,8,4,8,16 records 3 graphs, got %llu", what, (unsigned long long)c[2].captures);
    KT_CHECK(c[2].replays == 5 && c[2].cache_hits == 2, "%s whole: replays %llu hits %llu", what,
             (unsigned long long)c[2].replays, (unsigned long long)c[2].cache_hits);
    KT_CHECK(c[1].captures == (uint64_t)(3 * per_block_graphs), "%s per block: %d graphs per shape, got %llu captures",
             what, per_block_graphs, (unsigned long long)c[1].captures);
    KT_CHECK(c[1].eager_fallbacks == 0 && c[2].eager_fallbacks == 0, "%s: no capture failed", what);
done:
    for (int i = 0; i < 3; i++) free(y[i]);
    free(x);
}

typedef struct thread_job {
    kiln_module *m;
    int64_t spatial, out_per_item;
    const float *x;
    float *y;
    kiln_status st;
} thread_job;

static void *thread_main(void *p) {
    thread_job *j = p;
    kiln_session *s = NULL;
    j->st = kiln_session_create(j->m, &s);
    if (j->st != KILN_OK) return NULL;
    kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE);
    for (int r = 0; r < 4 && j->st == KILN_OK; r++) j->st = run_once(s, 4, j->spatial, j->x, j->y);
    kiln_session_free(s);
    return NULL;
}

static void check_threads(kiln_module *m, int64_t spatial, int64_t out_per_item) {
    int64_t n_in = 4 * 3 * spatial * spatial;
    float *x = malloc((size_t)n_in * sizeof *x), *ref = malloc((size_t)(4 * out_per_item) * sizeof *ref);
    fill_input(x, n_in, 11);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    KT_OK(run_once(s, 4, spatial, x, ref));
    kiln_session_free(s);
    thread_job j[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        j[i] = (thread_job){m, spatial, out_per_item, x, malloc((size_t)(4 * out_per_item) * sizeof(float)), KILN_OK};
        pthread_create(&t[i], NULL, thread_main, &j[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        KT_CHECK(j[i].st == KILN_OK, "thread %d: %s", i, kiln_last_error());
        KT_CHECK(memcmp(j[i].y, ref, (size_t)(4 * out_per_item) * sizeof(float)) == 0, "thread %d output differs by up to %g", i,
                 max_diff(j[i].y, ref, 4 * out_per_item));
        free(j[i].y);
    }
    free(x);
    free(ref);
}

static void check_lru(kiln_module *m, int64_t spatial, int64_t out_per_item) {
    /* KILN_TEST_LRU_LOG=2: kiln's verbose log over this check only (why an update is refused) */
    const char *lvl = getenv("KILN_TEST_LRU_LOG");
    if (lvl) kiln_set_log_level(atoi(lvl));
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE));
    KT_OK(kiln_session_set_graph_cache_size(s, 2));
    float *x = malloc((size_t)(3 * 3 * spatial * spatial) * sizeof *x), *y = malloc((size_t)(3 * out_per_item) * sizeof *y);
    fill_input(x, 3 * 3 * spatial * spatial, 3);
    static const int64_t seq[7] = {1, 2, 1, 2, 3, 1, 3};
    for (int i = 0; i < 7; i++) KT_OK(run_once(s, seq[i], spatial, x, y));
    kiln_counters c;
    KT_OK(kiln_session_counters(s, &c));
    /* 1,2 record; 1,2 hit; 3 evicts 1; 1 evicts 2 and records; 3 hits */
    KT_CHECK(c.captures == 4 && c.evictions == 2 && c.cache_hits == 3, "LRU: captures %llu evictions %llu hits %llu",
             (unsigned long long)c.captures, (unsigned long long)c.evictions, (unsigned long long)c.cache_hits);
    /* the two recordings after an eviction refresh the evicted shape's graph in place */
    KT_CHECK(c.updates == 2, "LRU: recordings after evictions update the evicted graph in place, got %llu updates",
             (unsigned long long)c.updates);
    /* and the refreshed graphs compute the right thing: compare with an eager session */
    kiln_session *e = NULL;
    KT_OK(kiln_session_create(m, &e));
    float *ye = malloc((size_t)(3 * out_per_item) * sizeof *ye);
    for (int b = 1; b <= 3; b++) {
        KT_OK(run_once(s, b, spatial, x, y));
        KT_OK(run_once(e, b, spatial, x, ye));
        KT_CHECK(memcmp(y, ye, (size_t)(b * out_per_item) * sizeof *y) == 0, "LRU: batch %d after updates differs from eager by up to %g", b,
                 max_diff(y, ye, b * out_per_item));
    }
    free(ye);
    kiln_session_free(e);
    kiln_session_free(s);
    free(x);
    free(y);
    if (lvl) kiln_set_log_level(0);
}

static void run_backend(kiln_device dev, const char *label) {
    int64_t spatial = dev == KILN_DEVICE_CUDA ? 224 : 32; /* keep the CPU run short */
    /* KILN_TEST_SPATIAL=N: another image size (racecheck did not get through one batch-16 run of
     * ResNet-18 at 224x224 in 400 s) */
    const char *sp = getenv("KILN_TEST_SPATIAL");
    if (sp && atoi(sp) >= 32 && atoi(sp) <= 1024) spatial = atoi(sp);
    printf("backend %s (ResNet-18 at %lldx%lld)\n", label, (long long)spatial, (long long)spatial);
    const char *models = getenv("KILN_TEST_MODELS");
    int resnet = !models || strcmp(models, "seed") != 0;
    if (!resnet) printf("KILN_TEST_MODELS=seed: the ResNet-18 checks are skipped\n");
    kiln_graph *rn = NULL;
    if (resnet) KT_OK(kiln_resnet_build(18, spatial, 0, &rn));
    kiln_module *m = rn ? build(rn, dev, spatial, 0) : NULL;
    if (m) {
        KT_CHECK(kiln_module_num_segments(m) == 1, "ResNet-18 is one engine block, got %d segments", kiln_module_num_segments(m));
        check_modes("resnet18", m, spatial, 1000, 1);
        check_lru(m, spatial, 1000);
        check_threads(m, spatial, 1000);
    }
    kiln_module_free(m);
    kiln_graph_free(rn);

    kiln_graph *sg = seed_model(spatial);
    kiln_module *sm = build(sg, dev, spatial, 1);
    if (sm) {
        KT_CHECK(kiln_module_num_segments(sm) == 3 && kiln_module_num_engine_blocks(sm) == 2,
                 "seed model: engine, fallback, engine (got %d segments)", kiln_module_num_segments(sm));
        check_modes("seed graph-break", sm, spatial, 3 * spatial * spatial, 2);
        /* values: relu((x + 2) * 0.5) */
        kiln_session *s = NULL;
        KT_OK(kiln_session_create(sm, &s));
        KT_OK(kiln_session_begin_cudagraphs(s));
        KT_CHECK(kiln_session_cudagraphs_mode(s) == KILN_CUDAGRAPHS_WHOLE, "scope with breaks: whole module");
        int64_t n = 2 * 3 * spatial * spatial;
        float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
        fill_input(x, n, 5);
        for (int r = 0; r < 3; r++) KT_OK(run_once(s, 2, spatial, x, y));
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            float want = (x[i] + 2.0f) * 0.5f;
            bad += y[i] != (want > 0 ? want : 0);
        }
        KT_CHECK(bad == 0, "seed model: %d wrong values", bad);
        KT_OK(kiln_session_end_cudagraphs(s));
        free(x);
        free(y);
        kiln_session_free(s);
    }
    kiln_module_free(sm);
    kiln_graph_free(sg);
}

int main(void) {
    run_backend(KILN_DEVICE_CPU, "cpu");
    if (kiln_cuda_available()) run_backend(KILN_DEVICE_CUDA, "cuda");
    else printf("SKIP: no CUDA device: the CUDA-graph half of this test did not run\n");
    return kt_finish();
}
