/* Preparing a shape's steps: kernels marked prepare_concurrent (cuDNN plan finalization, 0.1-0.4
 * ms a convolution) are spread over helper threads that the backend binds to its device and to
 * library handles of their own; the rest run first, on the calling thread. Among the concurrent
 * steps a failure is reported for the first failing one in step order, whichever thread met it,
 * so the message does not depend on the schedule. A step that would wait on work another thread
 * is doing (a cuDNN plan shared with a neighbour) puts itself back and is prepared after the
 * rest, so the thread builds something else meanwhile. docs/DESIGN.md, "Preparing a new shape". */
#include "runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sched.h>
#include <unistd.h>

/* Below this many concurrent steps the threads cost more than they save. */
#define KN_PREP_MIN_CONCURRENT 4

typedef struct kn_prep_job {
    kiln_session *s;
    kn_instance *in;
    const int *steps; /* step indices whose prepare may run concurrently */
    int n;
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
} kn_prep_worker;

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

static kiln_status kn_prepare_one(kiln_session *s, kn_instance *in, int i) {
    const kn_kernel *k = s->m->part.steps[i].kernel;
    return k->prepare(&in->args[i], &in->kstate[i]);
}

/* This thread's view of the step it is preparing: whether it may put itself back, and whether it did. */
static _Thread_local int kn_prep_may_defer_tls, kn_prep_deferred_tls;

int kn_prepare_may_defer(void) { return kn_prep_may_defer_tls; }

void kn_prepare_defer(void) {
    if (kn_prep_may_defer_tls) kn_prep_deferred_tls = 1;
}

/* Prepares entry e; with may_defer, an entry that puts itself back goes on the deferred list. */
static void kn_prep_entry(kn_prep_job *j, int e, int may_defer) {
    kn_prep_may_defer_tls = may_defer;
    kn_prep_deferred_tls = 0;
    kiln_status st = kn_prepare_one(j->s, j->in, j->steps[e]);
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

static void *kn_prep_thread(void *arg) {
    kn_prep_worker *w = arg;
    kn_prep_job *j = w->job;
    /* a thread the backend cannot bind takes no step: the others and the caller take them */
    if (j->s->be->worker_begin(j->s->ctx, w->index) != KILN_OK) {
        KN_VERBOSE("session: preparation thread %d not used: %s", w->index, kiln_last_error());
        kn_clear_error();
        return NULL;
    }
    kn_prep_drain(j);
    if (j->s->be->worker_end) j->s->be->worker_end(j->s->ctx);
    return NULL;
}

/* Prepares the listed steps on `threads` threads: the caller (with the session's own library
 * handles) and threads-1 helpers; a helper the backend could not bind takes none. */
static kiln_status kn_prepare_concurrent(kiln_session *s, kn_instance *in, const int *steps, int n, int threads) {
    kiln_status st = KILN_OK;
    kn_prep_job j = {.s = s, .in = in, .steps = steps, .n = n};
    atomic_init(&j.next, 0);
    kn_prep_worker *w = kn_calloc((size_t)threads, sizeof *w);
    j.st = kn_calloc((size_t)n, sizeof *j.st);
    j.msg = kn_calloc((size_t)n, sizeof *j.msg);
    j.done = kn_calloc((size_t)n, sizeof *j.done);
    j.deferred = kn_calloc((size_t)n, sizeof *j.deferred);
    j.deferred_set = kn_calloc((size_t)n, sizeof *j.deferred_set);
    atomic_init(&j.n_deferred, 0);
    atomic_init(&j.next_deferred, 0);
    if (!w || !j.st || !j.msg || !j.done || !j.deferred || !j.deferred_set) {
        st = kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
        goto done;
    }
    for (int t = 1; t < threads; t++) {
        w[t] = (kn_prep_worker){.job = &j, .index = t};
        w[t].started = pthread_create(&w[t].thread, NULL, kn_prep_thread, &w[t]) == 0;
    }
    kn_prep_drain(&j);
    for (int t = 1; t < threads; t++)
        if (w[t].started) pthread_join(w[t].thread, NULL);
    kn_prep_drain(&j); /* what was deferred after the caller's drain ended */
    for (int e = 0; e < n && st == KILN_OK; e++) {
        if (!atomic_load(&j.done[e])) { /* cannot happen: the caller drains until none is left */
            st = kn_error(KILN_ERR_INTERNAL, "step %d was not prepared", steps[e]);
        } else if (j.st[e] != KILN_OK) {
            st = kn_error(j.st[e], "%s", j.msg[e] ? j.msg[e] : "preparing the step failed");
        }
    }
done:
    for (int e = 0; j.msg && e < n; e++) kn_free(j.msg[e]);
    kn_free(w);
    kn_free(j.st);
    kn_free(j.msg);
    kn_free((void *)j.done);
    kn_free(j.deferred);
    kn_free((void *)j.deferred_set);
    return st;
}

kiln_status kn_prepare_steps(kiln_session *s, kn_instance *in) {
    const kiln_module *m = s->m;
    if (s->no_prepare) return KILN_OK;
    int threads = s->be->worker_begin ? kn_prepare_threads() : 1;
    int *conc = kn_malloc(((size_t)m->part.n_steps + 1) * sizeof *conc);
    if (!conc) return kn_error(KILN_ERR_OUT_OF_MEMORY, "out of host memory preparing a shape");
    int n = 0;
    for (int i = 0; i < m->part.n_steps; i++)
        if (m->part.steps[i].kernel->prepare && m->part.steps[i].kernel->prepare_concurrent) conc[n++] = i;
    if (n < KN_PREP_MIN_CONCURRENT || threads < 2) n = 0; /* one thread: the caller prepares all */
    kiln_status st = KILN_OK;
    /* the others first, in step order; a failure there stops before any thread starts */
    for (int i = 0, e = 0; i < m->part.n_steps && st == KILN_OK; i++) {
        if (e < n && conc[e] == i) {
            e++;
            continue;
        }
        if (m->part.steps[i].kernel->prepare) st = kn_prepare_one(s, in, i);
    }
    if (st == KILN_OK && n > 0) st = kn_prepare_concurrent(s, in, conc, n, threads < n ? threads : n);
    kn_free(conc);
    if (st != KILN_OK) return st;
    for (int i = 0; i < m->part.n_steps; i++) in->args[i].state = in->kstate[i];
    return KILN_OK;
}
