/* Preparing a shape's steps: kernels marked prepare_concurrent (cuDNN plan finalization, 0.1-0.4
 * ms a convolution) are spread over helper threads that the backend binds to its device and to
 * library handles of their own; the rest run first, on the calling thread. Among the concurrent
 * steps a failure is reported for the first failing one in step order, whichever thread met it,
 * so the message does not depend on the schedule. A step that would wait on work another thread
 * is doing (a cuDNN plan shared with a neighbour) puts itself back and is prepared after the
 * rest, so the thread builds something else meanwhile. docs/DESIGN.md, "Preparing a new shape".
 *
 * With provisional kernels on, a concurrent step that has a provisional state takes it on the
 * calling thread and its prepare goes to a background job: helper threads that outlive the call
 * and write the tuned states aside, swapped in by kn_prepare_background_end at a later run.
 * docs/DESIGN.md, "Provisional kernels". */
#include "runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

/* Below this many concurrent steps the threads cost more than they save. */
#define KN_PREP_MIN_CONCURRENT 4
/* A step of the calling thread slower than this to prepare is logged (-v). */
#define KN_PREP_SLOW_MS 0.1

typedef struct kn_prep_job {
    kiln_session *s;
    kn_instance *in;
    const int *steps; /* step indices whose prepare may run concurrently */
    int n;
    void **states;    /* per entry, where its prepare writes; NULL: the instance's kstate */
    int background;   /* the helpers run after the call returns (kn_prepare_in_background) */
    atomic_int next;   /* the next entry of steps to take */
    /* entries whose prepare put itself back (kn_prepare_defer): taken again once `next` runs out */
    int *deferred;
    atomic_char *deferred_set; /* per slot of deferred: written */
    atomic_int n_deferred, next_deferred;
    kiln_status *st;   /* per entry; KILN_OK until it fails */
    char **msg;        /* per entry, the failing thread's message */
    atomic_char *done; /* per entry: prepared (successfully or not) */
} kn_prep_job;

typedef struct kn_prep_worker {
    kn_prep_job *job;
    int index; /* 1..threads-1; the caller is worker 0 */
    pthread_t thread;
    int started;
    atomic_int *running; /* background: helpers still working, counted down as each returns */
    struct kn_prep_worker *all; /* worker 1 starts workers 2..n_all-1 (kn_prep_spawn) */
    int n_all;
} kn_prep_worker;

/* A shape's background preparation (provisional kernels): at most one per session. */
struct kn_prep_bg {
    kn_prep_job j;
    kn_instance *in;
    int *steps;
    kn_prep_worker *w;
    int threads; /* helpers asked for, 1..threads-1 */
    atomic_int running;
    double t_start;
};

/* Helper threads for a new shape: KILN_PREPARE_THREADS when set (1 = none), else the online
 * CPUs, at most 8. */
int kn_prepare_threads(void) {
    const char *env = getenv("KILN_PREPARE_THREADS");
    if (env && *env) {
        int v = atoi(env);
        return v < 1 ? 1 : v > 64 ? 64 : v;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
}

static kiln_status kn_prepare_one(kiln_session *s, kn_instance *in, int i, void **state) {
    const kn_kernel *k = s->m->part.steps[i].kernel;
    return k->prepare(&in->args[i], state);
}

/* This thread's view of the step it is preparing: whether it may put itself back, and whether it
 * did; whether it prepares in the background. */
static _Thread_local int kn_prep_may_defer_tls, kn_prep_deferred_tls, kn_prep_background_tls;

int kn_prepare_may_defer(void) { return kn_prep_may_defer_tls; }

int kn_prepare_in_background(void) { return kn_prep_background_tls; }

void kn_prepare_defer(void) {
    if (kn_prep_may_defer_tls) kn_prep_deferred_tls = 1;
}

/* Prepares entry e; with may_defer, an entry that puts itself back goes on the deferred list. */
static void kn_prep_entry(kn_prep_job *j, int e, int may_defer) {
    kn_prep_may_defer_tls = may_defer;
    kn_prep_deferred_tls = 0;
    void **state = j->states ? &j->states[e] : &j->in->kstate[j->steps[e]];
    kiln_status st = kn_prepare_one(j->s, j->in, j->steps[e], state);
    int deferred = kn_prep_deferred_tls && st == KILN_OK;
    kn_prep_may_defer_tls = kn_prep_deferred_tls = 0;
    if (deferred) {
        int d = atomic_fetch_add(&j->n_deferred, 1);
        j->deferred[d] = e;
        atomic_store(&j->deferred_set[d], 1);
        return;
    }
    if (st != KILN_OK) {
        j->st[e] = st;
        j->msg[e] = kn_strdup(kiln_last_error());
        kn_clear_error();
    }
    atomic_store(&j->done[e], 1);
}

/* The entries in order, then the deferred ones (which may wait now: nothing else is left). A
 * deferral after this thread's second loop ends is taken by the caller's last drain. */
static void kn_prep_drain(kn_prep_job *j) {
    for (;;) {
        int e = atomic_fetch_add(&j->next, 1);
        if (e >= j->n) break;
        kn_prep_entry(j, e, 1);
    }
    for (;;) {
        int d = atomic_load(&j->next_deferred);
        if (d >= atomic_load(&j->n_deferred)) return;
        if (!atomic_compare_exchange_weak(&j->next_deferred, &d, d + 1)) continue;
        while (!atomic_load(&j->deferred_set[d])) sched_yield(); /* its writer is between two stores */
        kn_prep_entry(j, j->deferred[d], 0);
    }
}

static void *kn_prep_thread(void *arg);

/* Starts worker t; one that cannot start is counted out of `running`. */
static void kn_prep_start(kn_prep_worker *w) {
    w->started = pthread_create(&w->thread, NULL, kn_prep_thread, w) == 0;
    if (!w->started && w->running) atomic_fetch_sub(w->running, 1);
}

/* Starts helpers 1..threads-1 of w[] (filled in): the caller starts worker 1, which starts the
 * others, so the caller pays for one thread creation (seven cost it 0.7 ms on an H100 host). */
static void kn_prep_spawn(kn_prep_worker *w, int threads) {
    if (threads < 2) return;
    w[1].all = w;
    w[1].n_all = threads;
    kn_prep_start(&w[1]);
    if (!w[1].started) /* nobody to start the rest */
        for (int t = 2; t < threads; t++)
            if (w[t].running) atomic_fetch_sub(w[t].running, 1);
}

/* Joins the helpers kn_prep_spawn started: worker 1 first, which wrote the others' flags. */
static void kn_prep_join(kn_prep_worker *w, int threads) {
    if (threads < 2 || !w[1].started) return;
    pthread_join(w[1].thread, NULL);
    for (int t = 2; t < threads; t++)
        if (w[t].started) pthread_join(w[t].thread, NULL);
}

static void *kn_prep_thread(void *arg) {
    kn_prep_worker *w = arg;
    kn_prep_job *j = w->job;
    for (int t = 2; w->all && t < w->n_all; t++) kn_prep_start(&w->all[t]);
    kn_prep_background_tls = j->background;
    /* a thread the backend cannot bind takes no step: the others and the caller take them */
    if (j->s->be->worker_begin(j->s->ctx, w->index) != KILN_OK) {
        KN_VERBOSE("session: preparation thread %d not used: %s", w->index, kiln_last_error());
        kn_clear_error();
    } else {
        kn_prep_drain(j);
        if (j->s->be->worker_end) j->s->be->worker_end(j->s->ctx);
    }
    if (w->running) atomic_fetch_sub(w->running, 1);
    return NULL;
}

/* The job's per-entry arrays (kn_prep_job_free frees them). */
static kiln_status kn_prep_job_init(kn_prep_job *j, int n) {
    atomic_init(&j->next, 0);
    atomic_init(&j->n_deferred, 0);
    atomic_init(&j->next_deferred, 0);
    size_t m = (size_t)n + 1;
    j->st = kn_calloc(m, sizeof *j->st);
    j->msg = kn_calloc(m, sizeof *j->msg);
    j->done = kn_calloc(m, sizeof *j->done);
    j->deferred = kn_calloc(m, sizeof *j->deferred);
    j->deferred_set = kn_calloc(m, sizeof *j->deferred_set);
    if (!j->st || !j->msg || !j->done || !j->deferred || !j->deferred_set)
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
    return KILN_OK;
}

static void kn_prep_job_free(kn_prep_job *j) {
    for (int e = 0; j->msg && e < j->n; e++) kn_free(j->msg[e]);
    kn_free(j->st);
    kn_free(j->msg);
    kn_free((void *)j->done);
    kn_free(j->deferred);
    kn_free((void *)j->deferred_set);
}

/* Prepares the listed steps on `threads` threads: the caller (with the session's own library
 * handles) and threads-1 helpers; a helper the backend could not bind takes none. */
static kiln_status kn_prepare_concurrent(kiln_session *s, kn_instance *in, const int *steps, int n, int threads) {
    kiln_status st = KILN_OK;
    kn_prep_job j = {.s = s, .in = in, .steps = steps, .n = n};
    kn_prep_worker *w = kn_calloc((size_t)threads, sizeof *w);
    if (kn_prep_job_init(&j, n) != KILN_OK || !w) {
        st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
        goto done;
    }
    for (int t = 1; t < threads; t++) w[t] = (kn_prep_worker){.job = &j, .index = t};
    kn_prep_spawn(w, threads);
    kn_prep_drain(&j);
    kn_prep_join(w, threads);
    kn_prep_drain(&j); /* what was deferred after the caller's drain ended */
    for (int e = 0; e < n && st == KILN_OK; e++) {
        if (!atomic_load(&j.done[e])) { /* cannot happen: the caller drains until none is left */
            st = kn_error(KILN_ERR_INTERNAL, "step %d was not prepared", steps[e]);
        } else if (j.st[e] != KILN_OK) {
            st = kn_error(j.st[e], "%s", j.msg[e] ? j.msg[e] : "preparing the step failed");
        }
    }
done:
    kn_prep_job_free(&j);
    kn_free(w);
    return st;
}

/* Starts the background job for these steps (their provisional states are in place) on up to
 * `helpers` threads, workers 1..helpers. */
static kiln_status kn_prepare_background_start(kiln_session *s, kn_instance *in, const int *steps, int n, int helpers) {
    struct kn_prep_bg *b = kn_calloc(1, sizeof *b);
    if (!b) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
    b->in = in;
    b->threads = (helpers < n ? helpers : n) + 1;
    b->steps = kn_malloc((size_t)n * sizeof *b->steps);
    b->w = kn_calloc((size_t)b->threads, sizeof *b->w);
    b->j = (kn_prep_job){.s = s, .in = in, .n = n, .background = 1};
    b->j.states = kn_calloc((size_t)n, sizeof *b->j.states);
    b->t_start = kn_now_ms();
    if (!b->steps || !b->w || !b->j.states || kn_prep_job_init(&b->j, n) != KILN_OK) {
        kn_prep_job_free(&b->j);
        kn_free(b->j.states);
        kn_free(b->w);
        kn_free(b->steps);
        kn_free(b);
        return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
    }
    memcpy(b->steps, steps, (size_t)n * sizeof *steps);
    b->j.steps = b->steps;
    atomic_init(&b->running, b->threads - 1);
    s->bg = b;
    for (int t = 1; t < b->threads; t++) b->w[t] = (kn_prep_worker){.job = &b->j, .index = t, .running = &b->running};
    kn_prep_spawn(b->w, b->threads);
    KN_VERBOSE("session: %d steps run provisional kernels while %d threads prepare them (started in %.2f ms)", n,
               b->threads - 1, kn_now_ms() - b->t_start);
    return KILN_OK;
}

int kn_prepare_background_end(kiln_session *s, int wait, int discard, kn_instance **upgraded) {
    struct kn_prep_bg *b = s->bg;
    if (upgraded) *upgraded = NULL;
    if (!b || (!wait && atomic_load(&b->running) > 0)) return 0;
    kn_prep_join(b->w, b->threads);
    /* what no helper took (none could be bound or started), here under the same rules */
    kn_prep_background_tls = 1;
    kn_prep_drain(&b->j);
    kn_prep_background_tls = 0;
    s->bg = NULL;
    kn_instance *in = b->in;
    const kn_step *steps = s->m->part.steps;
    /* the stream may still run the provisional states */
    if (!discard && s->be->synchronize && s->be->synchronize(s->ctx) != KILN_OK) {
        KN_VERBOSE("session: waiting for the stream before swapping kernels failed (%s); the tuned states are dropped",
                   kiln_last_error());
        kn_clear_error();
        discard = 1;
    }
    int swapped = 0;
    for (int e = 0; e < b->j.n; e++) {
        int i = b->steps[e];
        void *tuned = b->j.states[e];
        if (!discard && b->j.st[e] == KILN_OK) {
            if (in->kstate[i] && steps[i].kernel->release) steps[i].kernel->release(in->kstate[i]);
            in->kstate[i] = in->args[i].state = tuned;
            swapped++;
            continue;
        }
        if (!discard)
            KN_VERBOSE("session: step %d keeps its provisional kernel at this shape: %s", i,
                       b->j.msg[e] ? b->j.msg[e] : "not prepared");
        if (tuned && steps[i].kernel->release) steps[i].kernel->release(tuned);
    }
    if (!discard)
        KN_VERBOSE("session: %d of %d steps swapped to their tuned kernels, prepared in the background in %.2f ms",
                   swapped, b->j.n, kn_now_ms() - b->t_start);
    kn_prep_job_free(&b->j);
    kn_free(b->j.states);
    kn_free(b->w);
    kn_free(b->steps);
    kn_free(b);
    if (upgraded && swapped) *upgraded = in;
    return swapped;
}

kiln_status kn_prepare_steps(kiln_session *s, kn_instance *in) {
    const kiln_module *m = s->m;
    if (s->no_prepare) return KILN_OK;
    int threads = s->be->worker_begin ? kn_prepare_threads() : 1;
    int n_steps = m->part.n_steps;
    int *conc = kn_malloc(((size_t)n_steps + 1) * sizeof *conc);
    int *later = kn_malloc(((size_t)n_steps + 1) * sizeof *later);
    /* 0: the caller now, 1: concurrent now, 2: background, 3: done (a quick state that is the tuned one) */
    char *role = kn_calloc((size_t)n_steps + 1, 1);
    kiln_status st = KILN_OK;
    if (!conc || !later || !role) {
        st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
        goto done;
    }
    int n = 0, n_later = 0, n_caller = 0, n_tuned = 0;
    double t0 = kn_now_ms();
    for (int i = 0; i < n_steps && st == KILN_OK; i++) {
        const kn_kernel *k = m->part.steps[i].kernel;
        if (!k->prepare || !k->prepare_concurrent) continue;
        if (s->provisional && threads >= 2 && k->prepare_provisional) {
            int tuned = 0;
            kiln_status ps = k->prepare_provisional(&in->args[i], &in->kstate[i], &tuned);
            if (ps == KILN_OK && tuned) {
                role[i] = 3; /* prepared: the quick state is the tuned one */
                n_tuned++;
                continue;
            }
            if (ps == KILN_OK) {
                later[n_later++] = i;
                role[i] = 2;
                continue;
            }
            if (ps != KILN_ERR_UNSUPPORTED) st = ps;
            else kn_clear_error();
            in->kstate[i] = NULL;
        }
        conc[n++] = i;
        role[i] = 1;
    }
    if (st != KILN_OK) goto done;
    if (n < KN_PREP_MIN_CONCURRENT || threads < 2) /* one thread: the caller prepares all */
        for (int e = 0; e < n; e++) role[conc[e]] = 0;
    double t1 = kn_now_ms();
    /* the others first, in step order; a failure there stops before any thread starts */
    for (int i = 0; i < n_steps && st == KILN_OK; i++) {
        const kn_kernel *k = m->part.steps[i].kernel;
        if (role[i] != 0 || !k->prepare) continue;
        double ts = kn_now_ms();
        st = kn_prepare_one(s, in, i, &in->kstate[i]);
        n_caller++;
        if (kn_now_ms() - ts > KN_PREP_SLOW_MS)
            KN_VERBOSE("session: step %d (%s) took %.2f ms to prepare", i, k->name, kn_now_ms() - ts);
    }
    double t2 = kn_now_ms();
    int threaded = st == KILN_OK && n >= KN_PREP_MIN_CONCURRENT && threads >= 2;
    if (threaded) st = kn_prepare_concurrent(s, in, conc, n, threads < n ? threads : n);
    if (st != KILN_OK) goto done;
    KN_VERBOSE("session: preparing: %d provisional and %d quick tuned states %.2f ms, %d steps on the calling thread "
               "%.2f ms, %d on %d threads %.2f ms", n_later, n_tuned, t1 - t0, n_caller, t2 - t1, threaded ? n : 0,
               threaded ? threads : 0, kn_now_ms() - t2);
    for (int i = 0; i < n_steps; i++) in->args[i].state = in->kstate[i];
    if (n_later > 0) {
        st = kn_prepare_background_start(s, in, later, n_later, threads - 1);
        if (st == KILN_OK) s->counters.provisional++;
    }
done:
    kn_free(conc);
    kn_free(later);
    kn_free(role);
    return st;
}
