/* Preparing a new shape on helper threads (src/runtime/prepare.c), through the CPU backend with
 * its kernels wrapped: every step is marked prepare_concurrent and the backend gets worker hooks
 * that count bindings and can refuse them. Checked: each step is prepared exactly once per shape,
 * helpers numbered 1..n-1 beside the caller, which prepares the steps not marked first; a
 * failure there is reported first, else the first failing step of the helpers' in step order
 * whichever thread met it, and the session stays usable;
 * refused workers leave the steps to the caller; KILN_PREPARE_THREADS=1 starts no thread; steps
 * that put themselves back (kn_prepare_defer) are prepared again after the rest;
 * outputs match plain C math throughout. */
#include "testlib.h"

#include "build/module.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define N_RELU 8
#define MAX_STEPS 16

static kn_backend test_be;
static kn_kernel wrapped[MAX_STEPS];
static const kn_kernel *original[MAX_STEPS];
static const kn_node *step_node[MAX_STEPS];
static int n_steps;
static pthread_t main_thread;
static atomic_int prepared[MAX_STEPS], off_main[MAX_STEPS];
static atomic_int begins, ends, begin_mask;
static atomic_int refuse_workers;
static int fail_step[2] = {-1, -1};
static atomic_int defer_mask, deferrals[MAX_STEPS]; /* steps that put themselves back while they may */
/* provisional kernels: steps offering one; background prepares wait while hold_bg is set */
static atomic_int prov_mask, quick_tuned_mask, hold_bg, in_background[MAX_STEPS], provisional_made[MAX_STEPS];
static int ran_with[MAX_STEPS]; /* the state kind the last run of each step saw */

enum { TUNED = 1, PROVISIONAL = 2 };
typedef struct wstate {
    int kind;
    void *orig; /* the wrapped kernel's own state */
} wstate;

static int step_of(const kn_node *n) {
    for (int i = 0; i < n_steps; i++)
        if (step_node[i] == n) return i;
    return -1;
}

static kiln_status wrap_state(int i, int kind, const kn_kernel_args *a, void **state) {
    wstate *w = calloc(1, sizeof *w);
    if (!w) return kn_error(KILN_ERR_OUT_OF_MEMORY, "test state");
    w->kind = kind;
    kiln_status st = original[i]->prepare ? original[i]->prepare(a, &w->orig) : KILN_OK;
    if (st != KILN_OK) {
        free(w);
        return st;
    }
    *state = w;
    return KILN_OK;
}

static kiln_status wrapped_prepare(const kn_kernel_args *a, void **state) {
    int i = step_of(a->node);
    if (i < 0) return kn_error(KILN_ERR_INTERNAL, "unknown step");
    if (kn_prepare_in_background()) {
        atomic_fetch_add(&in_background[i], 1);
        while (atomic_load(&hold_bg)) sched_yield();
    }
    atomic_fetch_add(&prepared[i], 1);
    if (!pthread_equal(pthread_self(), main_thread)) atomic_fetch_add(&off_main[i], 1);
    if ((atomic_load(&defer_mask) >> i & 1) && kn_prepare_may_defer()) {
        atomic_fetch_add(&deferrals[i], 1);
        kn_prepare_defer();
        return KILN_OK;
    }
    if (i == fail_step[0] || i == fail_step[1]) return kn_error(KILN_ERR_INVALID_ARGUMENT, "injected failure at step %d", i);
    *state = NULL;
    return wrap_state(i, TUNED, a, state);
}

static kiln_status wrapped_provisional(const kn_kernel_args *a, void **state, int *tuned) {
    int i = step_of(a->node);
    if (i < 0) return kn_error(KILN_ERR_INTERNAL, "unknown step");
    *tuned = atomic_load(&quick_tuned_mask) >> i & 1;
    if (*tuned) return wrap_state(i, TUNED, a, state);
    if (!(atomic_load(&prov_mask) >> i & 1)) return KILN_ERR_UNSUPPORTED;
    KT_CHECK(pthread_equal(pthread_self(), main_thread), "step %d: a provisional state is made by the caller", i);
    atomic_fetch_add(&provisional_made[i], 1);
    return wrap_state(i, PROVISIONAL, a, state);
}

static kiln_status wrapped_run(const kn_kernel_args *a) {
    int i = step_of(a->node);
    if (i < 0) return kn_error(KILN_ERR_INTERNAL, "unknown step");
    const wstate *w = a->state;
    ran_with[i] = w ? w->kind : 0;
    kn_kernel_args inner = *a;
    inner.state = w ? w->orig : NULL;
    return original[i]->run(&inner);
}

static void wrapped_release(void *state) {
    wstate *w = state;
    if (!w) return;
    for (int i = 0; i < n_steps; i++) /* every step's original kernel is the same Relu */
        if (w->orig && original[i]->release) {
            original[i]->release(w->orig);
            break;
        }
    free(w);
}

static kiln_status test_worker_begin(void *ctx, int worker) {
    (void)ctx;
    if (atomic_load(&refuse_workers)) return kn_error(KILN_ERR_DEVICE, "worker %d refused by the test", worker);
    atomic_fetch_add(&begins, 1);
    if (worker >= 1 && worker <= 30) atomic_fetch_or(&begin_mask, 1 << worker);
    return KILN_OK;
}

static void test_worker_end(void *ctx) {
    (void)ctx;
    atomic_fetch_add(&ends, 1);
}

/* x -> Relu -> Relu -> ... (N_RELU), dynamic batch; optimize off keeps one step per node */
static kiln_module *build(void) {
    kiln_graph *g = NULL;
    KT_OK(kiln_graph_create(&g));
    int64_t dims[2] = {-1, 16};
    const char *names[2] = {"batch", NULL};
    KT_OK(kiln_graph_add_input(g, "x", KILN_F32, 2, dims, names));
    char in[16], out[16];
    for (int i = 0; i < N_RELU; i++) {
        snprintf(in, sizeof in, i ? "v%d" : "x", i);
        snprintf(out, sizeof out, i == N_RELU - 1 ? "y" : "v%d", i + 1);
        const char *ins[] = {in}, *outs[] = {out};
        char name[16];
        snprintf(name, sizeof name, "relu%d", i);
        KT_OK(kiln_graph_add_node(g, "Relu", name, 1, ins, 1, outs, 0, NULL));
    }
    KT_OK(kiln_graph_add_output(g, "y"));
    kiln_build_config cfg;
    kiln_build_config_init(&cfg);
    cfg.device = KILN_DEVICE_CPU;
    cfg.optimize = false;
    kiln_input_profile p = {.name = "x", .rank = 2, .min = {1, 16}, .opt = {2, 16}, .max = {8, 16}};
    cfg.profiles = &p;
    cfg.num_profiles = 1;
    kiln_module *m = NULL;
    KT_OK(kiln_compile(g, &cfg, &m));
    kiln_graph_free(g);
    if (!m) return NULL;
    n_steps = m->part.n_steps;
    KT_CHECK(n_steps == N_RELU, "one step per Relu, got %d", n_steps);
    if (n_steps != N_RELU) {
        kiln_module_free(m);
        return NULL;
    }
    for (int i = 0; i < n_steps; i++) {
        original[i] = m->part.steps[i].kernel;
        step_node[i] = &m->graph->nodes[m->part.steps[i].node];
        wrapped[i] = *original[i];
        wrapped[i].prepare = wrapped_prepare;
        wrapped[i].prepare_provisional = wrapped_provisional;
        wrapped[i].run = wrapped_run;
        wrapped[i].release = wrapped_release;
        wrapped[i].prepare_concurrent = 1;
        m->part.steps[i].kernel = &wrapped[i];
    }
    test_be = *m->backend;
    test_be.worker_begin = test_worker_begin;
    test_be.worker_end = test_worker_end;
    m->backend = &test_be;
    return m;
}

static void reset_counts(void) {
    for (int i = 0; i < MAX_STEPS; i++) {
        atomic_store(&prepared[i], 0);
        atomic_store(&off_main[i], 0);
        atomic_store(&deferrals[i], 0);
        atomic_store(&in_background[i], 0);
        atomic_store(&provisional_made[i], 0);
        ran_with[i] = 0;
    }
    atomic_store(&begins, 0);
    atomic_store(&ends, 0);
    atomic_store(&begin_mask, 0);
}

/* Runs at `batch` and checks y = relu(x); returns the run's status. */
static kiln_status run(kiln_session *s, int64_t batch) {
    float x[8 * 16], y[8 * 16];
    for (int i = 0; i < batch * 16; i++) x[i] = kt_uniform(-1, 1);
    kiln_tensor in = {.data = x, .dtype = KILN_F32, .rank = 2, .dims = {batch, 16}, .device = KILN_DEVICE_CPU};
    kiln_tensor out = {.data = y, .device = KILN_DEVICE_CPU};
    kiln_status st = kiln_session_run(s, &in, 1, &out, 1);
    if (st != KILN_OK) return st;
    int bad = 0;
    for (int i = 0; i < batch * 16; i++) bad += y[i] != (x[i] > 0 ? x[i] : 0.0f);
    KT_CHECK(bad == 0, "batch %lld: %d outputs differ from relu(x)", (long long)batch, bad);
    return st;
}

static int count_where(atomic_int *v, int want) {
    int n = 0;
    for (int i = 0; i < n_steps; i++) n += atomic_load(&v[i]) == want;
    return n;
}

static void test_threads(kiln_module *m) {
    setenv("KILN_PREPARE_THREADS", "4", 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    reset_counts();
    KT_OK(run(s, 2));
    KT_CHECK(count_where(prepared, 1) == n_steps, "every step prepared once at a new shape");
    KT_CHECK(atomic_load(&begins) == 3 && atomic_load(&ends) == 3, "3 helpers bound and unbound, got %d / %d",
             atomic_load(&begins), atomic_load(&ends));
    KT_CHECK(atomic_load(&begin_mask) == 0xe, "helpers numbered 1..3 (the caller is 0), mask 0x%x",
             atomic_load(&begin_mask));
    /* a shape seen before prepares nothing; a new one prepares again */
    reset_counts();
    KT_OK(run(s, 2));
    KT_CHECK(count_where(prepared, 0) == n_steps, "a cached shape prepares nothing");
    KT_OK(run(s, 5));
    KT_CHECK(count_where(prepared, 1) == n_steps, "batch 5 prepares every step once");
    kiln_session_free(s);
}

static void test_failure_order(kiln_module *m) {
    setenv("KILN_PREPARE_THREADS", "4", 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    fail_step[0] = 5;
    fail_step[1] = 2;
    for (int rep = 0; rep < 20; rep++) { /* whichever thread meets which failure first */
        reset_counts();
        KT_FAILS(run(s, 3), KILN_ERR_INVALID_ARGUMENT, "injected failure at step 2");
    }
    fail_step[0] = fail_step[1] = -1;
    reset_counts();
    KT_OK(run(s, 3));
    KT_CHECK(count_where(prepared, 1) == n_steps, "after failures the same shape prepares and runs");
    kiln_session_free(s);
}

/* Steps 0 and 4 stay with the caller (not prepare_concurrent), which prepares them before the
 * helpers start: a failure there is reported first; otherwise the first failing step among the
 * helpers' in step order. */
static void test_mixed(kiln_module *m) {
    setenv("KILN_PREPARE_THREADS", "4", 1);
    wrapped[0].prepare_concurrent = wrapped[4].prepare_concurrent = 0;
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    reset_counts();
    KT_OK(run(s, 2));
    KT_CHECK(count_where(prepared, 1) == n_steps, "mixed: every step prepared once");
    KT_CHECK(atomic_load(&off_main[0]) == 0 && atomic_load(&off_main[4]) == 0, "mixed: the caller's steps stay on it");
    static const int fails[3][3] = {{4, 6, 4}, {1, 4, 4}, {7, 1, 1}}; /* failing steps, the one reported */
    for (int c = 0; c < 3; c++) {
        fail_step[0] = fails[c][0];
        fail_step[1] = fails[c][1];
        char want[64];
        snprintf(want, sizeof want, "injected failure at step %d", fails[c][2]);
        for (int rep = 0; rep < 10; rep++) {
            reset_counts();
            KT_FAILS(run(s, 3 + rep % 2), KILN_ERR_INVALID_ARGUMENT, want);
        }
    }
    fail_step[0] = fail_step[1] = -1;
    KT_OK(run(s, 3));
    kiln_session_free(s);
    wrapped[0].prepare_concurrent = wrapped[4].prepare_concurrent = 1;
}

static void test_refused_workers(kiln_module *m) {
    setenv("KILN_PREPARE_THREADS", "3", 1);
    atomic_store(&refuse_workers, 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    reset_counts();
    KT_OK(run(s, 4));
    KT_CHECK(count_where(prepared, 1) == n_steps, "steps prepared once when no helper binds");
    KT_CHECK(count_where(off_main, 0) == n_steps, "the caller prepared them all");
    KT_CHECK(atomic_load(&ends) == 0, "no worker_end without a worker_begin");
    atomic_store(&refuse_workers, 0);
    kiln_session_free(s);
}

static void test_one_thread(kiln_module *m) {
    setenv("KILN_PREPARE_THREADS", "1", 1);
    kiln_session *s = NULL;
    KT_OK(kiln_session_create(m, &s));
    reset_counts();
    KT_OK(run(s, 6));
    KT_CHECK(count_where(prepared, 1) == n_steps && count_where(off_main, 0) == n_steps,
             "KILN_PREPARE_THREADS=1: the caller prepares every step");
    KT_CHECK(atomic_load(&begins) == 0, "KILN_PREPARE_THREADS=1: no worker bound");
    kiln_session_free(s);
}

/* Steps 1, 2 and 6 put themselves back whenever they may (as a convolution does when its shared
 * plan is being built on another thread): each is prepared again, once, after the rest, when it
 * may not defer; the run is right; a failure of a deferred step still comes first in step order.
 * On one thread nothing may defer. */
static void test_deferred(kiln_module *m) {
    setenv("KILN_PREPARE_THREADS", "4", 1);
    atomic_store(&defer_mask, 1 << 1 | 1 << 2 | 1 << 6);
    kiln_session *s = NULL;
    for (int rep = 0; rep < 10; rep++) { /* a fresh session each time: every shape is new */
        KT_OK(kiln_session_create(m, &s));
        reset_counts();
        KT_OK(run(s, 1 + rep % 8));
        int ok = 1;
        for (int i = 0; i < n_steps; i++) {
            int d = atomic_load(&defer_mask) >> i & 1;
            ok &= atomic_load(&deferrals[i]) == d && atomic_load(&prepared[i]) == 1 + d;
        }
        KT_CHECK(ok, "batch %d: steps 1, 2, 6 deferred once and prepared twice, the others once", 1 + rep % 8);
        kiln_session_free(s);
    }
    KT_OK(kiln_session_create(m, &s));
    fail_step[0] = 5;
    fail_step[1] = 2; /* deferred, so it fails after step 5 has: still reported first */
    for (int rep = 0; rep < 10; rep++) {
        reset_counts();
        KT_FAILS(run(s, 3), KILN_ERR_INVALID_ARGUMENT, "injected failure at step 2");
    }
    fail_step[0] = fail_step[1] = -1;
    kiln_session_free(s);
    setenv("KILN_PREPARE_THREADS", "1", 1);
    KT_OK(kiln_session_create(m, &s));
    reset_counts();
    KT_OK(run(s, 2));
    KT_CHECK(count_where(deferrals, 0) == n_steps && count_where(prepared, 1) == n_steps,
             "one thread: no step may defer, each is prepared once");
    kiln_session_free(s);
    atomic_store(&defer_mask, 0);
}

/* How many steps' last run saw a state of this kind, among the steps in mask (in) or not (out). */
static int ran_kind(int mask, int in, int kind) {
    int n = 0;
    for (int i = 0; i < n_steps; i++)
        if ((mask >> i & 1) == in) n += ran_with[i] == kind;
    return n;
}

static int popcount(int v) {
    int n = 0;
    for (; v; v &= v - 1) n++;
    return n;
}

static void test_provisional(kiln_module *m) {
    setenv("KILN_PREPARE_THREADS", "4", 1);
    const int mask = 1 << 1 | 1 << 3 | 1 << 4 | 1 << 6;
    const int np = popcount(mask), rest = N_RELU - np;
    atomic_store(&prov_mask, mask);
    kiln_session *s = NULL;
    kiln_counters c;
    KT_OK(kiln_session_create(m, &s));
    KT_OK(kiln_session_set_cudagraphs_mode(s, KILN_CUDAGRAPHS_WHOLE));
    KT_OK(kiln_session_set_provisional_kernels(s, true));
    /* the background preparation is held: two runs on the provisional states */
    reset_counts();
    atomic_store(&hold_bg, 1);
    KT_OK(run(s, 2));
    KT_CHECK(ran_kind(mask, 1, PROVISIONAL) == np && ran_kind(mask, 0, TUNED) == rest,
             "first run: the %d steps with a provisional kernel ran it, the others their tuned state", np);
    KT_OK(run(s, 2));
    KT_CHECK(ran_kind(mask, 1, PROVISIONAL) == np, "held: the second run replays the provisional states");
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.provisional == 1 && c.upgrades == 0 && c.captures == 1, "held: 1 provisional shape, no upgrade, 1 capture");
    /* released and waited for: the next run swaps in and records the shape again */
    atomic_store(&hold_bg, 0);
    KT_OK(kiln_session_finish_preparation(s));
    KT_OK(run(s, 2));
    KT_CHECK(ran_kind(mask, 1, TUNED) == np && ran_kind(mask, 0, TUNED) == rest, "after the swap every step runs tuned");
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.upgrades == 1 && c.captures == 2, "one upgrade, the shape recorded again (captures %llu)",
             (unsigned long long)c.captures);
    int ok = 1;
    for (int i = 0; i < n_steps; i++) {
        int p = mask >> i & 1;
        ok &= atomic_load(&prepared[i]) == 1 && atomic_load(&provisional_made[i]) == p &&
              atomic_load(&in_background[i]) == p && (!p || atomic_load(&off_main[i]) == 1);
    }
    KT_CHECK(ok, "each step prepared once: the provisional ones in the background on helpers, the rest before the first run");
    /* a new shape while a background preparation may still run: that one ends first */
    reset_counts();
    KT_OK(run(s, 3));
    KT_OK(run(s, 2));
    KT_CHECK(ran_kind(mask, 1, TUNED) == np, "batch 2 stays tuned after batch 3 started");
    KT_OK(kiln_session_finish_preparation(s));
    KT_OK(run(s, 3));
    KT_CHECK(ran_kind(mask, 1, TUNED) == np, "batch 3 tuned after its preparation");
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(c.provisional == 2 && c.upgrades == 2, "two provisional shapes, both upgraded");
    /* a background failure: the step keeps its provisional kernel, runs stay right, no error */
    fail_step[0] = 3;
    KT_OK(run(s, 5));
    KT_OK(kiln_session_finish_preparation(s));
    KT_OK(run(s, 5));
    KT_CHECK(ran_with[3] == PROVISIONAL && ran_kind(mask & ~(1 << 3), 1, TUNED) == np - 1,
             "a failed background prepare leaves that step provisional, the others tuned");
    fail_step[0] = -1;
    /* freed while the background still works (released just before) */
    KT_OK(run(s, 7));
    kiln_session_free(s);
    /* helpers refused: the waiting caller prepares what they left, as in the background */
    atomic_store(&refuse_workers, 1);
    KT_OK(kiln_session_create(m, &s));
    KT_OK(kiln_session_set_provisional_kernels(s, true));
    reset_counts();
    KT_OK(run(s, 4));
    KT_OK(kiln_session_finish_preparation(s));
    KT_OK(run(s, 4));
    KT_CHECK(ran_kind(mask, 1, TUNED) == np && count_where(off_main, 0) == n_steps,
             "refused helpers: the caller prepared the held-back steps and they were swapped in");
    atomic_store(&refuse_workers, 0);
    kiln_session_free(s);
    /* quick states that are the tuned ones (kiln's own kernel stored as the tactic): taken as they
     * are, never prepared, in the background or otherwise */
    atomic_store(&quick_tuned_mask, 1 << 2 | 1 << 5);
    KT_OK(kiln_session_create(m, &s));
    KT_OK(kiln_session_set_provisional_kernels(s, true));
    reset_counts();
    KT_OK(run(s, 6));
    KT_OK(kiln_session_finish_preparation(s));
    KT_OK(run(s, 6));
    KT_CHECK(atomic_load(&prepared[2]) == 0 && atomic_load(&prepared[5]) == 0 && ran_with[2] == TUNED &&
                 ran_with[5] == TUNED && ran_kind(mask, 1, TUNED) == np,
             "quick tuned states: steps 2 and 5 never prepared and run tuned; the provisional ones swapped");
    kiln_session_free(s);
    atomic_store(&quick_tuned_mask, 0);
    /* one thread: no background, every step tuned from the first run */
    setenv("KILN_PREPARE_THREADS", "1", 1);
    KT_OK(kiln_session_create(m, &s));
    KT_OK(kiln_session_set_provisional_kernels(s, true));
    reset_counts();
    KT_OK(run(s, 2));
    KT_OK(kiln_session_counters(s, &c));
    KT_CHECK(ran_kind(mask, 1, TUNED) == np && count_where(provisional_made, 0) == n_steps && c.provisional == 0,
             "KILN_PREPARE_THREADS=1: no provisional kernels");
    kiln_session_free(s);
    atomic_store(&prov_mask, 0);
}

int main(void) {
    kt_seed(7);
    main_thread = pthread_self();
    kiln_module *m = build();
    if (m) {
        test_threads(m);
        test_failure_order(m);
        test_mixed(m);
        test_refused_workers(m);
        test_one_thread(m);
        test_deferred(m);
        test_provisional(m);
        m->backend = kn_backend_cpu(); /* the module frees through its own backend */
        for (int i = 0; i < n_steps; i++) m->part.steps[i].kernel = original[i];
        kiln_module_free(m);
    }
    return kt_finish();
}
