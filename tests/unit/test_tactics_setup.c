/* The tactic timer's per-shape setup check (src/build/tactics.c), through CPU modules whose Relu
 * steps get a fake kernel with three tactics: 0 is slow, 1 is the fastest but its first run at each
 * new batch size stalls (a kernel set up per shape, family "fake:famA"), 2 is in between and sets
 * nothing up. Built to avoid runtime compilation, tactic 1 is left out on every step, also where
 * the family's setup at that shape was already done by an earlier step; built without, or for a
 * static shape, the fastest wins. Outputs are checked against relu(x) with the chosen tactics. */
#include "testlib.h"

#include "build/module.h"
#include "runtime/runtime.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_RELU 3
#define MAX_BATCH 64

static int setup_done[MAX_BATCH + 1]; /* family A set up at this batch (process-wide, like a library's) */
static int family_a_runs_slow;

typedef struct fake_state {
    int tactic;
} fake_state;

static void spin_ms(double ms) {
    double t0 = kn_now_ms();
    while (kn_now_ms() - t0 < ms) {
    }
}

static int fake_num_tactics(const kn_kernel_args *a) {
    (void)a;
    return 3;
}

static kiln_status fake_prepare(const kn_kernel_args *a, void **state) {
    fake_state *s = kn_calloc(1, sizeof *s);
    if (!s) return kn_error(KILN_ERR_OUT_OF_MEMORY, "fake");
    s->tactic = a->tactic;
    *state = s;
    return KILN_OK;
}

static void fake_release(void *state) { kn_free(state); }

static kiln_status fake_run(const kn_kernel_args *a) {
    const fake_state *s = a->state;
    if (!s) return kn_error(KILN_ERR_INTERNAL, "fake kernel not prepared");
    int64_t batch = a->in[0].dims[0];
    if (batch < 1 || batch > MAX_BATCH) return kn_error(KILN_ERR_INTERNAL, "fake kernel: batch %lld", (long long)batch);
    if (s->tactic == 1 && !setup_done[batch]) {
        spin_ms(3.0); /* the first run of family A at this shape */
        setup_done[batch] = 1;
        family_a_runs_slow++;
    }
    spin_ms(s->tactic == 0 ? 0.3 : s->tactic == 1 ? 0.05 : 0.15);
    const float *x = a->in[0].data;
    float *y = a->out[0].data;
    for (int64_t i = 0; i < kn_tensor_numel(&a->out[0]); i++) y[i] = x[i] > 0 ? x[i] : 0;
    return KILN_OK;
}

static int fake_tactic_key(const void *state, char *buf, size_t cap) {
    const fake_state *s = state;
    return snprintf(buf, cap, "fake:t%d", s->tactic);
}

static int fake_setup_family(const void *state, char *buf, size_t cap) {
    const fake_state *s = state;
    return snprintf(buf, cap, s->tactic == 1 ? "fake:famA" : "fake:t%d", s->tactic);
}

static int fake_compiles(const void *state) {
    (void)state;
    return 0;
}

static const kn_kernel fake = {.name = "test.fake_relu", .run = fake_run, .prepare = fake_prepare,
                               .release = fake_release, .num_tactics = fake_num_tactics,
                               .tactic_key = fake_tactic_key, .compiles_per_shape = fake_compiles,
                               .setup_family = fake_setup_family};

/* A chain of N_RELU Relus on [batch, 256], batch min..max (opt 2 where the range allows). */
static kiln_module *build(int64_t min, int64_t max, kiln_build_config *cfg, kiln_input_profile *p) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t dims[2] = {min == max ? min : -1, 256};
    const char *names[2] = {"batch", NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 2, dims, names));
    char in[16], out[16], name[16];
    for (int i = 0; i < N_RELU; i++) {
        snprintf(in, sizeof in, i ? "v%d" : "x", i);
        snprintf(out, sizeof out, i == N_RELU - 1 ? "y" : "v%d", i + 1);
        snprintf(name, sizeof name, "relu%d", i);
        const char *ins[] = {in}, *outs[] = {out};
        KT_OK(kiln_graph_add_node(g, "Relu", name, 1, ins, 1, outs, 0, NULL));
    }
    KT_OK(kiln_graph_add_output(g, "y"));
    kiln_build_config_init(cfg);
    cfg->device = KILN_DEVICE_CPU;
    cfg->optimize = false;
    cfg->time_tactics = false; /* timed below, once the fake kernel is in */
    int64_t opt = min < 2 && max >= 2 ? 2 : min;
    *p = (kiln_input_profile){.name = "x", .rank = 2, .min = {min, 256}, .opt = {opt, 256}, .max = {max, 256}};
    cfg->profiles = p;
    cfg->num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, cfg, &m));
    kiln_graph_free(g);
    return m;
}

/* Builds, swaps the fake kernel in, times tactics and writes the chosen ones to tactics[]. */
static void choose(int64_t min, int64_t max, int avoid_rtc, int *tactics) {
    kiln_build_config cfg;
    kiln_input_profile p;
    kiln_module *m = build(min, max, &cfg, &p);
    for (int i = 0; i < N_RELU; i++) tactics[i] = -1;
    if (!m) return;
    KT_CHECK(m->part.n_steps == N_RELU, "one step per Relu, got %d", m->part.n_steps);
    const kn_kernel *orig[N_RELU];
    for (int i = 0; i < m->part.n_steps && i < N_RELU; i++) {
        orig[i] = m->part.steps[i].kernel;
        m->part.steps[i].kernel = &fake;
    }
    m->avoid_runtime_compilation = avoid_rtc;
    memset(setup_done, 0, sizeof setup_done);
    KT_OK(kn_time_tactics(m, &cfg));
    for (int i = 0; i < m->part.n_steps && i < N_RELU; i++) tactics[i] = m->part.steps[i].tactic;
    /* the module runs with its choices, at the opt shape and at a new one */
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    for (int64_t b = min; s && b <= max && b <= min + 1; b++) {
        float x[4 * 256], y[4 * 256];
        for (int i = 0; i < b * 256; i++) x[i] = kt_uniform(-1, 1);
        kiln_tensor tin = {.data = x, .dtype = KILN_F32, .rank = 2, .dims = {b, 256}, .device = KILN_DEVICE_CPU};
        kiln_tensor tout = {.data = y, .device = KILN_DEVICE_CPU};
        KT_OK(kiln_session_run(s, &tin, 1, &tout, 1));
        int bad = 0;
        for (int i = 0; i < b * 256; i++) bad += y[i] != (x[i] > 0 ? x[i] : 0.0f);
        KT_CHECK(bad == 0, "batch %lld: %d outputs differ from relu(x)", (long long)b, bad);
    }
    kiln_session_free(s);
    for (int i = 0; i < m->part.n_steps && i < N_RELU; i++) m->part.steps[i].kernel = orig[i];
    kiln_module_free(m);
}

int main(void) {
    kt_seed(3);
    int t[N_RELU];
    choose(1, 4, 1, t);
    for (int i = 0; i < N_RELU; i++)
        KT_CHECK(t[i] == 2, "avoid runtime compilation, dynamic batch: step %d takes tactic 2 (no per-shape setup), got %d",
                 i, t[i]);
    choose(1, 4, 0, t);
    for (int i = 0; i < N_RELU; i++)
        KT_CHECK(t[i] == 1, "default build: step %d takes the fastest tactic 1, got %d", i, t[i]);
    family_a_runs_slow = 0;
    choose(3, 3, 1, t);
    for (int i = 0; i < N_RELU; i++)
        KT_CHECK(t[i] == 1, "static shape: no other shape can come, step %d takes tactic 1, got %d", i, t[i]);
    return kt_finish();
}
